"""roles: the four roles, role choice, the proposers and the research agent (imports memory and node.harness).

context.py        Context (store, publisher, track, roots, budget, runner, params), StorePublisher
base.py           the Role interface, Proposal, Proposer
sanity.py         sanity bounds: runs whose numbers are impossible for their track, and why
trust.py          trust roots (HOME/trust.json) and trust earned by matching replays (docs/TRUST.md)
verdicts.py       this node's verdicts from trusted, sane runs: claims, baselines, leaderboard, best
evidence_sql.py   the sanity bounds and trusted authors as DuckDB predicates (verdicts at scale)
evidence_inc.py   the verdicts' aggregates over every run, moved on from the runs stored since
config_rows.py    the per-config rows as arrays; the best few picked exactly (partition, then sort)
author_sums.py    per author and config, the sums of its runs, grouped once (changes of trust)
verdicts_ref.py   the same verdicts by a Python pass over every run: the reference tests check
spotcheck.py      which runs a verifier replays: disputed, then untrusted by influence, in a share
evidence.py       what roles read: best config, baseline runs, claims, tried configs, hypotheses
leases.py         claim_lease records: take / held_by_other / renew; near-duplicate configs
experimenter.py   baseline top-up, screen, sequential confirmation, claim
statistician.py   noise floors and assessments (advice to other nodes)
verifier.py       replays and fresh seeds of claims; spot checks
meta_analyst.py   knob effects with standard errors; `finding` records
aliasing.py       settings the runs never separated: joint effects, unidentified ones
choice.py         open work per role x value x hardware weight x jitter; `role` record
strategy.py       offline proposals guided by the knob effects
agent.py          Claude through the anthropic SDK
digest.py         the compact memory digest the agent sees
judge.py          Claude scores other nodes' run samples against a rubric; `judgement` records
messages.py       a Messages API reply read defensively; a model's answer as one strict JSON object
untrusted.py      peers' text for a model: one tagged JSON block it cannot close, cleaned, bounded
harness_runner.py the real runner (node.harness.run_experiment)
pending.py        runs started and not yet published, each resumable: HOME/checkpoints/KEY.json + .pt
pending_list.py   what HOME/checkpoints holds, for people (`swarm pending`); discard by id
resume.py         a node's pending runs resumed and published at its start, or dropped
proposers.py          optuna proposers (TPE, random) rebuilt from the memory; the portfolio bandit
proposers_space.py    the knob space: optuna distributions from the harness's Config fields
search_evidence.py    what the search reads: outcomes, leased configs, screened family, source records
"""
