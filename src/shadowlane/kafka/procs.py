"""Process and port helpers of the local Kafka broker: free 127.0.0.1 ports, /proc inspection.

Linux only (reads ``/proc``). A broker is recognised by its argv alone: a live ``kafka.Kafka`` JVM
whose arguments point into the broker's data dir (see :func:`is_our_broker`), so a recorded pid
that has exited or been reused by another process is not mistaken for the broker.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Sequence
from pathlib import Path

KAFKA_MAIN = "kafka.Kafka"
HOST = "127.0.0.1"


def free_ports(count: int = 2, preferred: Sequence[int] = ()) -> list[int]:
    """``preferred`` when all are free (and distinct), else ``count`` distinct ports the OS hands out."""
    if len(preferred) == count and len(set(preferred)) == count and all(port_is_free(p) for p in preferred):
        return list(preferred)
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) for _ in range(count)]
        for sock in socks:
            sock.bind((HOST, 0))
        return [int(sock.getsockname()[1]) for sock in socks]


def port_is_free(port: int) -> bool:
    """True when a listener could bind ``127.0.0.1:port`` (SO_REUSEADDR, like the JVM)."""
    if not 0 < port < 65536:
        return False
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def process_cmdline(pid: int) -> list[str] | None:
    """argv of a process, None when it is gone, a zombie or unreadable."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a] or None


def pid_alive(pid: int) -> bool:
    """True while ``pid`` runs; a zombie counts as dead (our own child is reaped on the way)."""
    if pid <= 0:
        return False
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)
    stat = _proc_stat(pid)
    return bool(stat) and stat[0] not in ("Z", "X")


def _proc_stat(pid: int) -> list[str]:
    """Fields of /proc/<pid>/stat after the command name: state, ppid, pgrp, ... ([] if gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return []


def _all_pids() -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]


def is_our_broker(pid: int, data_dir: Path) -> bool:
    """True only for a live ``kafka.Kafka`` JVM whose arguments point into ``data_dir``."""
    args = process_cmdline(pid) if pid > 0 else None
    if not args or KAFKA_MAIN not in args or not pid_alive(pid):
        return False
    prefix = f"{data_dir}{os.sep}"
    return any(a.startswith(prefix) or a.partition("=")[2].startswith(prefix) for a in args)


def process_group(pgid: int) -> list[int]:
    """Pids of the live processes in process group ``pgid``."""
    stats = {pid: _proc_stat(pid) for pid in _all_pids()}
    return [pid for pid, st in stats.items() if len(st) > 2 and st[2] == str(pgid) and st[0] not in "ZX"]


def find_broker_pids(data_dir: Path) -> list[int]:
    """Every live broker JVM on ``data_dir`` (normally none or the recorded one)."""
    return [pid for pid in _all_pids() if pid != os.getpid() and is_our_broker(pid, data_dir)]
