"""Python candidates for tests; importable by worker subprocesses (``--callable``)."""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import Callable
from typing import Any

from shadowlane.demo.grammar import VERBS, conjugate, parse_sentence
from shadowlane.demo.model_server import PREFIX, ModelBehaviour, answer

_B = ModelBehaviour("grammar-b", skill=1.0, latency_ms=0)


def grammar_b(body: dict[str, Any]) -> dict[str, Any]:
    """The demo's candidate B, in-process: asks for both tools, then answers."""
    return {"choices": [{"message": answer(_B, body["messages"])}], "usage": {"total_tokens": 10}}


def echo(body: dict[str, Any]) -> str:
    return "echo"


CALLS_FILE_ENV = "SHADOWLANE_TEST_CALLS_FILE"


def recorded_echo(body: dict[str, Any]) -> str:
    """``echo`` that appends a line per call to the file named by ``$SHADOWLANE_TEST_CALLS_FILE``
    (one O_APPEND write: calls from several processes and threads never interleave)."""
    path = os.environ.get(CALLS_FILE_ENV)
    if path:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, b"call\n")
        finally:
            os.close(fd)
    return "echo"


def always_raises(body: dict[str, Any]) -> str:
    raise RuntimeError("candidate exploded")


async def too_slow(body: dict[str, Any]) -> str:
    await asyncio.sleep(30)
    return "never"


async def slow_50ms(body: dict[str, Any]) -> str:
    await asyncio.sleep(0.05)
    return "slow"


# --- models for the noise-floor / λ tests: prod's model phrases its answer at random -----------
PHRASINGS = ("Corrected: {}", "Here is the corrected sentence: {}", "Fixed: {}")
OFF_TOPIC = "Sorry, I can only help with grammar questions about English verbs."


def _sentence(body: dict[str, Any]) -> str:
    text = str(body["messages"][-1]["content"]).removeprefix(PREFIX)
    return text if parse_sentence(text) else ""


def _rng(body: dict[str, Any], salt: str) -> random.Random:
    """Seeded by the body's seed (λ replays: every model given the same seed says the same), else by
    ``salt``: a model's "random" phrasing differs from another model's yet is the same every run,
    so a test's outcome cannot depend on the draw."""
    seed = body.get("seed")
    key = f"seed {seed}" if isinstance(seed, int) else f"unseeded {salt}"
    return random.Random(f"{key}:{_sentence(body)}")


def correct_of(sentence: str) -> str:
    parsed = parse_sentence(sentence)
    if parsed is None:
        return sentence
    verb, tense, person = parsed
    words = sentence.rstrip(".").split()
    assert verb in VERBS
    return " ".join([words[0], conjugate(verb, tense, person), *words[2:]]) + "."


def prod_like(salt: str) -> Callable[[dict[str, Any]], str]:
    """Prod's model: the right correction, phrased at random (by the body's seed, else by ``salt``)."""

    def answer(body: dict[str, Any]) -> str:
        return _rng(body, salt).choice(PHRASINGS).format(correct_of(_sentence(body)))

    return answer


def drifted(body: dict[str, Any]) -> str:
    """A candidate that answers something else: same shape, different content."""
    return "Corrected: They bought some bread and walked to the park yesterday evening."


def seed_sensitive(salt: str) -> Callable[[dict[str, Any]], str]:
    """Fine without a seed and with seed 1; off topic with any other seed: λ must catch it."""
    fine = prod_like(salt)

    def answer(body: dict[str, Any]) -> str:
        seed = body.get("seed")
        return OFF_TOPIC if isinstance(seed, int) and seed != 1 else fine(body)

    return answer
