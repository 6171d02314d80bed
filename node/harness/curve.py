"""A bounded loss curve: any number of (step, loss) readings kept as at most 64 evenly spaced points.

Readings fill buckets; when there are more than `limit` buckets, neighbouring pairs merge (their
mean loss, the later step), so memory stays bounded for any run length and the points stay evenly
spaced in steps. A point is the mean of the readings in its bucket, which smooths the per-batch noise.
"""
from __future__ import annotations

import math
from typing import Any

from memory.records import MAX_CURVE_POINTS


class LossCurve:
    """Collects loss readings; `points()` gives the thinned curve."""

    def __init__(self, limit: int = MAX_CURVE_POINTS) -> None:
        self.limit = limit
        self.buckets: list[list[float]] = []      # [last step, loss sum, readings]
        self.stride, self.filled = 1, 0           # readings per bucket, readings in the last one

    def add(self, step: int, loss: float) -> None:
        """One reading; non-finite losses are skipped (a record holds finite floats only)."""
        if not math.isfinite(loss):
            return
        if self.buckets and self.filled < self.stride:
            bucket = self.buckets[-1]
            bucket[0], bucket[1], bucket[2] = step, bucket[1] + loss, bucket[2] + 1
            self.filled += 1
        else:
            self.buckets.append([step, loss, 1])
            self.filled = 1
        if len(self.buckets) > self.limit:
            self._halve()

    def _halve(self) -> None:
        merged = []
        for i in range(0, len(self.buckets), 2):
            pair = self.buckets[i:i + 2]
            merged.append([pair[-1][0], sum(b[1] for b in pair), sum(b[2] for b in pair)])
        self.filled = int(merged[-1][2]) if len(self.buckets) % 2 == 0 else self.filled
        self.buckets, self.stride = merged, self.stride * 2

    def state(self) -> dict[str, Any]:
        """Everything `restore` needs to continue this curve exactly (a run's checkpoint)."""
        return {"buckets": [list(b) for b in self.buckets], "stride": self.stride,
                "filled": self.filled}

    def restore(self, state: dict[str, Any]) -> None:
        """Continue from `state()` of a curve with the same limit."""
        self.buckets = [[int(b[0]), float(b[1]), int(b[2])] for b in state["buckets"]]
        self.stride, self.filled = int(state["stride"]), int(state["filled"])

    def points(self) -> list[dict[str, float | int]]:
        """The curve as `{step, train_loss}` dicts (what a v2 `run` record holds)."""
        return [{"step": int(b[0]), "train_loss": round(b[1] / b[2], 6)} for b in self.buckets]
