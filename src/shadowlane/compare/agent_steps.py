"""The first divergent step of an agent run: where a candidate's tool loop first leaves prod's.

A **step** is one tool call, in the order it was made: prod's recorded calls (the envelope's
``tool_io``, which the hook records in call order) and the candidate's replayed calls
(``ShadowResult.tool_calls``). Calls the model asks for in one turn count as consecutive steps.
Each step is compared as its :func:`~shadowlane.compare.quality.tool_key`, ``(tool, canonical
arguments)``. After its last tool step each side answers: that answer is step ``tool steps + 1``.

Walking both runs in step order, the first step where they differ gets one kind:

- ``tool_name``: both called a tool there, not the same one;
- ``tool_args``: the same tool, with other canonical arguments;
- ``extra_step``: the candidate called a tool where prod had already answered;
- ``missing_step``: the candidate answered where prod still called a tool;
- ``answer``: every tool step agrees and the final answers differ.

Whether the final answers *differ* is judged by the caller (``answers_differ``): the comparator
says they do when ΔS(prod, candidate) exceeds ``compare.lambda_threshold``, the cut-off at which λ
stops counting two answers to the same request as the same answer (a paraphrase is not a
divergence); without an embedder, when they differ after normalisation (``exact_match`` False).

``prod`` / ``shadow`` say what each side did at that step: ``tool(canonical arguments)`` or the
answer text, masked by the caller and cut to :data:`MAX_TEXT` characters.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from shadowlane.contracts.comparison import DivergenceKind

Step = tuple[str, str]
"""One tool step: ``(tool, canonical arguments)`` as :func:`~shadowlane.compare.quality.tool_key` gives it."""

MAX_TEXT = 200
"""Characters kept of what each side did at the divergent step (``divergence_prod`` / ``_shadow``)."""


@dataclass(frozen=True, slots=True)
class Divergence:
    """The first step at which the candidate's run differs from prod's (1-based)."""

    step: int
    kind: DivergenceKind
    tool: str | None  # the step's tool: prod's, else the candidate's (None: the final answer)
    prod: str | None  # what prod did there: 'tool(args)' or its answer (uncut, as given)
    shadow: str | None  # what the candidate did there


def call_text(step: Step) -> str:
    """A tool step as text: ``tool(canonical arguments)``."""
    return f"{step[0]}({step[1]})"


def cut(text: str | None, limit: int = MAX_TEXT) -> str | None:
    """``text`` cut to ``limit`` characters, the last one an ellipsis when it was longer."""
    if text is None or len(text) <= limit:
        return text
    return text[: limit - 1] + "…"


def first_divergence(
    prod: Sequence[Step],
    shadow: Sequence[Step],
    answers_differ: bool | None,
    prod_answer: str | None = None,
    shadow_answer: str | None = None,
) -> Divergence | None:
    """The first divergent step of ``shadow`` against ``prod`` (None: they never differ, or the
    answers cannot be judged: ``answers_differ`` None)."""
    for i, (p, s) in enumerate(zip(prod, shadow, strict=False)):
        if p != s:
            kind: DivergenceKind = "tool_name" if p[0] != s[0] else "tool_args"
            return Divergence(i + 1, kind, p[0], call_text(p), call_text(s))
    n = len(prod)
    if len(shadow) > n:
        return Divergence(n + 1, "extra_step", shadow[n][0], prod_answer, call_text(shadow[n]))
    m = len(shadow)
    if n > m:
        return Divergence(m + 1, "missing_step", prod[m][0], call_text(prod[m]), shadow_answer)
    if answers_differ:
        return Divergence(n + 1, "answer", None, prod_answer, shadow_answer)
    return None


def answers_differ(delta_s: float | None, exact_match: bool | None, threshold: float) -> bool | None:
    """Whether two final answers differ: ΔS above ``threshold`` (``compare.lambda_threshold``)
    when ΔS was scored, else (no embedder) not equal after normalisation; None when either
    answer is missing."""
    if delta_s is not None:
        return delta_s > threshold
    return None if exact_match is None else not exact_match


def agent_fields(
    prod: Sequence[Step],
    shadow: Sequence[Step],
    finished: bool,
    differ: bool | None,
    prod_answer: str | None,
    shadow_answer: str | None,
    mask: Callable[[str | None], str | None],
) -> dict[str, object]:
    """The comparison's agent-replay fields, in the contract's order. All None when neither side
    called a tool; only the step counts when the replay did not finish (``finished`` False: its
    ``shadow_status`` says why, and an unfinished run is not judged). ``shadow_answer`` is already
    masked; the candidate's tool arguments are masked here with ``mask``."""
    if not prod and not shadow:
        return dict.fromkeys(AGENT_FIELDS)
    d = first_divergence(prod, shadow, differ, prod_answer, shadow_answer) if finished else None
    if d is None:
        return {**dict.fromkeys(AGENT_FIELDS), "prod_steps": len(prod), "shadow_steps": len(shadow)}
    their = mask(d.shadow) if d.kind in _CALL_KINDS else d.shadow
    return {
        "prod_steps": len(prod),
        "shadow_steps": len(shadow),
        "first_divergent_step": d.step,
        "divergence_kind": d.kind,
        "divergence_tool": d.tool,
        "divergence_prod": cut(d.prod),
        "divergence_shadow": cut(their),
    }


_CALL_KINDS = frozenset({"tool_name", "tool_args", "extra_step"})  # the candidate's side is a call
AGENT_FIELDS = (
    "prod_steps",
    "shadow_steps",
    "first_divergent_step",
    "divergence_kind",
    "divergence_tool",
    "divergence_prod",
    "divergence_shadow",
)
"""The comparison's agent-replay fields, in the contract's order."""
