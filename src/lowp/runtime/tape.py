"""The record of calls into the native extension (see lowp.runtime.replay).

Every call from lowp.runtime.native_backend into the extension goes through `call`; inside
`recording()` each is also appended to a list, so that calling ``function(*arguments)``
again repeats the computation on the same buffers. Pure Python: importable without the
extension.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator

Call = tuple[Callable[..., None], tuple[object, ...]]
_recorder = threading.local()


def call(fn: Callable[..., None], *args: object) -> None:
    """Run ``fn(*args)``, recording it when this thread is recording."""
    tape = getattr(_recorder, "tape", None)
    if tape is not None:
        tape.append((fn, args))
    fn(*args)


@contextlib.contextmanager
def recording() -> Iterator[list[Call]]:
    """Collect the extension calls made in this thread by the body, in order."""
    previous = getattr(_recorder, "tape", None)
    tape: list[Call] = []
    _recorder.tape = tape
    try:
        yield tape
    finally:
        _recorder.tape = previous
