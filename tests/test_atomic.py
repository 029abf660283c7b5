"""lowp.atomic: a write replaces the target whole or not at all."""

import numpy as np
import pytest

from lowp.atomic import open_atomic, write_bytes, write_text


def test_write_replaces_the_target_and_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "sub" / "t.json"               # a missing folder is made
    write_text(target, "old")
    write_text(target, "new")
    assert target.read_text() == "new"
    write_bytes(tmp_path / "b.bin", b"\x00\x01")
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["b.bin", "sub", "t.json"]


def test_a_failed_write_keeps_the_old_file_and_removes_the_temporary_one(tmp_path):
    target = tmp_path / "a.npz"
    with open_atomic(target, "wb") as f:
        np.savez(f, x=np.arange(3))
    with pytest.raises(RuntimeError, match="disk full"), open_atomic(target, "wb") as f:
        f.write(b"partial")
        raise RuntimeError("disk full")
    with np.load(target, allow_pickle=False) as z:
        assert z["x"].tolist() == [0, 1, 2]
    assert [p.name for p in tmp_path.iterdir()] == ["a.npz"]


def test_only_write_modes_are_accepted(tmp_path):
    with pytest.raises(ValueError, match="mode"), open_atomic(tmp_path / "x", "a"):
        pass
