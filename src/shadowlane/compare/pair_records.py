"""A join output's records as the Python builder reads them: Python objects, each made once.

The join hands over records as the comparator read them (native records whose fields are Rust
values, or Python ones: :data:`~shadowlane.compare.prod_side.Request`,
:data:`~shadowlane.compare.results.Result`). A pair the native path does not build goes to the
Python builder as a :class:`Pair` (or an expired record as a :class:`Gone`), its records made
Python objects by :class:`Records`.
"""

from __future__ import annotations

from dataclasses import dataclass

from shadowlane.compare.join import Expired, Joined
from shadowlane.compare.prod_side import ProdSide, Request, as_side
from shadowlane.compare.results import Result, as_result
from shadowlane.contracts.shadow_result import ShadowResult


@dataclass(slots=True)
class Pair:
    """A joined pair as the Python builder reads it (:class:`Joined` with Python records)."""

    envelope: ProdSide
    result: ShadowResult
    peers: dict[str, ShadowResult]


@dataclass(slots=True)
class Gone:
    """An expired record as the Python builder reads it (:class:`Expired` with Python records)."""

    outcome: str
    candidate: str
    req_hash: str
    envelope: ProdSide | None
    result: ShadowResult | None


class Records:
    """One build's Python objects of the join's records, each made once: a baseline's result is
    every candidate's peer, and the builder's masked texts are cached by object."""

    def __init__(self) -> None:
        self._results: dict[int, ShadowResult] = {}

    def result(self, res: Result) -> ShadowResult:
        if isinstance(res, ShadowResult):
            return res
        made = self._results.get(id(res))  # the native record outlives the build: ids stay unique
        if made is None:
            made = self._results[id(res)] = as_result(res)
        return made

    def pair(self, item: Joined) -> Pair:
        peers = {name: self.result(peer) for name, peer in item.peers.items()}
        return Pair(as_side(item.envelope), self.result(item.result), peers)

    def gone(self, item: Expired) -> Gone:
        env: Request | None = item.envelope
        res = None if item.result is None else self.result(item.result)
        side = None if env is None else as_side(env)
        return Gone(item.outcome, item.candidate, item.req_hash, side, res)
