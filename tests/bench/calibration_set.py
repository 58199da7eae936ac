"""Generates the ΔS calibration set from its hand-written sources, seeded: byte-identical every run.

``python -m tests.bench.calibration_set`` rewrites ``tests/bench/data/delta_s_calibration.jsonl``;
``--check`` exits 1 when the file is not what the sources generate; ``--stats`` prints the length
distribution (whitespace words and MiniLM tokens).

People wrote the material (:mod:`tests.bench.calibration_sources`); this script only combines it:
which scenario, which slot values, which of the two wordings goes to which side, how many claims
(from a fixed distribution of target lengths), and for ``different_fact`` which slot changes.
Each category has its own ``random.Random`` seeded from ``SEED`` and the category's name, so
changing one category's recipe leaves the others' pairs as they were.

In every category the two sides are worded differently (each claim's other wording, another
opener, code renamed or reformatted, JSON with another key order and layout); what the label
changes is the meaning: nothing (``equivalent``), one fact, argument or piece of logic
(``changed``), the claims denied (``contradiction``), the topic (``unrelated``).
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import statistics
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Final, Literal

from tokenizers import Tokenizer

from shadowlane.compare.calibration import CATEGORIES, CalibrationPair, dump_pairs
from shadowlane.compare.quality import normalise
from tests.bench.calibration_sources import (
    ArgValue,
    Claim,
    CodeSample,
    Scenario,
    Sources,
    Style,
    Tool,
    load_sources,
    slots,
)

SEED: Final = 20
PER_CATEGORY: Final = 64
OUTPUT: Final = Path(__file__).parent / "data" / "delta_s_calibration.jsonl"
#: Target length of side A in whitespace-separated words: (low, high, share of the pairs). The
#: realised lengths stop at the claim closest to the target, and code answers are shorter in words
#: (but not in tokens): `--stats` prints what came out.
LENGTH_BUCKETS: Final = ((20, 40, 0.20), (40, 80, 0.25), (80, 160, 0.25), (160, 300, 0.20), (300, 400, 0.10))
TOOL_KINDS: Final = ("call", "summary", "call+summary")

Form = Literal["a", "b", "deny"]


def _words(text: str) -> int:
    return len(text.split())


def targets(rng: random.Random, n: int) -> list[int]:
    """``n`` target lengths, stratified: each bucket gets its share of the pairs, in shuffled order."""
    buckets = [i for i, (_, _, share) in enumerate(LENGTH_BUCKETS) for _ in range(round(share * n))]
    buckets = (buckets + [len(LENGTH_BUCKETS) // 2] * n)[:n]
    rng.shuffle(buckets)
    return [rng.randint(LENGTH_BUCKETS[i][0], LENGTH_BUCKETS[i][1]) for i in buckets]


def _take(lengths: Sequence[int], target: int, already: int = 0) -> int:
    """How many of ``lengths`` to take (at least one) so the total lands closest to ``target``."""
    taken, total = 0, already
    for n in lengths:
        if taken and total + n / 2 > target:
            break
        taken, total = taken + 1, total + n
    return taken


# ----------------------------------------------------------------------------------- prose


@dataclass
class Block:
    """The claims one scenario contributes to an answer, with that scenario's slot values."""

    scenario: Scenario
    values: dict[str, str]
    claims: list[Claim]


def _plan(
    main: Scenario, bundle: Mapping[str, str], sources: Sources, target: int, rng: random.Random
) -> list[Block]:
    """The main scenario's claims, then (for long targets) the next scenarios of its group."""
    group = [s for s in sources.scenarios if s.group == main.group]
    start = group.index(main)
    blocks: list[Block] = []
    total = 0
    for scenario in group[start:] + group[:start]:
        values = dict(bundle) if scenario is main else dict(rng.choice(scenario.bundles))
        lengths = [_words(c.a) for c in scenario.claims]
        taken = _take(lengths, target, total) if not blocks else _take([0, *lengths], target, total) - 1
        if taken <= 0:
            break
        blocks.append(Block(scenario, values, list(scenario.claims[:taken])))
        total += sum(lengths[:taken])
        if taken < len(lengths):
            break
    return blocks


def _claim_text(claim: Claim, form: Form, values: Mapping[str, str]) -> str:
    return {"a": claim.a, "b": claim.b, "deny": claim.deny}[form].format(**values)


def _prose(blocks: Sequence[Block], forms: Sequence[Sequence[Form]], style: Style, rng: random.Random) -> str:
    """One side: opener, each block as paragraphs of up to four sentences, a join between blocks,
    closer. Openers, joins and closers are drawn per side, as two runs of a model would vary."""
    paragraphs: list[str] = []
    for i, (block, block_forms) in enumerate(zip(blocks, forms, strict=True)):
        sentences = [_claim_text(c, f, block.values) for c, f in zip(block.claims, block_forms, strict=True)]
        sentences.insert(0, rng.choice(style.openers) if i == 0 else rng.choice(style.joins))
        sentences = [s for s in sentences if s]
        paragraphs += [" ".join(sentences[j : j + 4]) for j in range(0, len(sentences), 4)]
    closer = rng.choice(style.closers)
    return "\n\n".join([*paragraphs, closer] if closer else paragraphs)


def _other(form: Form) -> Form:
    return "b" if form == "a" else "a"


def _prose_pair(
    category: str, index: int, sources: Sources, target: int, rng: random.Random
) -> CalibrationPair:
    scenario = sources.scenarios[index % len(sources.scenarios)]
    blocks = _plan(scenario, rng.choice(scenario.bundles), sources, target, rng)
    a_forms: list[list[Form]] = [[rng.choice(("a", "b")) for _ in block.claims] for block in blocks]
    b_forms = [[_other(f) for f in block_forms] for block_forms in a_forms]
    b_blocks = [Block(b.scenario, dict(b.values), b.claims) for b in blocks]
    if category == "contradiction":
        b_forms = [
            ["deny" if c.deny else f for c, f in zip(block.claims, fs, strict=True)]
            for block, fs in zip(blocks, b_forms, strict=True)
        ]
    elif category == "different_fact":
        candidates = sorted(
            {(i, slot) for i, b in enumerate(blocks) for c in b.claims for slot in slots(c.a)}
        )
        i, slot = rng.choice(candidates)
        b_blocks[i].values[slot] = rng.choice(blocks[i].scenario.alternatives(slot, blocks[i].values[slot]))
    relation = {"paraphrase": "equivalent", "different_fact": "changed", "contradiction": "contradiction"}
    return CalibrationPair(
        id=f"{category}-{index + 1:03d}",
        category=category,
        relation=relation[category],
        topic="+".join(b.scenario.key for b in blocks),
        a=_prose(blocks, a_forms, scenario.style, rng),
        b=_prose(b_blocks, b_forms, scenario.style, rng),
    )


def _one_side(scenario: Scenario, sources: Sources, target: int, rng: random.Random) -> str:
    blocks = _plan(scenario, rng.choice(scenario.bundles), sources, target, rng)
    forms: list[list[Form]] = [[rng.choice(("a", "b")) for _ in block.claims] for block in blocks]
    return _prose(blocks, forms, scenario.style, rng)


# ------------------------------------------------------------------------------------ code


def _code_answer(sample: CodeSample, intro: str, code: str, notes: Sequence[str]) -> str:
    parts = [intro, f"```{sample.lang}\n{code}\n```"]
    if notes:
        parts.append(" ".join(notes))
    return "\n\n".join(parts)


def _code_sides(sample: CodeSample, changed: bool, target: int, rng: random.Random) -> tuple[str, str]:
    base = _words(sample.intro[0]) + _words(sample.code)
    count = _take([0, *(_words(n[0]) for n in sample.notes)], target, base) - 1
    flips = [rng.random() < 0.5 for _ in range(count + 1)]  # intro, then each note
    pairs = [sample.intro, *sample.notes[:count]]
    first = [p[0] if flip else p[1] for p, flip in zip(pairs, flips, strict=True)]
    second = [p[1] if flip else p[0] for p, flip in zip(pairs, flips, strict=True)]
    return (
        _code_answer(sample, first[0], sample.code, first[1:]),
        _code_answer(sample, second[0], sample.changed if changed else sample.same, second[1:]),
    )


def _code_pair(index: int, sources: Sources, target: int, rng: random.Random) -> CalibrationPair:
    sample = sources.code[index % len(sources.code)]
    changed = (index // len(sources.code)) % 2 == 1
    a, b = _code_sides(sample, changed, target, rng)
    relation = "changed" if changed else "equivalent"
    return CalibrationPair(f"code-{index + 1:03d}", "code", relation, sample.key, a, b)


# ------------------------------------------------------------------------------- tool calls


def _call_json(tool: Tool, args: Mapping[str, ArgValue], layout: int) -> str:
    """0: compact, arguments in declared order; 1: indented, keys reversed; 2: OpenAI's shape,
    arguments as a JSON string with sorted keys. Layouts 1 and 2 are the same call as 0."""
    if layout == 0:
        return json.dumps({"name": tool.name, "arguments": dict(args)}, ensure_ascii=False)
    if layout == 1:
        reversed_args = dict(reversed(list(args.items())))
        return json.dumps({"arguments": reversed_args, "name": tool.name}, ensure_ascii=False, indent=2)
    encoded = json.dumps(dict(sorted(args.items())), ensure_ascii=False)
    return json.dumps(
        {"type": "function", "function": {"name": tool.name, "arguments": encoded}}, ensure_ascii=False
    )


def _tool_answer(
    tool: Tool, kind: str, args: Mapping[str, ArgValue], sentences: Sequence[str], layout: int, side: int
) -> str:
    values = {name: str(value) for name, value in args.items()}
    summary = " ".join(s.format(**values) for s in sentences)
    call = _call_json(tool, args, layout)
    if kind == "call":
        return call
    if kind == "summary":
        return summary
    lead = ("I called `{}` with these arguments:", "Here is the call I made to `{}`:")[side].format(tool.name)
    return f"{lead}\n\n```json\n{call}\n```\n\n{summary}"


def _tool_pair(index: int, sources: Sources, target: int, rng: random.Random) -> CalibrationPair:
    tool = sources.tools[index % len(sources.tools)]
    changed = (index // len(sources.tools)) % 2 == 1
    kind = TOOL_KINDS[index % len(TOOL_KINDS)]
    args: dict[str, ArgValue] = {name: rng.choice(values) for name, values in tool.args.items()}
    count = _take([_words(s[0]) for s in tool.summary], target) if kind != "call" else 0
    flips = [rng.random() < 0.5 for _ in range(count)]
    first = [s[0] if flip else s[1] for s, flip in zip(tool.summary, flips, strict=False)]
    second = [s[1] if flip else s[0] for s, flip in zip(tool.summary, flips, strict=False)]
    b_args = dict(args)
    if changed:
        mentioned = set().union(*(slots(s) for s in first)) if kind == "summary" else set(tool.args)
        name = rng.choice([n for n in tool.variable if n in mentioned])
        b_args[name] = rng.choice([v for v in tool.args[name] if v != args[name]])
    layout = 1 + index % 2
    return CalibrationPair(
        id=f"tool_call-{index + 1:03d}",
        category="tool_call",
        relation="changed" if changed else "equivalent",
        topic=f"{tool.key}:{kind}",
        a=_tool_answer(tool, kind, args, first, 0, 0),
        b=_tool_answer(tool, kind, b_args, second, layout, 1),
    )


# ------------------------------------------------------------------------------------ set


def _unrelated_pair(index: int, sources: Sources, target: int, rng: random.Random) -> CalibrationPair:
    """A prose answer against one on another topic area: prose, or every fourth pair code or a
    tool's summary (alternating)."""
    scenario = sources.scenarios[index % len(sources.scenarios)]
    a = _one_side(scenario, sources, target, rng)
    if index % 4 == 3 and index % 8 == 3:
        sample = rng.choice(sources.code)
        b, other = _code_sides(sample, False, target, rng)[1], sample.key
    elif index % 4 == 3:
        tool = rng.choice(sources.tools)
        args = {name: rng.choice(values) for name, values in tool.args.items()}
        count = _take([_words(s[0]) for s in tool.summary], target)
        b = _tool_answer(tool, "summary", args, [s[0] for s in tool.summary[:count]], 0, 0)
        other = tool.key
    else:
        far = rng.choice([s for s in sources.scenarios if s.group != scenario.group])
        b, other = _one_side(far, sources, target, rng), far.key
    return CalibrationPair(
        f"unrelated-{index + 1:03d}", "unrelated", "unrelated", f"{scenario.key}|{other}", a, b
    )


def generate(sources: Sources | None = None, per_category: int = PER_CATEGORY) -> list[CalibrationPair]:
    """The whole set, category by category, in the order of :data:`CATEGORIES`."""
    src = sources or load_sources()
    pairs: list[CalibrationPair] = []
    for category in CATEGORIES:
        rng = random.Random(f"{SEED}:{category}")
        for index, target in enumerate(targets(rng, per_category)):
            if category == "code":
                pair = _code_pair(index, src, target, rng)
            elif category == "tool_call":
                pair = _tool_pair(index, src, target, rng)
            elif category == "unrelated":
                pair = _unrelated_pair(index, src, target, rng)
            else:
                pair = _prose_pair(category, index, src, target, rng)
            if normalise(pair.a) == normalise(pair.b):
                raise ValueError(f"{pair.id}: both sides are equal after normalising; ΔS would be 0 by rule")
            pairs.append(pair)
    return pairs


def _minilm_tokens(texts: Sequence[str]) -> list[int]:
    """Token counts with the comparator's tokenizer, untruncated."""
    data = resources.files("shadowlane.compare").joinpath("data/minilm-tokenizer.json").read_text("utf-8")
    tokenizer = Tokenizer.from_str(data)
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return [len(e.ids) for e in tokenizer.encode_batch(list(texts))]


def stats(pairs: Sequence[CalibrationPair]) -> str:
    """Per category: pairs, and min / median / max of both sides' lengths in words and tokens."""
    lines = ["category        pairs  words min/median/max  tokens min/median/max  <40 words  >300 words"]
    groups = {c: [p for p in pairs if p.category == c] for c in CATEGORIES} | {"all": list(pairs)}
    for name, members in groups.items():
        texts = [t for p in members for t in (p.a, p.b)]
        words, tokens = [_words(t) for t in texts], _minilm_tokens(texts)
        w = f"{min(words)}/{statistics.median(words):g}/{max(words)}"
        t = f"{min(tokens)}/{statistics.median(tokens):g}/{max(tokens)}"
        short, long = sum(n < 40 for n in words), sum(n > 300 for n in words)
        lines.append(f"{name:<15} {len(members):>5}  {w:>20}  {t:>21}  {short:>9}  {long:>10}")
    tokens = _minilm_tokens([t for p in pairs for t in (p.a, p.b)])
    edges = (0, 40, 80, 160, 256, 400)
    spans = [f"{lo}-{hi - 1}" for lo, hi in itertools.pairwise(edges)] + [f"{edges[-1]}+"]
    counts = [sum(lo <= n < hi for n in tokens) for lo, hi in itertools.pairwise([*edges, 10**9])]
    lines.append(
        "MiniLM tokens per text: " + ", ".join(f"{s}: {c}" for s, c in zip(spans, counts, strict=True))
    )
    over = sum(n > 256 for n in tokens)
    lines.append(f"texts over MiniLM's 256-token limit (truncated): {over} of {len(tokens)}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tests.bench.calibration_set", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the checked-in file differs")
    parser.add_argument("--stats", action="store_true", help="print the length distribution")
    args = parser.parse_args(argv)
    pairs = generate()
    text = dump_pairs(pairs)
    if args.check:
        same = OUTPUT.exists() and OUTPUT.read_bytes() == text.encode("utf-8")
        print(f"{OUTPUT}: {'up to date' if same else 'differs from what the sources generate'}")
        return 0 if same else 1
    if args.stats:
        print(stats(pairs))
        return 0
    OUTPUT.write_bytes(text.encode("utf-8"))
    print(f"wrote {len(pairs)} pairs to {OUTPUT}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
