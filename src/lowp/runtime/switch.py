"""A process-wide on/off setting of a native front (lowp.runtime.native_float,
native_rnn, fuse_float) that a context manager turns off for its body: the numpy
reference, for comparing or timing. Pure Python."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


class Switch:
    """True while on; `off()` turns it off inside a `with` body and back after."""

    def __init__(self, on: bool = True) -> None:
        self.on = on

    def __bool__(self) -> bool:
        return self.on

    @contextlib.contextmanager
    def off(self) -> Iterator[None]:
        previous, self.on = self.on, False
        try:
            yield
        finally:
            self.on = previous
