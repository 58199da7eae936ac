"""The container's ``HEALTHCHECK``: ``python -m shadowlane.health_probe [--port 9108] [--ready]``.

GETs ``/healthz`` (or ``/readyz`` with ``--ready``) of the process serving it on this host and
exits 0 when it answers 200, 1 otherwise (Docker's healthy / unhealthy), printing the answer's
body (or why there was none) on one line. The standard library only, and nothing else of
Shadowlane is imported: a probe runs every few seconds in a slim image and must cost next to nothing.
"""

from __future__ import annotations

import argparse
import sys
import urllib.error
import urllib.request

DEFAULT_PORT = 9108
"""The port the image's workers serve ``/metrics``, ``/healthz`` and ``/readyz`` on."""

HEALTHY, UNHEALTHY = 0, 1


def probe(url: str, timeout_s: float) -> tuple[int, str]:
    """(exit code, one line): 0 for a 200 answer, 1 for any other answer or none."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via an HTTP(S)_PROXY
    try:
        with opener.open(url, timeout=timeout_s) as response:
            body = response.read(4096).decode(errors="replace").strip()
            return (HEALTHY if response.status == 200 else UNHEALTHY), body
    except urllib.error.HTTPError as exc:  # a 503 (or 404: nothing serves health there)
        return UNHEALTHY, f"{exc.code} {exc.read(4096).decode(errors='replace').strip()}"
    except (OSError, ValueError) as exc:  # refused, timed out, a malformed URL
        return UNHEALTHY, f"no answer from {url}: {exc}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m shadowlane.health_probe",
        description="Exit 0 when the local worker's /healthz (or /readyz) answers 200, else 1.",
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="the worker's --metrics-port")
    parser.add_argument("--host", default="127.0.0.1", help="where the worker listens")
    parser.add_argument("--ready", action="store_true", help="probe /readyz instead of /healthz")
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds to wait for the answer")
    args = parser.parse_args(argv)
    path = "/readyz" if args.ready else "/healthz"
    code, line = probe(f"http://{args.host}:{args.port}{path}", args.timeout)
    print(line.replace("\n", " "), file=sys.stdout if code == HEALTHY else sys.stderr)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
