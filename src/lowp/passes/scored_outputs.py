"""The outputs the measured choices score (docs/accuracy.md, "The outputs scored").

The range-method choice, its float step, mode AUTO and the accuracy budget compare a
quantized model with the float one by its output SQNR, the minimum over the outputs scored
(`passes.sensitivity.Measurement`). A user names those outputs (`Config.score_outputs`, CLI
`--score-outputs`); otherwise they are the float outputs that are not recurrent state.

Recurrent state is an output the caller feeds back as an input on the next call: silero
VAD's `stateN` for `state`, an LSTM's `hn`/`cn` for `h`/`c` or `h0`/`c0`, FSMN's
`out_cache0` for `in_cache0`, `new_cache_k` for `cache_k`, a decoder's `present.0.key` for
`past_key_values.0.key`. It is found by name and type (`recurrent_state`): an output whose
name, with a state suffix or prefix of the output side removed (`N`, `n`, `_out`, `new_`,
`present`, ...), equals the name of a graph input or an initializer (a state input frozen
to a constant) with one of the input side removed (`0`, `_in`, `past_`, ...), with the same
element type and shapes that agree where both are known. Its error is the model's memory
after one call from a zero state, not the prediction the user reads, and it is often far
larger: it would decide the choice for a number nobody uses. When every float output looks
like state, all are scored.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import onnx

from ..errors import DataError

# Affixes of a state's name on either side of the loop; `_` `.` `/` `:` `-` or nothing
# separates a one-character suffix, a separator is required for a word.
_IN_PREFIXES = ("past_key_values", "past", "prev", "previous", "old", "in", "input", "init",
                "initial", "last")
_OUT_PREFIXES = ("present", "next", "new", "out", "output", "final", "updated")
_IN_SUFFIXES = ("0", "in", "prev", "old", "init", "past")
_OUT_SUFFIXES = ("n", "out", "new", "next", "updated", "final")
_SEP = "._/:-"


def _stems(name: str, prefixes: Sequence[str], suffixes: Sequence[str]) -> set[str]:
    """`name` (lower case) and `name` with one of the affixes removed.

    Examples
    --------
    >>> sorted(_stems("stateN", _OUT_PREFIXES, _OUT_SUFFIXES))
    ['state', 'staten']
    >>> sorted(_stems("in_cache0", _IN_PREFIXES, _IN_SUFFIXES))
    ['cache0', 'in_cache', 'in_cache0']
    >>> sorted(_stems("present.0.key", _OUT_PREFIXES, _OUT_SUFFIXES))
    ['0.key', 'present.0.key']
    """
    low = name.lower()
    out = {low}
    for p in prefixes:
        m = re.fullmatch(re.escape(p) + f"[{re.escape(_SEP)}]+(.+)", low)
        if m:
            out.add(m.group(1))
    for s in suffixes:
        sep = "*" if len(s) == 1 else "+"
        m = re.fullmatch(f"(.+?)[{re.escape(_SEP)}]{sep}" + re.escape(s), low)
        if m:
            out.add(m.group(1))
    return out


def _type_of(value: onnx.ValueInfoProto | onnx.TensorProto
             ) -> tuple[int, list[int | None] | None]:
    """Element type (0: unknown) and dims (None: unknown, per dim or in all)."""
    if isinstance(value, onnx.TensorProto):
        return value.data_type, list(value.dims)
    t = value.type.tensor_type
    if not t.HasField("shape"):
        return t.elem_type, None
    return t.elem_type, [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
                         for d in t.shape.dim]


def _same_type(a: onnx.ValueInfoProto | onnx.TensorProto,
               b: onnx.ValueInfoProto | onnx.TensorProto) -> bool:
    (ta, da), (tb, db) = _type_of(a), _type_of(b)
    if ta and tb and ta != tb:
        return False
    if da is None or db is None:
        return True
    return len(da) == len(db) and all(x is None or y is None or x == y
                                      for x, y in zip(da, db, strict=True))


def recurrent_state(model: onnx.ModelProto) -> dict[str, str]:
    """The outputs of `model` that look like recurrent state, each mapped to the graph input
    or initializer it is fed back as (module docstring: names and types).

    Examples
    --------
    >>> from onnx import TensorProto, helper
    >>> def v(name, shape):
    ...     return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)
    >>> g = helper.make_graph([], "g", [v("x", [1, 4]), v("h0", [1, 8]), v("c0", [1, 8])],
    ...                       [v("y", [1, 2]), v("hn", [1, 8]), v("cn", [1, 8]),
    ...                        v("xn", [1, 3])])
    >>> recurrent_state(helper.make_model(g))
    {'hn': 'h0', 'cn': 'c0'}
    """
    graph = model.graph
    sources: dict[str, onnx.ValueInfoProto | onnx.TensorProto] = {
        i.name: i for i in graph.initializer}
    sources.update({i.name: i for i in graph.input})
    stems: dict[str, list[str]] = {}
    for name in sources:
        for s in _stems(name, _IN_PREFIXES, _IN_SUFFIXES):
            stems.setdefault(s, []).append(name)
    out: dict[str, str] = {}
    for o in graph.output:
        for s in sorted(_stems(o.name, _OUT_PREFIXES, _OUT_SUFFIXES)):
            match = [n for n in stems.get(s, []) if n != o.name and _same_type(sources[n], o)]
            if match:
                out[o.name] = match[0]
                break
    return out


_FLOATS = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE,
           onnx.TensorProto.BFLOAT16}


@dataclass(frozen=True)
class ScoredOutputs:
    """The float outputs scored, whether the user named them, and the float outputs left
    out with why."""

    scored: tuple[str, ...]
    named: bool = False
    left_out: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        """One line for a record: what is scored and why.

        Examples
        --------
        >>> ScoredOutputs(("y",), left_out={"hn": "recurrent state (fed back as 'h0')"}
        ...               ).describe()
        "scored outputs: y; left out: hn (recurrent state (fed back as 'h0'))"
        """
        text = "scored outputs" + (" (named)" if self.named else "") + ": " + (
            ", ".join(self.scored) or "every float output")
        if self.left_out:
            text += "; left out: " + ", ".join(f"{n} ({why})" for n, why in
                                               self.left_out.items())
        return text


def record_lines(scored: Sequence[str], left_out: dict[str, str]) -> list[str]:
    """A choice record's console line on the outputs scored: none when nothing is left out.

    Examples
    --------
    >>> record_lines(["y"], {"hn": "recurrent state, fed back as 'h0'"})
    ["  scored on y; left out: hn (recurrent state, fed back as 'h0')"]
    >>> record_lines(["y", "z"], {})
    []
    """
    if not left_out:
        return []
    return [f"  scored on {', '.join(scored)}; left out: "
            + "; ".join(f"{n} ({why})" for n, why in left_out.items())]


def scored_outputs(model: onnx.ModelProto, named: Sequence[str] = ()) -> ScoredOutputs:
    """The outputs the measured choices score: `named` (each must be a float output of
    `model`), or else every float output (an output whose element type is not known counts
    as one) but recurrent state (`recurrent_state`), or all of them when each is state.

    Examples
    --------
    >>> from onnx import TensorProto, helper
    >>> def v(name):
    ...     return helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, 8])
    >>> g = helper.make_graph([], "g", [v("x"), v("state")], [v("y"), v("stateN")])
    >>> scored_outputs(helper.make_model(g)).scored
    ('y',)
    >>> scored_outputs(helper.make_model(g), ["stateN"]).scored
    ('stateN',)
    """
    types = {o.name: o.type.tensor_type.elem_type for o in model.graph.output}
    floats = [n for n, t in types.items() if t in _FLOATS or t == 0]
    if named:
        for n in named:
            if n not in types:
                raise DataError(f"output '{n}' given in score_outputs is not an output of "
                                f"the model (its outputs: {', '.join(types)})")
            if n not in floats:
                raise DataError(f"output '{n}' given in score_outputs is not a float output "
                                f"(element type {onnx.TensorProto.DataType.Name(types[n])}): "
                                "only float outputs have an SQNR")
        chosen = tuple(dict.fromkeys(named))
        return ScoredOutputs(chosen, True, {n: "not named" for n in floats
                                             if n not in chosen})
    state = {o: s for o, s in recurrent_state(model).items() if o in floats}
    kept = tuple(n for n in floats if n not in state)
    if not kept:
        return ScoredOutputs(tuple(floats))
    return ScoredOutputs(kept, False, {o: f"recurrent state, fed back as '{s}'"
                                       for o, s in state.items()})
