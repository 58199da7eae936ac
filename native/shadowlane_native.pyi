"""Type stubs of Shadowlane's native hot path (``native/src``)."""

from collections.abc import Callable, Sequence
from typing import Any

Reference = tuple[str, int, int]  # (topic, partition, offset)

NativeProjection = tuple[
    str,  # req_id
    str,  # req_hash
    int,  # ts_ms
    str,  # endpoint
    str,  # tenant
    dict[str, str],  # pins
    str | None,  # answer
    float,  # latency_ms
    int,  # status
    str | None,  # model (prod's, else the request's)
    int | None,  # prompt_tokens
    int | None,  # completion_tokens
    tuple[str, ...],  # cited_ids
    tuple[tuple[str, str], ...],  # tool keys: (name, canonical arguments), in call order (all of tool_io)
    tuple[str | None, tuple[str, ...]] | None,  # gold: (answer, cited_ids)
    dict[str, str],  # buckets
    bool,  # candidate_served
    str | None,  # question: the last user message's text, cut (retrieval drift)
    tuple[str, ...],  # paraphrases
    dict[str, str],  # served_pins: what prod's response said it served with
    tuple[tuple[str, str | None], ...],  # retrieved: prod's passages as (id, text)
    int,  # history_tool_calls: how many of the tool keys come from the conversation history
]

class NativeRequest:
    """An envelope's projection as the comparator keeps it (Rust fields; see ``fields``)."""

    @property
    def req_hash(self) -> str: ...
    @property
    def candidate_served(self) -> bool: ...
    def fields(self) -> NativeProjection:
        """The projection as Python values (the input of ``ProdSide.from_native``)."""

class NativeResult:
    """A shadow result as the comparator keeps it (Rust fields; see ``fields``)."""

    @property
    def req_hash(self) -> str: ...
    @property
    def candidate(self) -> str: ...
    def fields(self) -> dict[str, Any]:
        """The ``ShadowResult``'s fields in declaration order (nested parts as dicts of their
        fields), ready for its trusted construction."""

def parse_request(data: bytes, key: bytes | None) -> NativeRequest | None:
    """The comparator's record of a requests-topic record (its value and key), or None: not a
    record it vouches for (``check_request`` would refuse it, or this path is not sure)."""

def parse_result(data: bytes) -> NativeResult | None:
    """An encoded ``ShadowResult`` checked against the contract, or None: not a record it vouches
    for."""

class NativeJoin:
    """The comparator's join (``shadowlane.compare.join.JoinBuffer``'s rules), see ``native/src/join/``."""

    def __init__(
        self,
        candidates: list[str],
        window_ms: int,
        max_pending: int,
        joined: Callable[..., Any],
        expired: Callable[..., Any],
        built: Callable[..., Any],
        plain: PlainConfig | None,
        read_request: Callable[[bytes | None, bytes | None], Any],
        read_result: Callable[[bytes | None], Any],
        decode_error: type[Exception],
    ) -> None: ...
    def pending(self) -> int: ...
    def native_bytes(self) -> int: ...
    def stats(self) -> dict[str, int]: ...
    def add_request(self, env: Any, reference: Reference, ts_ms: int) -> tuple[list[Any], bool]: ...
    def add_result(self, res: Any, reference: Reference, ts_ms: int) -> tuple[list[Any], bool]: ...
    def expire(self, watermark_ms: int) -> list[Any]: ...
    def drop_partitions(self, partitions: list[tuple[str, int]]) -> int: ...
    def mark_finished(self, pairs: list[tuple[str, str]]) -> None: ...
    def forget_finished(self, pairs: list[tuple[str, str]]) -> None: ...
    def ingest(
        self, records: list[Any], topic: str, partition: int, is_request: bool
    ) -> tuple[list[Any], list[int], list[int], list[tuple[Any, Any]]]: ...

class PlainConfig:
    """What a ``ComparisonBuilder``'s settings say about plain pairs (see ``build_plain``)."""

    def __init__(
        self,
        baseline: str | None,
        embedder: str | None,
        citation_guard: str | None,
        priced: list[str],
        template: dict[str, Any],
        mask_guard: tuple[int, Sequence[str], Sequence[str], Sequence[str], Sequence[tuple[int, str]]],
    ) -> None:
        """``embedder`` is the builder's embedder's name (None without one), which every record
        gets as ``delta_s_embedder`` (set in the config's copy of ``template``; the caller's dict
        is left as it is). ``mask_guard`` is ``shadowlane.sanitize.MASK_GUARD``: the sanitizer's
        own hints."""

def build_plain(
    env: NativeRequest, res: NativeResult, config: PlainConfig
) -> tuple[dict[str, Any], bytes | None] | None:
    """The comparison of a plain joined pair: its fields in the contract's order (its
    ``comparison_id`` is ``shadowlane.hashing.pair_id``'s) and its wire bytes as orjson writes them
    (None: a value it leaves to Python); or None: not a pair this path is sure of (the Python
    builder runs)."""

class MaskEngine:
    """The sanitizer's masking and walk, natively (``shadowlane.sanitize.Sanitizer``'s native
    path): the rules are ``shadowlane.sanitize.matching.Compiled`` objects, read once."""

    def __init__(
        self,
        compiled: list[Any],
        by_trigger: list[tuple[str, list[int]]],
        digit_rules: list[tuple[int, int]],
        digit_needs: list[int],
        digit_joiners: str,
        min_maskable: int,
    ) -> None: ...
    def mask(self, text: str) -> tuple[str, int] | None:
        """``(masked text, masks)``, or None for a text the engine leaves to Python (not ASCII,
        or holding ``\\x1c``..``\\x1f``)."""
    def clean(
        self,
        value: Any,
        is_secret_key: Any,
        fallback: Callable[[str], tuple[str, int]],
        deep: Callable[[Any], tuple[Any, int]],
    ) -> tuple[Any, int]:
        """A copy of ``value`` with secret keys' values dropped and every text masked
        (``fallback`` masks the texts ``mask`` would leave to Python; ``deep`` walks what is
        nested past 100 levels)."""
