"""The reference for roles/verdicts.py: the same verdicts from a Python pass over every run.

`Verdicts` computes its aggregates in SQL (roles/evidence_sql.py) so a million runs take well
under a second; this subclass computes each of them the plain way, from every run of the track read
into Python and `sanity.reason` applied run by run. It is what the verdicts *mean*:
tests/roles/test_verdicts_sql.py checks that both agree on randomized stores. Too slow for a big
memory (tens of seconds at a million runs); nothing but the tests uses it.
"""
from __future__ import annotations

from typing import Any

from roles.verdicts import Verdicts


class ReferenceVerdicts(Verdicts):
    """`Verdicts` with every run read into Python and every aggregate computed there."""

    def run(self, run_id: str) -> dict[str, Any] | None:
        return self.runs.get(run_id)

    def config_rows(self, chash: str) -> list[dict[str, Any]]:
        return self.by_config.get(chash, [])

    def refs(self, ref: str) -> list[dict[str, Any]]:
        return self.by_ref.get(ref, [])

    def _screened(self) -> dict[str, tuple[int, str]]:
        first: dict[str, tuple[int, str]] = {}
        for r in self.runs.values():
            if r["purpose"] == "screen" and self.trust.counts(r):
                key = (int(r["ts"]), r["id"])
                first[r["config_hash"]] = min(first.get(r["config_hash"], key), key)
        return first

    def _ranking(self, limit: int) -> tuple[list[str], list[str]]:
        means = []
        for chash in sorted(self.by_config):
            m = self.mean(chash)
            if m is not None:
                means.append((m[0], chash))
        ranked = {h for _, h in means}
        untrusted = []
        for chash in sorted(self.by_config):
            values = [float(r["val_bpb"]) for r in self.untrusted_runs(chash)]
            if values and chash not in ranked:
                untrusted.append((sum(values) / len(values), chash))
        return [h for _, h in sorted(means)[:limit]], [h for _, h in sorted(untrusted)[:limit]]

    def _baseline_tally(self) -> dict[str, int]:
        tally: dict[str, int] = {}
        for run in self.runs.values():
            if run["purpose"] == "baseline" and self.counts(run):
                tally[run["config_hash"]] = tally.get(run["config_hash"], 0) + 1
        return tally

    def _newest(self, limit: int) -> list[dict[str, Any]]:
        done = [r for r in self.runs.values() if r["status"] == "ok" and r["val_bpb"] is not None]
        done.sort(key=lambda r: (r["ts"], r["id"]), reverse=True)
        return [{"ts": r["ts"], "id": r["id"], "val_bpb": r["val_bpb"], "purpose": r["purpose"],
                 "counts": self.why_not(r["id"]) is None} for r in done[:limit]]

    def _newest_counted(self, limit: int) -> list[dict[str, Any]]:
        return [r for r in self._newest(len(self.runs)) if r["counts"]][:limit]
