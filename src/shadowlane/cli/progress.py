"""Progress for a person at a terminal: a bar or a ticking status line on stderr, else nothing.

The commands that take a while (``demo``, ``rescore``, ``report``, ``rollout``, ``simulate-gates``)
say what they are doing while stderr is a terminal and ``--json`` was not asked for. Piped,
redirected, under a scheduler or with ``--json``, no progress is written at all: stdout holds
exactly the result and stderr only what went wrong. tqdm draws; a background thread redraws the
current line twice a second so a long wait (a broker starting, a rollout window) visibly ticks.
"""

from __future__ import annotations

import os
import sys
import threading
from types import TracebackType
from typing import Never, TextIO

from tqdm import tqdm

REFRESH_S = 0.5
FALLBACK_WIDTH, FALLBACK_ROWS = 80, 24
"""The size assumed of a terminal that does not report its own (tqdm draws nothing in 0 × 0)."""
_COUNTING = "{desc}: {n_fmt}{unit} [{elapsed}, {rate_fmt}]"
_WAITING = "{desc} [{elapsed}]"


def _width(stream: TextIO) -> int:
    """The terminal's width in columns; 0 when it does not say (a bare pseudo-terminal)."""
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, OSError, ValueError):
        return 0


def wants_progress(stream: TextIO, *, as_json: bool) -> bool:
    """Progress is for a terminal, and never alongside ``--json``."""
    if as_json:
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


class Progress:
    """One line of progress at a time: :meth:`step` starts it (a bar when the total is known, a
    count or an elapsed-time status otherwise), :meth:`advance` moves it, :meth:`note` prints a
    line above it. Every method does nothing when the progress is disabled."""

    def __init__(self, enabled: bool, stream: TextIO | None = None) -> None:
        self.enabled = enabled
        self._stream = stream if stream is not None else sys.stderr
        self._bar: tqdm[Never] | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self._sized = _width(self._stream) > 0

    @classmethod
    def for_command(cls, *, as_json: bool, stream: TextIO | None = None) -> Progress:
        """Enabled when ``stream`` (stderr) is a terminal and ``--json`` is off."""
        stream = stream if stream is not None else sys.stderr
        return cls(wants_progress(stream, as_json=as_json), stream)

    @classmethod
    def silent(cls) -> Progress:
        return cls(False)

    def step(self, desc: str, *, total: float | None = None, unit: str = "") -> None:
        """Start a new line of progress (ending the current one)."""
        if not self.enabled:
            return
        with self._lock:
            self._close_bar()
            fmt = None if total is not None else (_COUNTING if unit else _WAITING)
            self._bar = tqdm(
                total=total,
                desc=desc,
                unit=f" {unit}" if unit else "it",
                file=self._stream,
                bar_format=fmt,
                leave=True,
                dynamic_ncols=self._sized,
                ncols=None if self._sized else FALLBACK_WIDTH,
                nrows=None if self._sized else FALLBACK_ROWS,
                mininterval=0.2,
            )
        self._start_ticker()

    def advance(self, n: float = 1) -> None:
        """Move the current line on by ``n``."""
        if self.enabled and self._bar is not None:
            with self._lock:
                self._bar.update(n)

    def describe(self, desc: str) -> None:
        """Change what the current line says it is doing."""
        if self.enabled and self._bar is not None:
            with self._lock:
                self._bar.set_description_str(desc)

    def note(self, text: str) -> None:
        """A line of its own above the progress (an event worth keeping on screen)."""
        if self.enabled:
            with self._lock:
                tqdm.write(text, file=self._stream)

    def close(self) -> None:
        """End the current line and stop redrawing."""
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
            self._ticker = None
        with self._lock:
            self._close_bar()

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        _kind: type[BaseException] | None,
        _exc: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self.close()

    def _close_bar(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def _start_ticker(self) -> None:
        if self._ticker is None:
            self._stop.clear()
            self._ticker = threading.Thread(target=self._tick, name="shadowlane-progress", daemon=True)
            self._ticker.start()

    def _tick(self) -> None:
        while not self._stop.wait(REFRESH_S):
            with self._lock:
                if self._bar is not None:
                    self._bar.refresh()
