"""The gate's rules for noisy candidates, through the real roles over a real Store: a screening
run in the gray zone gets a second run, and a claim whose confirmation runs are noisier than the
baseline gets more fresh seeds from its verifier (`stats.verify_runs`)."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from memory import records as R, stats, synthetic
from roles import evidence
from roles.experimenter import Experimenter
from roles.statistician import Statistician
from roles.verifier import Verifier
from tests.roles.simulated import BASE, TRACK, SimRunner, context
from tests.roles.trust_world import Fixed, baseline_ready


class Scripted(SimRunner):
    """SimRunner for the base config; the candidate's runs follow `script` (purpose, index) ->
    val_bpb, set once the baseline's mean and sd are known."""

    def __init__(self) -> None:
        super().__init__()
        self.script: Any = None
        self.seen: list[str] = []
        self.by_seed: dict[int, float] = {}

    def __call__(self, config: Mapping[str, Any], seed: int, purpose: str,
                 ref: str | None) -> R.RunBody:
        if dict(config) == BASE or self.script is None:
            return super().__call__(config, seed, purpose, ref)
        self.seen.append(purpose)
        # training is deterministic: a seed run again (a verifier's replay) gives the same number
        value = self.by_seed.setdefault(
            seed, round(self.script(purpose, self.seen.count(purpose) - 1), 6))
        return synthetic.run_body(TRACK, dict(config), seed, value, purpose=purpose, ref=ref)


def _ready(store: Any, keys: Any) -> tuple[Any, Any, Scripted, stats.NoiseFloor]:
    runner = Scripted()
    a = context(store, keys[0], runner, 1)
    b = context(store, keys[1], runner, 2, pinned=frozenset({keys[0].peer_id}))
    baseline_ready(a)
    return a, b, runner, evidence.baseline(a).floor()


def test_a_gray_screening_run_gets_a_second_run(store, keys) -> None:
    a, _, runner, floor = _ready(store, keys)
    # first screening run at the baseline mean (gray), the second clearly better, then confirmations
    runner.script = lambda purpose, i: floor.mean + (
        0.1 * floor.std if purpose == "screen" and i == 0 else -4 * floor.std + 0.2 * floor.std * (i % 2))
    out = Experimenter(Fixed({"lr": 0.006})).work(a)
    assert runner.seen[:2] == ["screen", "screen"] and "confirm" in runner.seen
    assert "claimed" in out


def test_a_clearly_worse_screening_run_is_a_dead_end_after_one_run(store, keys) -> None:
    a, _, runner, floor = _ready(store, keys)
    runner.script = lambda purpose, i: floor.mean + 2 * floor.std
    assert "dead end" in Experimenter(Fixed({"lr": 0.006})).work(a)
    assert runner.seen == ["screen"]


def test_a_noisy_claim_gets_more_fresh_seeds(store, keys) -> None:
    a, b, runner, floor = _ready(store, keys)
    # confirmations 4 sds better on average but spread +-3 sds: ~ 9x the floor's variance
    runner.script = lambda purpose, i: floor.mean + (
        -4 * floor.std if purpose == "screen" else (-7 if i % 2 else -1) * floor.std)
    assert "claimed" in Experimenter(Fixed({"lr": 0.006})).work(a)
    Statistician().work(b)
    confirm = [r[0] for r in store.query("SELECT val_bpb FROM runs WHERE purpose = 'confirm'").rows]
    assert len(confirm) >= b.params.min_confirm
    expected = stats.verify_runs(confirm, evidence.baseline(b).values, b.params)
    assert expected > b.params.verify_seeds
    Verifier().work(b)
    assert runner.seen.count("verify") == expected
