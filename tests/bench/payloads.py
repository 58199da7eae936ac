"""The benchmarks' payloads: realistic request envelopes of ~1 KB and ~8 KB (chat request + answer +
tool I/O), and the ΔS benchmarks' answers (:func:`answer_mix`): prose of exact token lengths drawn
from the checked-in histogram ``data/answer_lengths.json``, prod's answer shared by two candidates
and the baseline, a stated share of results identical to prod's."""

from __future__ import annotations

import itertools
import json
import random
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Final

from tokenizers import Tokenizer

from shadowlane.compare.quality import normalise
from shadowlane.contracts.codec import encode
from shadowlane.contracts.envelope import RequestEnvelope
from tests.support.factories import envelope

_FILLER = (
    "The retrieved passage explains the refund policy for annual plans, the grace period, "
    "and the exceptions for enterprise tenants with custom contracts. "
)


def chat_body(i: int, size: str) -> dict[str, Any]:
    """A chat-completions request body; ``size`` is "1k" or "8k" (of the encoded envelope)."""
    repeat = 2 if size == "1k" else 48
    return {
        "model": "gpt-x",
        "messages": [
            {"role": "system", "content": "You are a support assistant. Cite the documents you use."},
            {
                "role": "user",
                "content": f"Question {i}: can I get a refund after 20 days? " + _FILLER * (repeat // 2),
            },
        ],
        "temperature": 0.2,
    }


def chat_response(i: int, size: str) -> dict[str, Any]:
    repeat = 1 if size == "1k" else 24
    return {
        "model": "gpt-x",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": f"Answer {i}: " + _FILLER * repeat}}
        ],
        "usage": {"prompt_tokens": 120, "completion_tokens": 80, "total_tokens": 200},
    }


def envelope_of_size(i: int, size: str) -> RequestEnvelope:
    """A valid envelope whose encoded size is about 1 KB or 8 KB."""
    env = envelope(i, tag=f"bench{size}")
    extra = _FILLER * (0 if size == "1k" else 47)
    prod = env.prod.model_copy(update={"answer": (env.prod.answer or "") + " " + extra})
    return env.model_copy(update={"prod": prod})


def encoded_size(size: str) -> int:
    return len(encode(envelope_of_size(0, size)))


# ------------------------------------------------------------------ ΔS answers (issue 20)

ANSWER_LENGTHS: Final = Path(__file__).parent / "data" / "answer_lengths.json"
DS_CANDIDATES: Final = ("cand-a", "cand-b", "baseline")
"""Two candidates and the baseline (the noise floor): 3 results, so 3 pairs, per request."""
IDENTICAL_SHARE: Final = 0.20
"""Share of the results whose answer is prod's, word for word: those pairs score ΔS 0 unembedded."""


@dataclass(frozen=True)
class LengthBin:
    lo: int  # tokens, inclusive
    hi: int  # tokens, inclusive
    share: float


@dataclass(frozen=True)
class LengthHistogram:
    """Answer lengths in MiniLM tokens: bins with their probabilities, uniform within a bin."""

    bins: tuple[LengthBin, ...]

    @classmethod
    def load(cls, path: Path = ANSWER_LENGTHS) -> LengthHistogram:
        """The checked-in histogram; its bins must be contiguous and their shares sum to 1."""
        data = json.loads(path.read_text("utf-8"))
        bins = tuple(LengthBin(b["tokens"][0], b["tokens"][1], float(b["share"])) for b in data["bins"])
        for before, after in itertools.pairwise(bins):
            if after.lo != before.hi + 1:
                raise ValueError(f"{path}: bins {before} and {after} are not contiguous")
        if any(b.lo > b.hi or b.share < 0 for b in bins) or abs(sum(b.share for b in bins) - 1) > 1e-9:
            raise ValueError(f"{path}: each bin needs lo <= hi and a share >= 0, the shares summing to 1")
        return cls(bins)

    def draw(self, rng: random.Random) -> int:
        chosen = rng.choices(self.bins, weights=[b.share for b in self.bins])[0]
        return rng.randint(chosen.lo, chosen.hi)

    def bin_of(self, tokens: int) -> int:
        """The index of the bin holding ``tokens`` (ValueError outside the histogram)."""
        for i, b in enumerate(self.bins):
            if b.lo <= tokens <= b.hi:
                return i
        raise ValueError(f"{tokens} tokens is outside {self.bins[0].lo}-{self.bins[-1].hi}")


def answer_tokenizer() -> Tokenizer:
    """The comparator's MiniLM tokenizer, without truncation or padding: counts an answer's tokens."""
    data = resources.files("shadowlane.compare").joinpath("data/minilm-tokenizer.json").read_text("utf-8")
    tokenizer = Tokenizer.from_str(data)
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


def answer_tokens(tokenizer: Tokenizer, text: str) -> int:
    """The length the histogram speaks of: tokens of ``text``, [CLS] and [SEP] not counted."""
    return len(tokenizer.encode(text, add_special_tokens=False).ids)


# A support and product assistant's sentences: slots filled at random give tens of thousands of
# distinct sentences, so answers differ in wording and tokenise like prose (a code path or two
# included), not like one word repeated.
_SUBJECTS: Final = (
    "the export job", "your workspace", "the billing page", "the mobile app", "each API key",
    "the admin console", "the weekly report", "the sync service", "a shared dashboard", "the audit log",
    "your team's plan", "the webhook endpoint", "the import wizard", "the search index", "the invoice",
    "the retention policy", "the onboarding checklist", "every scheduled backup",
)  # fmt: skip
_VERBS: Final = (
    "keeps", "shows", "updates", "sends", "removes", "rebuilds", "checks", "archives", "lists", "limits",
    "stores", "exports", "refreshes", "rejects", "groups", "highlights", "summarises",
)  # fmt: skip
_OBJECTS: Final = (
    "every record older than ninety days", "the last thirty invoices", "pending invitations",
    "failed payments", "the raw CSV file", "duplicate contacts", "the changes since your last visit",
    "all open tickets", "requests above the rate limit", "the usage for the current period",
    "each member's permissions", "the original attachments", "deleted projects", "the draft versions",
    "unverified domains", "the tax details on file",
)  # fmt: skip
_TIMES: Final = (
    "once a day", "every few minutes", "at the end of the billing cycle", "as soon as you save",
    "overnight in your region", "within an hour", "after the next release", "when the sync finishes",
    "before the report is sent", "on the first of each month",
)  # fmt: skip
_CONDITIONS: Final = (
    "the banner stays red", "you see error 403", "the numbers do not match", "the export is empty",
    "your card was declined", "the page keeps loading", "a member cannot sign in",
    "the webhook returns 500", "the totals look doubled", "the file is larger than the limit",
)  # fmt: skip
_ACTIONS: Final = (
    "sign out and back in", "clear the browser cache", "open Settings, then Integrations",
    "rotate the key under Security", "run the import again with the sample file",
    "check the filters at the top of the table", "ask an owner to grant the Editor role",
    "contact support with the request ID", "reconnect the account from the Integrations page",
    "pick a smaller date range", "retry the payment from the Billing tab",
)  # fmt: skip
_PLACES: Final = (
    "Settings", "the Billing tab", "the Members page", "the Developer section", "Reports", "the sidebar",
    "the account menu",
)  # fmt: skip
_OPTIONS: Final = (
    "Export as CSV", "Manage seats", "Regenerate token", "Download invoice", "Pause sync",
    "Restore version", "Edit schedule",
)  # fmt: skip
_RESOURCES: Final = ("exports", "invoices", "members", "webhooks", "reports", "projects")
_PLANS: Final = ("Starter", "Team", "Business", "Enterprise")
_OPENERS: Final = (
    "Thanks for the details.", "Sure, here is how it works.", "Good question.", "Here is what I found.",
    "Happy to help with that.",
)  # fmt: skip
_TEMPLATES: Final = (
    "{subject} {verb} {object} {time}.",
    "If {condition}, {action}.",
    "To change this, open {place} and choose {option}.",
    "On the {plan} plan, {subject} {verb} {object}.",
    "This usually happens because {subject} {verb} {object} {time}.",
    "Note that {subject} {verb} {object} only {time}.",
    "You can also {action}, which takes about {n} minutes.",
    "Step {k}: {action}.",
    "For example, `GET /v2/{resource}?page={k}` returns {object}.",
    "I checked your account: {subject} {verb} {object} {time}.",
    "The limit is {n} {resource} per hour on the {plan} plan, and {subject} {verb} {object}.",
)
_FILL_WORD: Final = "and"  # one token: completes an answer to its exact length if nothing else fits


class AnswerWriter:
    """Writes prose answers of an exact token count, deterministically from ``rng``.

    The BERT tokenizer splits on whitespace and punctuation, so a text's token count is the sum of
    its whitespace-separated words' counts: whole sentences are added while they fit, then the
    words of the next sentences that still fit (a cut-off last sentence, as a truncated answer
    reads), so the answer has exactly the tokens asked for.
    """

    def __init__(self, rng: random.Random, tokenizer: Tokenizer | None = None) -> None:
        self._rng = rng
        self._tokenizer = tokenizer or answer_tokenizer()
        self._cost: dict[str, int] = {}

    def _tokens(self, word: str) -> int:
        cost = self._cost.get(word)
        if cost is None:
            cost = self._cost[word] = answer_tokens(self._tokenizer, word)
        return cost

    def sentence(self) -> str:
        rng = self._rng
        text = rng.choice(_TEMPLATES).format(
            subject=rng.choice(_SUBJECTS),
            verb=rng.choice(_VERBS),
            object=rng.choice(_OBJECTS),
            time=rng.choice(_TIMES),
            condition=rng.choice(_CONDITIONS),
            action=rng.choice(_ACTIONS),
            place=rng.choice(_PLACES),
            option=rng.choice(_OPTIONS),
            plan=rng.choice(_PLANS),
            resource=rng.choice(_RESOURCES),
            n=rng.randint(2, 60),
            k=rng.randint(1, 9),
        )
        return text[0].upper() + text[1:]

    def write(self, target: int) -> str:
        """An answer of exactly ``target`` tokens (``answer_tokens``), in paragraphs."""
        words: list[str] = []
        total = 0
        first = self._rng.choice(_OPENERS) if self._rng.random() < 0.5 else self.sentence()
        sentences = 0
        pending = first.split()
        while total < target:
            if not pending:
                sentences += 1
                if sentences % 4 == 0:  # a paragraph every few sentences: whitespace, no tokens
                    words.append("\n\n")
                pending = self.sentence().split()
            whole = sum(self._tokens(w) for w in pending)
            if total + whole <= target:
                words.extend(pending)
                total += whole
                pending = []
                continue
            # the end: the words of the next sentences that still fit, in order, then done
            for _ in range(3):
                for word in pending:
                    if total + self._tokens(word) <= target:
                        words.append(word)
                        total += self._tokens(word)
                if total == target:
                    break
                pending = self.sentence().split()
            words.extend([_FILL_WORD] * (target - total))
            total = target
        return " ".join(words).replace(" \n\n ", "\n\n")


@dataclass(frozen=True)
class MirroredRequest:
    """One mirrored request's answers: prod's, and each candidate's (the baseline is one)."""

    prod: str
    results: tuple[tuple[str, str], ...]  # (candidate, answer)


@dataclass(frozen=True)
class AnswerMix:
    """The answers of ``requests`` mirrored requests, as the ΔS benchmarks feed the comparator."""

    requests: tuple[MirroredRequest, ...]
    identical_share: float  # the stated share of results identical to prod's
    lengths: tuple[int, ...]  # every answer's drawn length (tokens), prod's then the results', per request

    @property
    def pairs(self) -> int:
        return sum(len(r.results) for r in self.requests)

    @property
    def identical(self) -> int:
        """Results whose answer is prod's (each such pair scores 0 without the embedder)."""
        return sum(answer == r.prod for r in self.requests for _, answer in r.results)

    def texts_to_embed(self) -> list[str]:
        """The distinct texts the pairs need embedded (first appearance order): a prod answer once
        if any result differs from it, and each differing result."""
        texts: dict[str, None] = {}
        for r in self.requests:
            for _, answer in r.results:
                if answer != r.prod:
                    texts[r.prod] = None
                    texts[answer] = None
        return list(texts)


def answer_mix(
    requests: int,
    *,
    candidates: tuple[str, ...] = DS_CANDIDATES,
    identical_share: float = IDENTICAL_SHARE,
    seed: int = 20,
    histogram: LengthHistogram | None = None,
) -> AnswerMix:
    """``requests`` prod answers with one result per candidate each, every answer's length drawn
    from ``histogram`` (the checked-in one by default). Exactly ``round(identical_share × results)``
    results, chosen at random, repeat prod's answer; the others are written independently and never
    equal prod's after normalising. No answer repeats across requests (the cache's cross-request
    gain is not in these figures). Deterministic for a given seed."""
    rng = random.Random(seed)
    lengths = histogram or LengthHistogram.load()
    writer = AnswerWriter(rng)
    slots = requests * len(candidates)
    same = set(rng.sample(range(slots), round(identical_share * slots)))
    drawn: list[int] = []
    out: list[MirroredRequest] = []
    for i in range(requests):
        drawn.append(lengths.draw(rng))
        prod = writer.write(drawn[-1])
        results: list[tuple[str, str]] = []
        for j, candidate in enumerate(candidates):
            if i * len(candidates) + j in same:
                results.append((candidate, prod))
                continue
            drawn.append(lengths.draw(rng))
            answer = writer.write(drawn[-1])
            while normalise(answer) == normalise(prod):  # a short answer can come out the same
                answer = writer.write(drawn[-1])
            results.append((candidate, answer))
        out.append(MirroredRequest(prod, tuple(results)))
    return AnswerMix(tuple(out), identical_share, tuple(drawn))
