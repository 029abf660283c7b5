"""Sharded calibration (lowp.calibrate): tables bit-identical to one process for every
method and number of shards, on a local process pool, a Dask LocalCluster and a local Ray
instance; a worker that dies is replaced and its shard run again; `lowp calibrate` writes a
table that `lowp quantize --calib-table` turns into the very model it computes itself."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# dask and ray are test dependencies: a missing one fails these tests, never skips them
import dask.distributed  # noqa: F401
import numpy as np
import onnx
import pytest
import ray

import lowp
from lowp.calib.sharded import calibrate_shards
from lowp.calib.shards import (
    ArrayShard,
    ImageShard,
    NpzShard,
    ShardData,
    StackedShard,
    plan_shards,
)
from lowp.cli import main
from lowp.config import CalibMethod, Config
from lowp.data import demo_model_path, load_demo_calibration
from lowp.feeds import Feed, NpzFolder, as_feeds, shard_bounds
from lowp.inputs import ImagePreprocess, InputSpec, model_inputs
from lowp.ir.graph import Graph, load_model
from lowp.passes.annotate import annotate
from lowp.passes.canonicalize import canonicalize
from lowp.pipeline import quantize

METHODS = list(CalibMethod)


@pytest.fixture(scope="module")
def data() -> dict[str, np.ndarray]:
    return load_demo_calibration()          # 256 samples: 16 feeds of 16


@pytest.fixture(scope="module")
def serial(data: dict[str, np.ndarray]) -> dict[CalibMethod, dict]:
    """Single-process tables (what `lowp quantize` computes), per method."""
    return {m: quantize(demo_model_path(), data, Config(method=m)).table.to_dict()
            for m in METHODS}


def _rechoose(table: lowp.calib.CalibrationTable, method: CalibMethod) -> dict:
    """The table's statistics with the ranges of `method`, chosen as calibration chooses
    them (histograms serve every histogram method)."""
    model = canonicalize(load_model(demo_model_path()))
    graph = Graph(model)
    config = Config(method=method)
    runtime = {t for t in table if not graph.is_constant(t)}
    table.choose_ranges(method, num_quantized_bins=config.num_quantized_bins,
                        percentile=config.percentile,
                        unsigned=(() if config.resolved_target().activation_qtype.signed
                                  else runtime),
                        exact=set(table) - runtime)
    return table.to_dict()


# --- shards of every data form equal the whole stream -----------------------------------------
def _feeds(shard: ShardData, inputs: list[InputSpec]) -> list[Feed]:
    return list(shard.feeds(inputs))


def _same(a: list[Feed], b: list[Feed]) -> bool:
    return len(a) == len(b) and all(
        x.keys() == y.keys() and all(np.array_equal(x[k], y[k]) and x[k].dtype == y[k].dtype
                                     for k in x) for x, y in zip(a, b, strict=True))


def test_shard_bounds_cover_the_feeds_in_order() -> None:
    for num in (1, 5, 16, 17):
        for n in range(1, num + 1):
            bounds = [shard_bounds(num, k, n) for k in range(n)]
            assert bounds[0][0] == 0 and bounds[-1][1] == num
            assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:], strict=False))
            sizes = [b - a for a, b in bounds]
            assert max(sizes) - min(sizes) <= 1


@pytest.mark.parametrize("form", ["mapping", "npz", "folder", "npz_folder", "list",
                                  "generator", "images", "images_keep_aspect"])
def test_shards_of_every_form_equal_the_whole(form: str, tmp_path: Path,
                                              data: dict[str, np.ndarray]) -> None:
    inputs = model_inputs(onnx.load(demo_model_path()))
    x = data["input"][:100]                               # 100 samples: a partial last batch
    pre = None
    if form.startswith("images"):                        # 8x8 grayscale PNGs
        from PIL import Image
        for i in range(37):
            pixels = (np.arange(64).reshape(8, 8) * (i + 1)) % 256
            Image.fromarray(pixels.astype(np.uint8)).save(tmp_path / f"{i:03d}.png")
        pre = ImagePreprocess(keep_aspect=form.endswith("keep_aspect"))
        whole = list(as_feeds(str(tmp_path), inputs, 16, pre))
        assert len(whole) == (37 if pre.keep_aspect else 3)
        given: object = str(tmp_path)
    else:
        whole = list(as_feeds({"input": x}, inputs, 16))
        given = {"input": x}
    if form == "npz":
        np.savez(tmp_path / "c.npz", input=x)
        given = str(tmp_path / "c.npz")
    elif form == "folder":                                # files cut across batch boundaries
        for i, (a, b) in enumerate([(0, 7), (7, 40), (40, 100)]):
            np.save(tmp_path / f"part{i}.npy", x[a:b])
        given = str(tmp_path)
    elif form in ("npz_folder", "list", "generator"):
        for i, f in enumerate(whole):
            np.savez(tmp_path / f"{i:03d}.npz", **f)
        given = {"npz_folder": NpzFolder(tmp_path), "list": list(whole),
                 "generator": iter(list(whole))}[form]
    source = as_feeds(given, inputs, 16, pre)
    for n in (1, 2, 3, 7):
        num, makers = plan_shards(given, source, inputs, 16, pre, n)
        assert num == len(whole)
        shards = [m() for m in makers]
        used = min(n, num)                                # at most one shard per feed
        assert [s.start for s in shards] == [shard_bounds(num, k, used)[0]
                                             for k in range(used)]
        kind = {"npz": StackedShard, "folder": StackedShard, "npz_folder": NpzShard,
                "generator": NpzShard, "images": StackedShard,
                "images_keep_aspect": ImageShard}.get(form, ArrayShard)
        assert all(isinstance(s, kind) for s in shards)
        assert _same([f for s in shards for f in _feeds(s, inputs)], whole)
    if form == "generator":
        source.close()


# --- bit-identical tables -------------------------------------------------------------------
@pytest.mark.parametrize("shards", [1, 2, 3])
def test_local_pool_equals_one_process_for_every_method(shards: int, data, serial) -> None:
    """One histogram run serves all histogram methods (the statistics do not depend on the
    method); min/max (whose table holds min/max statistics only) runs on its own."""
    table = lowp.calibrate(demo_model_path(), data, Config(method=CalibMethod.ENTROPY),
                           workers=2, shards=shards, progress=False)
    assert table.to_dict() == serial[CalibMethod.ENTROPY]
    for method in (CalibMethod.PERCENTILE, CalibMethod.MSE):
        assert _rechoose(table, method) == serial[method]
    table = lowp.calibrate(demo_model_path(), data, Config(method=CalibMethod.MINMAX),
                           workers=2, shards=shards, progress=False)
    assert table.to_dict() == serial[CalibMethod.MINMAX]


def test_dask_local_cluster_equals_one_process(data, serial) -> None:
    table = lowp.calibrate(demo_model_path(), data, Config(method=CalibMethod.MINMAX),
                           scheduler="dask", workers=2, shards=3, progress=False)
    assert table.to_dict() == serial[CalibMethod.MINMAX]


@pytest.fixture(scope="module")
def ray_local() -> Iterator[None]:
    """A local Ray instance of 2 CPUs shared by the Ray tests (lowp.calibrate uses an
    instance that is already running and leaves it running)."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    try:
        yield
    finally:
        ray.shutdown()


def test_ray_local_equals_one_process(ray_local, data, serial) -> None:
    table = lowp.calibrate(demo_model_path(), data, Config(method=CalibMethod.MSE),
                           scheduler="ray", workers=2, shards=4, progress=False)
    assert table.to_dict() == serial[CalibMethod.MSE]


# --- a dying worker -------------------------------------------------------------------------
@dataclass(frozen=True)
class DiesOnce(ArrayShard):
    """A shard whose first reading kills its worker process (the marker file remembers)."""

    marker: str = ""

    def feeds(self, inputs: list[InputSpec]) -> Iterator[Feed]:
        if not os.path.exists(self.marker):
            Path(self.marker).touch()
            os._exit(3)
        return super().feeds(inputs)


def _dying_run(data: dict[str, np.ndarray], marker: Path, scheduler: str) -> dict:
    config = Config(method=CalibMethod.ENTROPY)
    model = canonicalize(load_model(demo_model_path()))
    inputs = model_inputs(model)
    source = as_feeds(data, inputs, config.batch_size)
    num, makers = plan_shards(data, source, inputs, config.batch_size, None, 3)
    shards = [m() for m in makers]
    shards[1] = DiesOnce(shards[1].start, shards[1].arrays, str(marker))  # type: ignore
    table = calibrate_shards(model, annotate(model, config).activations, inputs, config, num,
                             [lambda s=s: s for s in shards], scheduler=scheduler, workers=2,
                             progress=False)
    assert marker.exists()                           # the worker did die
    return table.to_dict()


@pytest.mark.parametrize("scheduler", ["local", "dask"])
def test_a_dead_workers_shard_is_run_again(scheduler: str, tmp_path: Path, data,
                                           serial) -> None:
    assert _dying_run(data, tmp_path / "died", scheduler) == serial[CalibMethod.ENTROPY]


def test_ray_reruns_a_dead_workers_shard(ray_local, tmp_path: Path, data, serial) -> None:
    assert _dying_run(data, tmp_path / "died", "ray") == serial[CalibMethod.ENTROPY]


# --- the command line -----------------------------------------------------------------------
def test_cli_table_round_trips_into_quantize(tmp_path: Path, data,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    np.savez(tmp_path / "calib.npz", **data)
    calib, table = str(tmp_path / "calib.npz"), str(tmp_path / "table.json")
    assert main(["calibrate", str(demo_model_path()), "--calib", calib, "-o", table,
                 "--method", "entropy", "--workers", "2", "--shards", "3", "--quiet"]) == 0
    assert "written to" in capsys.readouterr().out
    own, given = str(tmp_path / "own.onnx"), str(tmp_path / "given.onnx")
    common = ["--method", "entropy", "--quiet", "--no-report"]
    assert main(["quantize", str(demo_model_path()), "--calib", calib, "-o", own, *common]) == 0
    assert main(["quantize", str(demo_model_path()), "--calib", calib, "-o", given,
                 "--calib-table", table, *common]) == 0
    assert Path(own).read_bytes() == Path(given).read_bytes()
    ref = quantize(demo_model_path(), data, Config(method=CalibMethod.ENTROPY)).table
    assert lowp.calib.CalibrationTable.load(table).to_dict() == ref.to_dict()


def test_cli_scheduler_errors_are_one_line(tmp_path: Path, data,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    np.savez(tmp_path / "calib.npz", **data)
    assert main(["calibrate", str(demo_model_path()), "--calib", str(tmp_path / "calib.npz"),
                 "-o", str(tmp_path / "t.json"), "--address", "tcp://x:1", "--quiet"]) == 2
    assert "scheduler 'local' takes no address" in capsys.readouterr().err
