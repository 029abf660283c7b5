"""One name allocator per model: fresh tensor and node names that never collide."""

from __future__ import annotations

from collections.abc import Iterable

import onnx


class NameAllocator:
    """Hands out names unique within a model.

    Examples
    --------
    >>> names = NameAllocator(["x", "x_quantized"])
    >>> names.fresh("x_quantized"), names.fresh("x_quantized")
    ('x_quantized_1', 'x_quantized_2')
    """

    def __init__(self, taken: Iterable[str] = ()) -> None:
        self._taken: set[str] = set(taken)

    @classmethod
    def for_model(cls, model: onnx.ModelProto) -> NameAllocator:
        g = model.graph
        taken: set[str] = {n.name for n in g.node}
        for n in g.node:
            taken.update(n.input)
            taken.update(n.output)
        taken.update(t.name for t in g.initializer)
        taken.update(v.name for v in (*g.input, *g.output, *g.value_info))
        return cls(taken)

    def fresh(self, base: str) -> str:
        name, i = base, 0
        while name in self._taken:
            i += 1
            name = f"{base}_{i}"
        self._taken.add(name)
        return name
