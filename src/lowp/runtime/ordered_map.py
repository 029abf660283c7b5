"""The ordered map ONNX Runtime's Unique keeps its keys in: std::map, libstdc++'s red-black
tree, with the same searches, insertion hints and rebalancing.

Its shape matters only when the keys are not strictly ordered (a float NaN is neither less
nor greater than anything): then where a search ends, and so which key a NaN is taken to
equal, depends on the tree the earlier insertions built (docs/operators.md, (O262)).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class _Node:
    __slots__ = ("key", "left", "parent", "red", "right", "value")

    def __init__(self, key: Any, value: int, parent: _Node | None) -> None:
        self.key, self.value, self.parent = key, value, parent
        self.left: _Node | None = None
        self.right: _Node | None = None
        self.red = True


def _predecessor(node: _Node) -> _Node:
    """The node before `node` in order (`node` is not the first)."""
    if node.left is not None:
        node = node.left
        while node.right is not None:
            node = node.right
        return node
    parent = node.parent
    while parent is not None and node is parent.left:
        node, parent = parent, parent.parent
    assert parent is not None
    return parent


class OrderedMap:
    """Keys to int values, ordered by `less` (a strict order for well-behaved keys)."""

    def __init__(self, less: Callable[[Any, Any], bool]) -> None:
        self.less = less
        self.root: _Node | None = None
        self.leftmost: _Node | None = None
        self.rightmost: _Node | None = None

    def _lower_bound(self, key: Any) -> _Node | None:
        """The first node not less than `key` as the tree's walk finds it (None: end)."""
        node, found = self.root, None
        while node is not None:
            if not self.less(node.key, key):
                found, node = node, node.left
            else:
                node = node.right
        return found

    def find(self, key: Any) -> int | None:
        """std::map::find: the value of the node the walk takes to equal `key`, or None."""
        node = self._lower_bound(key)
        if node is None or self.less(key, node.key):
            return None
        return node.value

    def _insert_position(self, key: Any) -> tuple[bool, _Node | None] | None:
        """_M_get_insert_unique_pos: (insert left, parent), or None for an equal key."""
        node, parent, went_left = self.root, None, True
        while node is not None:
            parent = node
            went_left = self.less(key, node.key)
            node = node.left if went_left else node.right
        before = parent
        if went_left:
            if parent is None or parent is self.leftmost:
                return True, parent
            before = _predecessor(parent)
        assert before is not None
        if self.less(before.key, key):
            return went_left, parent
        return None

    def _hinted_position(self, key: Any, hint: _Node | None) -> tuple[bool, _Node | None] | None:
        """_M_get_insert_hint_unique_pos with the lower bound as the hint (after a failed
        find: the hint is the end or a key greater than `key`)."""
        if hint is None:
            if self.rightmost is not None and self.less(self.rightmost.key, key):
                return False, self.rightmost
            return self._insert_position(key)
        if hint is self.leftmost:
            return True, hint
        before = _predecessor(hint)
        if self.less(before.key, key):
            if before.right is None:
                return False, before
            return True, hint
        return self._insert_position(key)

    def insert(self, key: Any, value: int) -> bool:
        """std::map::operator[] of a key find did not find, then set to `value`: False when
        the tree takes the key to equal one it has (nothing inserted)."""
        hint = self._lower_bound(key)
        position = self._hinted_position(key, hint)
        if position is None:
            return False
        left, parent = position
        # _M_insert_node: left of the parent also for a key less than the parent's
        left = left or parent is None or self.less(key, parent.key)
        self._insert_and_rebalance(_Node(key, value, parent), left)
        return True

    def _rotate_left(self, x: _Node) -> None:
        y = x.right
        assert y is not None
        x.right = y.left
        if y.left is not None:
            y.left.parent = x
        y.parent = x.parent
        if x is self.root:
            self.root = y
        elif x.parent is not None and x is x.parent.left:
            x.parent.left = y
        elif x.parent is not None:
            x.parent.right = y
        y.left = x
        x.parent = y

    def _rotate_right(self, x: _Node) -> None:
        y = x.left
        assert y is not None
        x.left = y.right
        if y.right is not None:
            y.right.parent = x
        y.parent = x.parent
        if x is self.root:
            self.root = y
        elif x.parent is not None and x is x.parent.right:
            x.parent.right = y
        elif x.parent is not None:
            x.parent.left = y
        y.right = x
        x.parent = y

    def _insert_and_rebalance(self, x: _Node, left: bool) -> None:
        """_Rb_tree_insert_and_rebalance."""
        p = x.parent
        if p is None:
            self.root = self.leftmost = self.rightmost = x
        elif left:
            p.left = x
            if p is self.leftmost:
                self.leftmost = x
        else:
            p.right = x
            if p is self.rightmost:
                self.rightmost = x
        while x is not self.root and x.parent is not None and x.parent.red:
            parent = x.parent
            grand = parent.parent
            assert grand is not None
            if parent is grand.left:
                uncle = grand.right
                if uncle is not None and uncle.red:
                    parent.red = uncle.red = False
                    grand.red = True
                    x = grand
                    continue
                if x is parent.right:
                    x = parent
                    self._rotate_left(x)
                assert x.parent is not None
                x.parent.red = False
                grand.red = True
                self._rotate_right(grand)
            else:
                uncle = grand.left
                if uncle is not None and uncle.red:
                    parent.red = uncle.red = False
                    grand.red = True
                    x = grand
                    continue
                if x is parent.left:
                    x = parent
                    self._rotate_right(x)
                assert x.parent is not None
                x.parent.red = False
                grand.red = True
                self._rotate_left(grand)
        assert self.root is not None
        self.root.red = False

    def values(self) -> list[int]:
        """The values in the tree's order."""
        out: list[int] = []
        stack: list[_Node] = []
        node = self.root
        while stack or node is not None:
            while node is not None:
                stack.append(node)
                node = node.left
            node = stack.pop()
            out.append(node.value)
            node = node.right
        return out
