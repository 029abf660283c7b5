"""A transformer block exported by PyTorch's dynamo exporter at opset 23 (its
scaled_dot_product_attention becomes one Attention node, docs/operators.md (O303)) runs as
ONNX Runtime runs it, bit for bit; `lowp.quantize_model` leaves the Attention float,
quantizes around it, and its QDQ file runs identically in both engines."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

import lowp

from .ort_agreement import onnxruntime_run

torch = pytest.importorskip("torch")


def _block_model(path: Path, causal: bool) -> onnx.ModelProto:
    nn, functional = torch.nn, torch.nn.functional

    class Block(nn.Module):  # type: ignore[misc, name-defined]
        """Pre-norm attention with grouped key/value heads, then an MLP."""

        def __init__(self, d: int = 32, heads: int = 4, kv_heads: int = 2) -> None:
            super().__init__()
            self.heads, self.kv_heads, self.size = heads, kv_heads, d // heads
            self.q = nn.Linear(d, d)
            self.k = nn.Linear(d, kv_heads * self.size)
            self.v = nn.Linear(d, kv_heads * self.size)
            self.o = nn.Linear(d, d)
            self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
            self.mlp = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))

        def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            b, s, d = x.shape
            y = self.norm1(x)
            q = self.q(y).view(b, s, self.heads, self.size).transpose(1, 2)
            k = self.k(y).view(b, s, self.kv_heads, self.size).transpose(1, 2)
            v = self.v(y).view(b, s, self.kv_heads, self.size).transpose(1, 2)
            a = functional.scaled_dot_product_attention(
                q, k, v, attn_mask=None if causal else mask, is_causal=causal,
                enable_gqa=True)
            x = x + self.o(a.transpose(1, 2).reshape(b, s, d))
            return x + self.mlp(self.norm2(x))

    torch.manual_seed(0)
    x = torch.randn(2, 9, 32)
    mask = torch.rand(2, 1, 9, 9) < 0.8
    program = torch.onnx.export(Block().eval(), (x, mask), dynamo=True, opset_version=23,
                                input_names=["x", "mask"], output_names=["y"],
                                dynamic_shapes=({1: "seq"}, {2: "seq", 3: "seq"}))
    program.save(str(path))
    return onnx.load(str(path))


def _feeds(rng: np.random.Generator, seq: int) -> dict[str, np.ndarray]:
    return {"x": rng.standard_normal((2, seq, 32)).astype(np.float32),
            "mask": rng.random((2, 1, seq, seq)) < 0.8}


def _inputs(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    names = {i.name for i in model.graph.input}
    return {n: v for n, v in feeds.items() if n in names}


def _assert_engines_agree(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> None:
    for threads in (1, 2):
        want = onnxruntime_run(model, feeds, threads)[0]
        for backend in ("reference", "native"):
            got = lowp.Session(model, backend=backend, threads=threads).run(dict(feeds))["y"]
            np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32),
                                          err_msg=f"{backend} {threads} threads")


@pytest.mark.parametrize("causal", [True, False])
def test_exported_block_and_its_quantized_file(tmp_path: Path, causal: bool) -> None:
    model = _block_model(tmp_path / "block.onnx", causal)
    assert [n.op_type for n in model.graph.node].count("Attention") == 1
    rng = np.random.default_rng(0)
    for seq in (9, 1, 17):
        _assert_engines_agree(model, _inputs(model, _feeds(rng, seq)))

    calib = [_inputs(model, _feeds(rng, 9)) for _ in range(4)]
    qdq = lowp.quantize_model(tmp_path / "block.onnx", calib)
    ops = [n.op_type for n in qdq.graph.node]
    assert "QuantizeLinear" in ops and ops.count("Attention") == 1
    attention = next(n for n in qdq.graph.node if n.op_type == "Attention")
    producers = {o: n.op_type for n in qdq.graph.node for o in n.output}
    assert all(producers.get(i) != "QuantizeLinear" for i in attention.input)
    for seq in (9, 5):
        _assert_engines_agree(qdq, _inputs(qdq, _feeds(rng, seq)))
