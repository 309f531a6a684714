"""Progress of long runs, and numba compilation made visible.

``ProgressBar`` is fed by :func:`simulator.simulate`'s ``progress`` callbacks and writes to a stream (the command
line passes stderr; library code never prints). On a terminal it redraws one line, from a background thread too,
so that it keeps moving while numba compiles a kernel (which can take tens of seconds the first time); elsewhere
(a log file, a pipe) it writes a plain line now and then. ``CompileWatch`` counts numba compilations (not loads
from numba's cache) and their wall time, so that a first run can say where its time went.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import TextIO

from numba.core import event


class CompileWatch(event.Listener):
    """Numba compilations while installed (``with CompileWatch() as watch:``): how many top-level compilations,
    their total wall time in seconds, and whether one is running now (``compiling``)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self.count = 0
        self.seconds = 0.0
        self._depth = 0
        self._started = 0.0
        self._lock = threading.Lock()

    def on_start(self, ev: event.Event) -> None:
        with self._lock:
            if self._depth == 0:
                self._started = self.clock()
                self.count += 1
            self._depth += 1

    def on_end(self, ev: event.Event) -> None:
        with self._lock:
            self._depth = max(0, self._depth - 1)
            if self._depth == 0:
                self.seconds += self.clock() - self._started

    @property
    def compiling(self) -> bool:
        return self._depth > 0

    def running_seconds(self) -> float:
        """Compile time so far, including a compilation still running."""
        with self._lock:
            return self.seconds + (self.clock() - self._started if self._depth else 0.0)

    def __enter__(self) -> CompileWatch:
        event.register("numba:compile", self)
        return self

    def __exit__(self, *exc: object) -> None:
        event.unregister("numba:compile", self)


class ProgressBar:
    """Progress over ``total`` layers (of every run together) on ``stream``.

    Nothing is shown until ``delay`` seconds have passed, so short runs stay silent. On a terminal (``tty``,
    default: ``stream.isatty()``) the bar is redrawn in place every ``tick`` seconds and as each layer starts;
    otherwise a plain line is written every ``line_every`` seconds. While ``watch`` sees numba compiling, the
    line says so. :meth:`finish` ends the display; use the bar as a context manager to run the ticker thread.
    """

    def __init__(self, total: int, stream: TextIO | None = None, *, delay: float = 1.0, width: int = 20,
                 tty: bool | None = None, watch: CompileWatch | None = None, tick: float = 0.5,
                 line_every: float = 10.0, clock: Callable[[], float] = time.monotonic, unit: str = "layers"):
        self.total = max(int(total), 1)
        self.unit = unit
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)()) if tty is None else tty
        self.delay, self.width, self.tick, self.line_every = delay, width, tick, line_every
        self.watch = watch
        self.clock = clock
        self.start = clock()
        self.completed = 0  # layers finished over all runs
        self.drawn = False
        self._last_line = -1e9
        self._last_len = 0
        self._label = ""
        self._layer = ""
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ----------------------------------------------------------------- feeding
    def callback(self, label: str) -> Callable[[int, int, str], None]:
        """The ``progress=`` callback for one simulate() run, labelled ``label`` (e.g. the arch name)."""
        offset = self.completed

        def progress(done: int, total: int, layer_name: str) -> None:
            with self._lock:
                self.completed = offset + done
                self._label = label
                self._layer = layer_name
            self.update()

        return progress

    def steps(self) -> Callable[[str, int, int, dict], None]:
        """A ``progress=`` callback for step-wise work (retraining, searches): (phase, step, steps, figures); the
        bar's total follows ``steps``, and the figures (e.g. the loss) are shown beside the phase."""

        def progress(phase: str, step: int, steps: int, figures: dict) -> None:
            with self._lock:
                self.total = max(int(steps), 1)
                self.completed = step
                self._label = phase
                self._layer = "  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                        for k, v in figures.items())
            self.update()

        return progress

    def update(self) -> None:
        """Show the state now if it is time to."""
        with self._lock:
            now = self.clock()
            if now - self.start < self.delay or not self._label:  # quiet at first, and until something reports
                return
            if self.tty:
                self._draw()
            elif now - self._last_line >= self.line_every:
                self._line(now)

    # ----------------------------------------------------------------- display
    def _status(self) -> str:
        done = min(self.completed, self.total)
        text = f"{done}/{self.total} {self.unit}  {self._label}  {self._layer}".rstrip()
        if self.watch is not None and self.watch.compiling:
            text += f"  (compiling numba kernels: {self.watch.running_seconds():.0f} s; first run only)"
        return text

    def _draw(self) -> None:
        done = min(self.completed, self.total)
        filled = self.width * done // self.total
        text = f"[{'#' * filled}{'.' * (self.width - filled)}] {self._status()}"
        pad = " " * max(0, self._last_len - len(text))
        self.stream.write(f"\r{text}{pad}")
        self.stream.flush()
        self._last_len = len(text)
        self.drawn = True

    def _line(self, now: float) -> None:
        self.stream.write(f"progress: {self._status()}  [{now - self.start:.0f} s]\n")
        self.stream.flush()
        self._last_line = now

    def finish(self) -> None:
        """End the display (a no-op when nothing was drawn) and stop the ticker."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        with self._lock:
            if self.tty and self.drawn:
                self._draw()
                self.stream.write("\n")
                self.stream.flush()
            self.drawn = False

    # ----------------------------------------------------------------- ticker
    def _run(self) -> None:
        while not self._stop.wait(self.tick):
            self.update()

    def __enter__(self) -> ProgressBar:
        self._thread = threading.Thread(target=self._run, name="progress", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.finish()
