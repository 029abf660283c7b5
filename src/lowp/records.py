"""JSON records written beside a quantized model (OUTPUT.mode.json, OUTPUT.method.json,
OUTPUT.fallback.json): what was measured and decided, and the flags that give the same
model without measuring. Written atomically (`lowp.atomic`), like every output of lowp."""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import asdict
from typing import Any

from .atomic import write_text


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


def cli_word(name: str) -> str:
    """A node name as one shell word in a record's `flags` (quoted unless it is plain).

    >>> cli_word("/conv/Conv"), cli_word("a b")
    ('/conv/Conv', "'a b'")
    """
    return name if re.fullmatch(r"[\w./:-]+", name) else "'" + name.replace("'", "'\\''") + "'"
