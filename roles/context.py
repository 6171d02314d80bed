"""What every role works with: the memory, a way to publish signed records, a way to train.

`Context` is deliberately small so roles run the same over a bare `Store` (tests, one machine)
and inside a running node (swarm/worker.py hands in a publisher that also gossips).
"""
from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from memory import codec
from memory.crypto import Keypair
from memory.records import Body, Record, RunBody
from memory.stats import GateParams
from memory.store import Store

log = logging.getLogger(__name__)

# (full config, seed, purpose, ref) -> the run's record body (crashes included).
Runner = Callable[[Mapping[str, Any], int, str, "str | None"], RunBody]


class Publisher(Protocol):
    """Signs a body as this node's next record and stores (and maybe gossips) it."""

    def __call__(self, kind: str, body: Body) -> Record: ...


class StorePublisher:
    """Publishes into a local Store only (tests, offline use).

    `stamp` gives each record's ts in ms (default: the wall clock); a simulation passes its own
    clock so that the records, and so their ids, are the same on every run."""

    def __init__(self, store: Store, keypair: Keypair,
                 stamp: Callable[[], int] | None = None) -> None:
        self.store, self.keypair, self.stamp = store, keypair, stamp
        self._lock = threading.Lock()

    def __call__(self, kind: str, body: Body) -> Record:
        """Sign with the author's next seq and add to the store."""
        with self._lock:
            record = codec.sign(self.keypair, kind, self.store.next_seq(self.keypair.peer_id), body,
                                ts=self.stamp() if self.stamp else None)
            report = self.store.add([record])
            if report.rejected:
                raise ValueError(f"own record rejected: {report.rejected}")
        return record


@dataclass
class Context:
    """One node's view of one track, and its means to act."""

    store: Store
    me: str                                   # this node's peer id
    publish: Publisher
    track: str                                # the track id runs are recorded under
    base_config: dict[str, Any]               # the track's full base config
    run: Runner | None                        # None: this node cannot train (roles that train skip)
    params: GateParams = field(default_factory=GateParams)
    rng: random.Random = field(default_factory=random.Random)
    lease_s: float = 600.0                    # how long a lease holds without renewal
    clock: Callable[[], float] = time.time
    counters: dict[str, int] = field(default_factory=dict)
    held: list[Any] = field(default_factory=list)   # leases (ClaimLeaseBody) of the current work
    pinned: frozenset[str] = frozenset()      # keys the user trusts (trust roots besides `me`)
    budget_tokens: int | None = None          # the track's budget (None: token checks skipped)
    refused: dict[str, str] = field(default_factory=dict)  # hypothesis/claim id -> why no work

    @property
    def roots(self) -> frozenset[str]:
        """Trust roots: this node's key and the pinned keys (docs/TRUST.md)."""
        return self.pinned | {self.me}

    def now_ms(self) -> int:
        """Milliseconds since the epoch (leases compare against record timestamps)."""
        return int(self.clock() * 1000)

    def count(self, name: str, n: int = 1) -> None:
        """Bump a named counter (agent fallbacks, dropped answers, crashed runs, ...)."""
        self.counters[name] = self.counters.get(name, 0) + n

    def refuse(self, record_id: str, why: str) -> None:
        """Note a record no node can work on (counted once per record: `refused_<kind of why>`)."""
        if record_id not in self.refused:
            self.refused[record_id] = why
            self.count("refused_" + why.split(":")[0].replace(" ", "_").replace("(s)", "s"))

    def rows(self, sql: str, params: list[Any] | tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        """A query's rows as dicts."""
        result = self.store.query(sql, list(params))
        return [dict(zip(result.columns, row)) for row in result.rows]
