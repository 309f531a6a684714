"""Atomic file writes: a result file is either complete or absent, never half-written."""

from __future__ import annotations

import os
import signal
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO


@contextmanager
def _interrupts_deferred() -> Iterator[None]:
    """Hold Ctrl-C (SIGINT) back for the few statements inside: the signal is noted and delivered again when the
    block ends, so its KeyboardInterrupt is raised there, not in between (a temporary file is never created without
    being recorded, nor left behind half-deleted, and the umask is never left changed). Python runs signal
    handlers in the main thread whichever thread the signal reaches; off the main thread this is a no-op."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    try:
        previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    except (ValueError, OSError):  # not the main interpreter
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if caught:
            signal.raise_signal(signal.SIGINT)  # now, with the previous handler: usually KeyboardInterrupt


@contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """A binary file object to write ``path`` through: a temporary file beside it (parent folders created) that
    replaces ``path``, with an ordinary file's permissions, only when the block ends without an error. An error or
    a Ctrl-C (KeyboardInterrupt) at any point leaves ``path`` as it was and removes the temporary file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = None
    try:
        with _interrupts_deferred():
            fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as fh:
            yield fh
        with _interrupts_deferred():
            umask = os.umask(0)
            os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600
        os.replace(tmp, path)
    except BaseException:
        if tmp is not None:
            with _interrupts_deferred():
                Path(tmp).unlink(missing_ok=True)
        raise
