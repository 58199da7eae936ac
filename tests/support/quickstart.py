"""The quickstart's shell steps (README.md, docs/quickstart.md), read from the page and run as a
user in one shell would run them.

A page marks each shell block of its quickstart with ``<!-- quickstart -->`` right above the
fence. :func:`steps` reads those blocks into commands, one per line (a trailing ``\\`` continues
the line, ``# ...`` is a comment). :class:`Shell` runs them: ``export`` changes the environment
of the commands after it, a trailing ``&`` starts a background job, and a command whose comment
says "Ctrl-C" runs until the test interrupts it with SIGINT; everything else must finish.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parents[2]
MARKER = "<!-- quickstart -->"
FENCE = "```bash"
_CONTINUATION = re.compile(r"\\\n\s*")


@dataclass(frozen=True, slots=True)
class Step:
    """One command line of the quickstart."""

    written: str
    """The command as the page writes it, ``&`` included, without its comment."""
    comment: str

    @property
    def background(self) -> bool:
        return self.written.endswith("&")

    @property
    def command(self) -> str:
        """What the shell runs: ``written`` without the trailing ``&``."""
        return self.written.removesuffix("&").rstrip()

    @property
    def interrupted(self) -> bool:
        """The page says the command runs until Ctrl-C."""
        return "ctrl-c" in self.comment.lower()


def _split_comment(line: str) -> tuple[str, str]:
    """``(command, comment)``: the first ``#`` outside quotes that starts a word opens the comment."""
    quote = ""
    for i, char in enumerate(line):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip(), line[i + 1 :].strip()
    return line.rstrip(), ""


def blocks(page: str) -> list[str]:
    """The text of every marked shell block of ``page`` (a path from the repository root)."""
    text = (ROOT / page).read_text(encoding="utf-8")
    out = []
    for part in text.split(MARKER)[1:]:
        body = part.lstrip("\n")
        assert body.startswith(FENCE + "\n"), f"{page}: {MARKER} must sit right above a {FENCE} fence"
        out.append(body[len(FENCE) + 1 :].split("\n```", 1)[0])
    return out


def steps(page: str) -> list[Step]:
    """Every command of the page's quickstart, in order."""
    out = []
    for block in blocks(page):
        for line in _CONTINUATION.sub(" ", block).splitlines():
            command, comment = _split_comment(line.strip())
            if command:
                out.append(Step(command, comment))
    return out


@dataclass
class Ran:
    """A command that ran: its exit status and what it printed."""

    step: Step
    returncode: int
    stdout: str
    stderr: str


@dataclass
class Shell:
    """One shell session: its environment, and the background jobs it started (their output goes
    to files in ``logs``, so a chatty job never blocks on a full pipe)."""

    env: dict[str, str]
    logs: Path
    jobs: list[tuple[Step, asyncio.subprocess.Process, Path]] = field(default_factory=list)

    async def _spawn(self, script: str, output: Path | None = None) -> asyncio.subprocess.Process:
        with contextlib.ExitStack() as files:
            out: int | IO[bytes] = asyncio.subprocess.PIPE
            err: int | IO[bytes] = asyncio.subprocess.PIPE
            if output is not None:
                out = files.enter_context(output.with_suffix(".out").open("wb"))
                err = files.enter_context(output.with_suffix(".err").open("wb"))
            return await asyncio.create_subprocess_exec(
                "bash",
                "-c",
                script,
                env=self.env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,  # signals reach the command only, never the test
            )

    async def run(
        self, step: Step, command: str, *, timeout_s: float, interrupt_after_s: float
    ) -> Ran | None:
        """Run ``command`` (``step``'s, or a stand-in for it) as the step says: an export, a
        background job (returns ``None``), or a command that must finish within ``timeout_s`` (or,
        one that runs until Ctrl-C, gets SIGINT after ``interrupt_after_s``)."""
        if command.startswith("export "):
            proc = await self._spawn(f"set -e\n{command}\nenv -0")
            out, err = await asyncio.wait_for(proc.communicate(), timeout_s)
            assert proc.returncode == 0, f"{step.written}: {err.decode()}"
            self.env = dict(item.split("=", 1) for item in out.decode().split("\0") if "=" in item)
            return Ran(step, 0, "", err.decode())
        if step.background:
            output = self.logs / f"job-{len(self.jobs) + 1}"
            self.jobs.append((step, await self._spawn(f"exec {command}", output), output))
            return None
        proc = await self._spawn(f"exec {command}")
        communicate = asyncio.ensure_future(proc.communicate())
        if step.interrupted:
            done, _ = await asyncio.wait({communicate}, timeout=interrupt_after_s)
            if not done:
                proc.send_signal(signal.SIGINT)  # what Ctrl-C does
        try:
            out, err = await asyncio.wait_for(communicate, timeout_s)
        except TimeoutError:
            _kill(proc)
            raise AssertionError(f"{step.written}: still running after {timeout_s} s") from None
        return Ran(step, _status(proc), out.decode(), err.decode())

    async def stop_jobs(self, timeout_s: float) -> list[Ran]:
        """SIGTERM every background job (what ``kill %1 ...`` does) and wait for them to end."""
        for _, proc, _ in self.jobs:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.terminate()
        out = []
        for step, proc, output in self.jobs:
            try:
                await asyncio.wait_for(proc.wait(), timeout_s)
            except TimeoutError:
                _kill(proc)
                await proc.wait()
            out.append(Ran(step, _status(proc), *self.output(output)))
        self.jobs.clear()
        return out

    def ended(self) -> list[Ran]:
        """The background jobs that have already ended (none should, before ``stop_jobs``)."""
        return [Ran(s, _status(p), *self.output(o)) for s, p, o in self.jobs if p.returncode is not None]

    @staticmethod
    def output(output: Path) -> tuple[str, str]:
        read = [output.with_suffix(suffix).read_text(errors="replace") for suffix in (".out", ".err")]
        return read[0], read[1]


def _status(proc: asyncio.subprocess.Process) -> int:
    return -1 if proc.returncode is None else proc.returncode


def _kill(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
