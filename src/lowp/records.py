"""JSON records written beside a quantized model (OUTPUT.mode.json, OUTPUT.method.json,
OUTPUT.fallback.json): what was measured and decided, and the flags that give the same
model without measuring. Written atomically, like every output of lowp."""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any


def choice_dict(choice: Any, fmt: str) -> dict[str, Any]:
    """A measured choice (a dataclass with `candidates` holding `sqnr_db`, and `flags()`)
    as a JSON-ready dict; an infinite SQNR becomes the string "inf" (JSON has no inf)."""
    d = asdict(choice)
    for c in d["candidates"]:
        if c["sqnr_db"] is not None and not math.isfinite(c["sqnr_db"]):
            c["sqnr_db"] = str(c["sqnr_db"])
    return {"format": fmt, "version": 1, **d, "flags": choice.flags()}


def write_json(path: str | os.PathLike[str], data: dict[str, Any]) -> None:
    """Write `data` as indented JSON, atomically (`write_text`)."""
    write_text(path, json.dumps(data, indent=1) + "\n")


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write `text` to `path` through a temporary file in the same directory, flushed to
    disk and renamed: a reader sees the old file or the whole new one, never a part."""
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp",
                               dir=target.parent if str(target.parent) else ".")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
