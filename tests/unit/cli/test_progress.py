"""shadowlane/cli/progress.py: progress is drawn on a terminal (a real pseudo-terminal here, even
one that does not report its size) and is silent on a pipe or with ``--json``."""

from __future__ import annotations

import os
import pty
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

from shadowlane.cli.progress import Progress, wants_progress


@contextmanager
def terminal() -> Iterator[tuple[TextIO, int]]:
    """A pseudo-terminal of no reported size: (the stream a command writes to, the reading end)."""
    master, slave = pty.openpty()
    stream = os.fdopen(slave, "w", buffering=1)
    try:
        yield stream, master
    finally:
        stream.close()
        os.close(master)


def _drain(master: int) -> str:
    os.set_blocking(master, False)
    seen = b""
    try:
        while chunk := os.read(master, 65536):
            seen += chunk
    except (BlockingIOError, OSError):
        pass
    return seen.decode(errors="replace")


def test_only_a_terminal_without_json_wants_progress() -> None:
    read, write = os.pipe()
    with os.fdopen(write, "w") as pipe, terminal() as (tty, _):
        assert not wants_progress(pipe, as_json=False)
        assert wants_progress(tty, as_json=False)
        assert not wants_progress(tty, as_json=True)
    os.close(read)


def test_steps_counts_and_notes_reach_the_terminal() -> None:
    with terminal() as (tty, master):
        with Progress.for_command(as_json=False, stream=tty) as progress:
            assert progress.enabled
            progress.step("reading requests", unit="records")
            progress.advance(1234)
            progress.note("stage 5 %: PASS")
            progress.step("simulating", total=10, unit="experiments")
            progress.advance(10)
        shown = _drain(master)
    assert "reading requests: 1234 records" in shown
    assert "stage 5 %: PASS" in shown
    assert "simulating: 100%" in shown
    assert "10/10" in shown


def test_with_json_nothing_is_written() -> None:
    with terminal() as (tty, master):
        with Progress.for_command(as_json=True, stream=tty) as progress:
            progress.step("reading", unit="records")
            progress.advance(5)
            progress.note("a note")
        assert _drain(master) == ""
