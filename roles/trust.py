"""Trust earned by reproduced work (docs/TRUST.md): which authors' runs count as evidence here.

Roots are this node's own key and the keys its user pinned (HOME/trust.json). Everyone else earns
trust when an author this node already trusts replayed one of their runs (a `run` record with
purpose `replay` and `ref` = the run replayed: same track, config and seed, the same accelerator
kind) and got the same val_bpb within the harness's replay tolerance. Trust flows from the roots
with a decay per hop and a cap, so keys that only vouch for each other gain nothing. Roots decide
the runs they replayed: more roots contradicting than matching makes the run refuted and its author
distrusted, more matching makes it reproduced, and the trusted non-roots on the losing side are
distrusted too; equal numbers leave it disputed; a root's own run counts as that root's match.
Derived trust alone cannot refute: a run no root replayed that a trusted replayer contradicts is
disputed, nobody losing, until this node's own spot check settles it. All of it is recomputed from records and roots, in a fixed order, so two nodes
with the same records and roots agree.
"""
from __future__ import annotations

import json
import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args

from memory import records as R, stats
from roles import sanity

log = logging.getLogger(__name__)

DECAY = 0.5          # a vouch passes on half of the voucher's trust
CAP = 0.5            # earned trust never exceeds this (roots hold 1.0)
THRESHOLD = 0.25     # trusted from here: one vouch by a root, or by an author a root vouched for
MAX_ROUNDS = 16      # distrust / trust alternations before the answer is taken as it stands
# bpb: a run this much better or worse than a replay on other hardware contradicts it (3x the
# widest spread of one config's seeds and kernel paths measured, 0.17; a fabricated 0.50 where
# the config gives 2.3 is caught, an honest lucky seed is not: `judge`)
CROSS_HW_REFUTE = 0.5
# Where the roots' own runs show a config's seed spread (at least CROSS_HW_MIN_RUNS sane runs of
# it), a run more than CROSS_HW_SDS of their sds off its replay across hardware contradicts it,
# never one within CROSS_HW_FLOOR: 11x the span of the base config's kernel paths measured
# (0.009); the wide config's (sd 0.084) gets 0.84. An earned key's baseline runs of the best
# config signed 0.2 worse under another CPU model hid a real improvement (`cross_bounds`).
CROSS_HW_FLOOR = 0.1
CROSS_HW_SDS = 10.0
CROSS_HW_MIN_RUNS = 16
# bpb: a replay on the same CPU and software this far off contradicts the run. Not 1e-6: one
# spec, seed and harness code gave 1.56447 on the 2026-11-30 build machine and 1.56743 on the
# 2026-12-02 one, and nothing recorded shows the two apart (docs/HARNESS.md, "Determinism").
EXACT_REFUTE = stats.replay_tolerance(False, 0.0)
# The run's `software` entries a fixed-seed CPU run's numbers depend on (`exact_hardware`)
NUMERICS = ("harness", "code", "cpu", "torch", "precision", "compile")
TRUST_FILE = "trust.json"

_REPLAYS = """
    SELECT r.id, r.author, r.ts, r.track, r.config_hash, r.config, r.seed, r.status, r.val_bpb,
           r.tokens, r.steps, r.mfu, r.accelerator, r.device_name, r.cores, r.software,
           t.id AS t_id, t.author AS t_author, t.ts AS t_ts, t.track AS t_track,
           t.config_hash AS t_config_hash, t.config AS t_config, t.seed AS t_seed,
           t.status AS t_status, t.val_bpb AS t_val_bpb, t.tokens AS t_tokens, t.steps AS t_steps,
           t.mfu AS t_mfu, t.accelerator AS t_accelerator, t.device_name AS t_device_name,
           t.cores AS t_cores, t.software AS t_software
    FROM (SELECT * FROM valid_runs WHERE purpose = 'replay') r
    JOIN (SELECT * FROM valid_runs WHERE id IN (SELECT ref FROM valid_runs WHERE purpose = 'replay')) t
      ON t.id = r.ref
    WHERE r.author <> t.author
    ORDER BY r.ts, r.id"""


# ---- roots, in the home --------------------------------------------------------------------------

class TrustFileError(ValueError):
    """HOME/trust.json exists but cannot be read."""


def read_pins(home: Path) -> dict[str, dict[str, Any]]:
    """The pinned keys in HOME/trust.json: peer id -> {note, source, added_ts} (empty when none);
    TrustFileError when the file exists but cannot be read."""
    path = Path(home) / TRUST_FILE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise TrustFileError(f"{path}: {exc}") from exc
    pins = data.get("pinned", {}) if isinstance(data, dict) else {}
    pins = pins if isinstance(pins, dict) else {}
    return {str(k): dict(v) for k, v in pins.items() if isinstance(v, dict)}


def load_pins(home: Path) -> dict[str, dict[str, Any]]:
    """`read_pins`, with an unreadable file logged and ignored (no pins)."""
    try:
        return read_pins(home)
    except TrustFileError as exc:
        log.warning("ignoring %s", exc)
        return {}


def save_pins(home: Path, pins: dict[str, dict[str, Any]]) -> None:
    """Write HOME/trust.json atomically."""
    path = Path(home) / TRUST_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"pinned": pins}, indent=2, sort_keys=True))
    tmp.replace(path)


def pin(home: Path, peer_id: str, note: str = "", source: str = "user") -> None:
    """Add (or re-note) a pinned key."""
    pins = load_pins(home)
    pins[peer_id] = {"note": note, "source": source, "added_ts": int(time.time() * 1000)}
    save_pins(home, pins)


def unpin(home: Path, peer_id: str) -> bool:
    """Remove a pinned key; False when it was not pinned."""
    pins = load_pins(home)
    if pins.pop(peer_id, None) is None:
        return False
    save_pins(home, pins)
    return True


# ---- the computation -----------------------------------------------------------------------------

@dataclass
class AuthorTrust:
    """One author's standing on this node, and why."""

    author: str
    level: float = 0.0
    status: str = "untrusted"              # root | trusted | untrusted | distrusted
    vouchers: list[str] = field(default_factory=list)        # trusted authors whose replays matched
    matched: list[str] = field(default_factory=list)         # its runs reproduced (run ids)
    mismatched: list[str] = field(default_factory=list)      # its runs contradicted (run ids)
    lost: list[str] = field(default_factory=list)            # its replays outvoted (replay run ids)
    why: str = ""


@dataclass(frozen=True)
class Replay:
    """One replay run compared with the run it replays."""

    id: str
    replayer: str
    target: str
    target_author: str
    match: bool
    # Bit for bit (same CPU model and thread count): only such a match vouches for the target's
    # author. Across hardware the replay lands within seed noise of the target, and so does any
    # number near the config's public mean: a key that trained nothing would match as often.
    exact: bool = True
    kind: str = "cpu"                      # the accelerator kind both runs name


# Runs on another accelerator kind than the CPU count only where their author's work was
# reproduced on that kind: each is counted as its author's key `author#kind` (`run_key`), trusted
# for the roots and, for another author, once it is trusted and a trusted replay matched one of
# its runs of that kind (docs/TRUST.md, "Roots and earned trust"). Only a bit-for-bit match
# vouches, and that is CPU only (`exact_hardware`), so a trusted author's CPU runs always count.
KINDS = tuple(k for k in get_args(R.Hardware.model_fields["accelerator"].annotation) if k != "cpu")


def run_key(author: str, accelerator: str | None) -> str:
    """Whose trust a run of `author` on `accelerator` counts under: the author's own on CPU,
    `author#kind` on another accelerator kind."""
    return author if accelerator in (None, "cpu") else f"{author}#{accelerator}"


# The same as SQL over a `runs` row aliased `r` (roles/evidence_sql.py).
RUN_KEY_SQL = ("(CASE WHEN r.accelerator IS NULL OR r.accelerator = 'cpu' THEN r.author "
               "ELSE r.author || '#' || r.accelerator END)")


@dataclass
class TrustState:
    """Who counts here: per-author trust and per-run replay outcomes."""

    roots: frozenset[str]
    authors: dict[str, AuthorTrust]
    replays: list[Replay]
    run_outcome: dict[str, str]            # run id -> reproduced | refuted | disputed
    # author -> the accelerator kinds where a trusted replay matched one of its runs
    kinds: dict[str, frozenset[str]] = field(default_factory=dict)

    def trusted(self, author: str) -> bool:
        """Do this author's runs count as evidence? `author` may be a run's key (`run_key`):
        `author#kind` counts where the author does and one of its runs of that kind matched."""
        author, _, kind = author.partition("#")
        if author in self.roots:
            return True
        a = self.authors.get(author)
        return a is not None and a.status == "trusted" and (
            not kind or kind in self.kinds.get(author, frozenset()))

    def counts(self, run: dict[str, Any]) -> bool:
        """Does this run (a `runs` row) count as evidence here (`trusted` of its `run_key`)?"""
        return self.trusted(run_key(run["author"], run.get("accelerator")))

    def keys(self) -> list[str]:
        """The run keys whose runs count, sorted: the roots and the trusted authors, and each
        one's `author#kind` where it counts on that kind."""
        out = set(self.roots) | {f"{r}#{k}" for r in self.roots for k in KINDS}
        for author, a in self.authors.items():
            if a.status == "trusted":
                out |= {author} | {f"{author}#{k}" for k in self.kinds.get(author, ())
                                   if k in KINDS}
        return sorted(out)

    def distrusted(self, author: str) -> bool:
        """Was this author caught by a trusted replay (evidence kept in `authors`)?"""
        a = self.authors.get(author)
        return a is not None and a.status == "distrusted"

    def level(self, author: str) -> float:
        """Trust level in [0, 1]."""
        return 1.0 if author in self.roots else getattr(self.authors.get(author), "level", 0.0)

    def standing(self, author: str) -> AuthorTrust:
        """The author's standing (a fresh untrusted one for authors never seen)."""
        if author in self.authors:
            return self.authors[author]
        if author in self.roots:
            return AuthorTrust(author, 1.0, "root", why="root: own key or pinned")
        return AuthorTrust(author, why="no replay by a trusted author yet")


def _row_side(row: dict[str, Any], prefix: str) -> dict[str, Any]:
    keys = ("id", "author", "track", "config_hash", "config", "seed", "status", "val_bpb",
            "tokens", "steps", "mfu", "accelerator", "device_name", "cores", "software")
    return {k: row[prefix + k] for k in keys}


def numerics(row: dict[str, Any]) -> tuple[str, ...] | None:
    """What of a run's `software` its numbers depend on (`NUMERICS`), or None where the record
    does not say all of it (a run written before the harness recorded its code)."""
    software = row.get("software")
    if isinstance(software, str):                  # the runs table holds it as JSON text
        software = json.loads(software)
    if not isinstance(software, dict):
        return None
    values = tuple(software.get(k) for k in NUMERICS)
    return None if any(v is None for v in values) else values


def exact_hardware(mine: dict[str, Any], theirs: dict[str, Any]) -> bool:
    """Should a fixed-seed run of `mine`'s machine reproduce `theirs` bit for bit? On CPU with the
    same model and thread count, and the same software where numbers are made (`numerics`: the
    harness's code, the CPU's kernel-choosing features, torch, precision, compilation), it should.
    A CPU model's name says nothing of AVX-512, bf16 or AMX, which choose the kernels. CUDA
    kernels are not bit-deterministic (docs/HARNESS.md, "Determinism"), so two GPU runs of one
    seed are compared as across hardware."""
    if not same_cpu(mine, theirs):
        return False
    ours = numerics(mine)
    return ours is not None and ours == numerics(theirs)


def same_cpu(mine: dict[str, Any], theirs: dict[str, Any]) -> bool:
    """Are both CPU runs of one CPU model and thread count (`exact_hardware` less the software)?"""
    return mine["accelerator"] == "cpu" and all(mine[k] == theirs[k]
                                                for k in ("accelerator", "device_name", "cores"))


def judge(mine: dict[str, Any], theirs: dict[str, Any], facts: sanity.TrackFacts,
          bound: float = CROSS_HW_REFUTE) -> bool | None:
    """Does run `mine` (a replay) reproduce run `theirs`? None when it says nothing either way.

    Bit-identical hardware (`exact_hardware`): within 1e-6 is a match (and vouches), more than
    `EXACT_REFUTE` a mismatch (two build machines differed by 0.003 with the same code).
    Other hardware of the same accelerator kind: within 0.005 is a match; a mismatch only when the
    two are more than `bound` apart: the config's (`cross_bounds`), else `CROSS_HW_REFUTE`.
    Other kernels are another draw of the config's seed noise, and that can be wide: one CPU's
    oneDNN kernel paths put n_layer=4, lr=0.004 at 1.614, 1.690 and 1.709 for one seed, where its
    seeds 0-3 spanned 1.564-1.733 (docs/HARNESS.md, "Determinism"); a bound of 0.1 for every
    config refuted honest work. Both ways: a run worse than its replay was never refuted there,
    and an earned key's baseline runs signed 0.6 worse under another CPU model hid a real
    improvement (scripts/audit_cross_hw_poison.py). Otherwise a replay proves nothing. Another
    accelerator kind is another experiment."""
    verdict, gap = _verdict(mine, theirs, facts)
    if verdict is None and gap is not None:
        return False if gap > bound else None
    return verdict


def _verdict(mine: dict[str, Any], theirs: dict[str, Any], facts: sanity.TrackFacts
             ) -> tuple[bool | None, float | None]:
    """`judge` less the bound across hardware: (verdict, None), or (None, gap) for two runs of
    other hardware more than a match apart, whose verdict the config's bound gives."""
    same = all(mine[k] == theirs[k] for k in ("track", "config_hash", "seed", "accelerator"))
    if not same or mine["status"] != "ok" or sanity.reason(mine, facts) is not None:
        return None, None                 # another experiment, or a replay that proves nothing
    if theirs["status"] != "ok" or sanity.reason(theirs, facts) is not None:
        return False, None                # the target's number cannot be reproduced: it is none
    exact = exact_hardware(mine, theirs)
    gap = abs(float(mine["val_bpb"]) - float(theirs["val_bpb"]))
    if gap <= stats.replay_tolerance(exact, 0.0):
        return True, None
    if exact:
        return (False if gap > EXACT_REFUTE else None), None
    return None, gap


@dataclass(frozen=True)
class Compared:
    """A replay compared with its target, as far as the two rows alone tell: `replay` carries
    the verdict; where `gap` is set (across hardware, more than a match apart) that verdict is
    a mismatch only past the bound of `config` (track, config hash), which the roots' runs of
    it set and move as they arrive: `settle` applies it when trust is computed, so a cache of
    comparisons (roles/replays_inc.py) stays true."""

    replay: Replay
    gap: float | None = None
    config: tuple[str, str] | None = None


def compare(mine: dict[str, Any], theirs: dict[str, Any], facts: sanity.TrackFacts
            ) -> Compared | None:
    """Replay `mine` of run `theirs` compared (`Compared`), or None when it can never say
    anything of it."""
    verdict, gap = _verdict(mine, theirs, facts)
    if verdict is None and gap is None:
        return None
    replay = Replay(mine["id"], mine["author"], theirs["id"], theirs["author"], bool(verdict),
                    exact_hardware(mine, theirs), mine["accelerator"])
    return Compared(replay, gap, None if gap is None else (mine["track"], mine["config_hash"]))


def settle(compared: list[Compared], bounds: dict[tuple[str, str], float]) -> list[Replay]:
    """The replays that say something with these bounds (`cross_bounds`; CROSS_HW_REFUTE for a
    config not in them), in the order given."""
    return [c.replay for c in compared
            if c.gap is None or c.gap > bounds.get(c.config, CROSS_HW_REFUTE)]


def cross_bound(values: list[float]) -> float:
    """How far a replay across hardware may land from a run of a config whose roots' runs gave
    `values`: CROSS_HW_SDS sds of them, at least CROSS_HW_FLOOR; CROSS_HW_REFUTE with fewer than
    CROSS_HW_MIN_RUNS (an sd of few runs can be far too small). Two honest runs of one seed on
    other kernel paths, taken as independent seed draws (the worst case: the measured paths of one
    seed spread half as wide as its seeds), land past it 4e-6 of the time with 16 runs (2e-4 with
    8; 0.5 for the wide config measured: 3e-5)."""
    if len(values) < CROSS_HW_MIN_RUNS:
        return CROSS_HW_REFUTE
    return max(CROSS_HW_FLOOR, CROSS_HW_SDS * stats.noise_floor(values).std)


ROOT_RUN_COLUMNS = ("track", "config_hash", "config", "seed", "status", "val_bpb", "mfu",
                    "tokens", "steps")
_ROOT_RUNS = f"""
    SELECT {', '.join(ROOT_RUN_COLUMNS)} FROM valid_runs
    WHERE status = 'ok' AND author IN (SELECT unnest(?::VARCHAR[]))
      AND config_hash IN (SELECT unnest(?::VARCHAR[]))"""


def open_configs(compared: list[Compared], roots: frozenset[str] | tuple[str, ...]
                 ) -> list[tuple[str, str]]:
    """The configs (track, config hash) whose bound a comparison's verdict awaits, of replayers
    that can be trusted here at all: roots, and authors that exact matches reach from them (only
    those vouch, whatever the bounds: `_levels`). Free keys' "replays" open none: each open config
    costs a read of the roots' runs of it, and their verdicts count for nothing."""
    reach = set(roots)
    exact = [(c.replay.replayer, c.replay.target_author) for c in compared
             if c.replay.match and c.replay.exact]
    while new := {t for r, t in exact if r in reach} - reach:
        reach |= new
    return sorted({c.config for c in compared
                   if c.config is not None and c.replay.replayer in reach})


def cross_bounds(reader: Any, compared: list[Compared], roots: frozenset[str],
                 facts: sanity.TrackFacts) -> dict[tuple[str, str], float]:
    """The cross-hardware bound of each config an open comparison names (`bound_of`), from
    the roots' runs of it in the memory (one query; roles/root_runs_inc.py keeps them instead)."""
    configs = open_configs(compared, roots)
    if not configs:
        return {}
    result = reader.query(_ROOT_RUNS, [sorted(roots), sorted({h for _, h in configs})])
    values = root_values([dict(zip(result.columns, r)) for r in result.rows], facts)
    return {c: bound_of(values.get(c, set())) for c in configs}


def root_values(rows: list[dict[str, Any]], facts: sanity.TrackFacts
                ) -> dict[tuple[str, str], set[tuple[Any, float]]]:
    """The roots' own finished runs (`ROOT_RUN_COLUMNS` rows) as (seed, val_bpb) per config
    (track, config hash): sane ones only, one per seed and value (a root's exact replay of another
    root's run repeats a number). Only the roots': keys are free, and any other key could sign
    runs of a wide spread to widen a config's bound (or a narrow one to refute honest work)."""
    values: dict[tuple[str, str], set[tuple[Any, float]]] = defaultdict(set)
    for row in rows:
        if row["status"] == "ok" and sanity.reason(row, facts) is None:
            values[(row["track"], row["config_hash"])].add((row["seed"], float(row["val_bpb"])))
    return dict(values)


def bound_of(values: set[tuple[Any, float]]) -> float:
    """`cross_bound` of a config's `root_values`, in a fixed order (float sums depend on it)."""
    return cross_bound([v for _, v in sorted(values, key=repr)])


def _compare(row: dict[str, Any], facts: sanity.TrackFacts) -> Compared | None:
    """The replay's comparison with its target, or None when the two are not comparable."""
    return compare(_row_side(row, ""), _row_side(row, "t_"), facts)


def load_replays(reader: Any, facts: sanity.TrackFacts, roots: frozenset[str] = frozenset()
                 ) -> list[Replay]:
    """Every replay in the memory that says something, oldest first, across hardware by the
    bounds these roots' runs give (`cross_bounds`; none: CROSS_HW_REFUTE)."""
    result = reader.query(_REPLAYS, [])
    rows = [dict(zip(result.columns, r)) for r in result.rows]
    compared = [c for row in rows if (c := _compare(row, facts)) is not None]
    return settle(compared, cross_bounds(reader, compared, roots, facts))


def compute(replays: list[Replay], roots: frozenset[str]) -> TrustState:
    """Trust from replays and roots: alternate trust levels and distrust until nothing changes."""
    distrusted: dict[str, list[str]] = {}
    outcome: dict[str, str] = {}
    level = _levels(replays, roots, distrusted, outcome)
    for _ in range(MAX_ROUNDS):
        new_outcome, losers = _outcomes(replays, level, roots)
        # Distrust only grows (an author caught while trusted stays caught when its loss of
        # trust takes its own replay out of the count): the rounds end.
        merged = {a: sorted(set(distrusted.get(a, [])) | set(losers.get(a, [])))
                  for a in sorted(set(distrusted) | set(losers))}
        if merged == distrusted and new_outcome == outcome:
            break
        distrusted, outcome = merged, new_outcome
        level = _levels(replays, roots, distrusted, outcome)
    return _explain(replays, roots, level, distrusted, outcome)


def _levels(replays: list[Replay], roots: frozenset[str], distrusted: dict[str, list[str]],
            outcome: dict[str, str]) -> dict[str, float]:
    """Levels with distrusted authors fixed at 0: repeat the capped, decayed sum to a fixpoint.
    Only a bit-for-bit match vouches, and not of a run that trusted replays dispute or refute.
    A root gives DECAY to each author it vouches for; any other voucher's trust is split, not
    copied, among the k non-root authors it vouches for (DECAY x level / k, as EigenTrust
    normalises): one key trusted for one real run minted any number of trusted keys by exact
    "replays" of their fabricated runs (scripts/audit_earned_key.py); now at most one."""
    vouchers: dict[str, set[str]] = defaultdict(set)
    for rep in replays:
        if rep.match and rep.exact and outcome.get(rep.target, "reproduced") == "reproduced":
            vouchers[rep.target_author].add(rep.replayer)
    vouched: dict[str, int] = defaultdict(int)         # voucher -> non-root authors vouched for
    for author in sorted(set(vouchers) - roots):
        for v in vouchers[author]:
            vouched[v] += 1
    level = {r: 1.0 for r in roots}
    for _ in range(len(vouchers) + 1):
        changed = False
        for author in sorted(vouchers):
            if author in roots or author in distrusted:
                continue
            total = sum(DECAY * level.get(v, 0.0) / (1 if v in roots else vouched[v])
                        for v in sorted(vouchers[author])
                        if v not in distrusted and level.get(v, 0.0) >= THRESHOLD)
            new = min(CAP, total)
            if new != level.get(author, 0.0):
                level[author], changed = new, True
        if not changed:
            break
    return level


def _outcomes(replays: list[Replay], level: dict[str, float], roots: frozenset[str]
              ) -> tuple[dict[str, str], dict[str, list[str]]]:
    """Per run: reproduced / refuted / disputed by its trusted replayers; who lost, and on what.

    Roots decide what they replayed: where a root replayed the run, only roots' verdicts count
    (more contradict: refuted; more match: reproduced; equal: disputed) and the trusted
    non-roots on the losing side lose. Where none did, derived trust alone cannot refute: any
    trusted contradiction leaves the run disputed, nobody losing, until this node's own spot
    check settles it (roles/spotcheck.py). Before, one key that earned trust with one real run
    minted keys that distrusted an honest newcomer and outvoted this node's own replay
    (scripts/audit_earned_key.py)."""
    by_target: dict[str, list[Replay]] = defaultdict(list)
    for rep in replays:
        if level.get(rep.replayer, 0.0) >= THRESHOLD:
            by_target[rep.target].append(rep)
    outcome: dict[str, str] = {}
    losers: dict[str, list[str]] = defaultdict(list)
    for target in sorted(by_target):
        reps = sorted(by_target[target], key=lambda r: r.id)
        outcome[target] = _decide(reps, roots)
        if outcome[target] == "disputed":
            continue
        for rep in reps:
            if outcome[target] == "refuted" and rep.target_author not in roots:
                losers[rep.target_author].append(target)
            if rep.match != (outcome[target] == "reproduced") and rep.replayer not in roots:
                losers[rep.replayer].append(rep.id)
    return outcome, {a: sorted(set(v)) for a, v in sorted(losers.items())}


def _decide(reps: list[Replay], roots: frozenset[str]) -> str:
    """One run's outcome from its trusted replays (`_outcomes`). A root's own run is that root's
    word, as if it had replayed it: else a derived key's contradiction left this node's own run
    disputed for good (its own replay of it does not count)."""
    author = reps[0].target_author
    by_roots = [r for r in reps if r.replayer in roots]
    if not by_roots and author not in roots:
        return "disputed" if any(not r.match for r in reps) else "reproduced"
    yes = {r.replayer for r in by_roots if r.match} | ({author} & roots)
    no = {r.replayer for r in by_roots if not r.match}
    if len(yes) == len(no):
        return "disputed"
    return "reproduced" if len(yes) > len(no) else "refuted"


def _explain(replays: list[Replay], roots: frozenset[str], level: dict[str, float],
             distrusted: dict[str, list[str]], outcome: dict[str, str]) -> TrustState:
    authors: dict[str, AuthorTrust] = {}
    vouching: list[Replay] = []                # matches that may vouch for their kind
    for rep in replays:
        for who in (rep.replayer, rep.target_author):
            authors.setdefault(who, AuthorTrust(who, level.get(who, 0.0)))
        target = authors[rep.target_author]
        trusted_replayer = level.get(rep.replayer, 0.0) >= THRESHOLD
        if rep.match and trusted_replayer and outcome.get(rep.target) == "reproduced":
            target.matched.append(rep.target)
            vouching.append(rep)
            if rep.exact:
                target.vouchers.append(rep.replayer)
        elif not rep.match and trusted_replayer and outcome.get(rep.target) == "refuted":
            target.mismatched.append(rep.target)
    for author, a in authors.items():
        a.matched, a.vouchers = sorted(set(a.matched)), sorted(set(a.vouchers))
        a.mismatched = sorted(set(a.mismatched))
        a.lost = [x for x in distrusted.get(author, []) if x not in a.mismatched]
        a.status, a.why = _status(a, roots, distrusted)
        a.level = 0.0 if a.status == "distrusted" else (1.0 if author in roots else a.level)
    for root in roots:
        authors.setdefault(root, AuthorTrust(root, 1.0, "root", why="root: own key or pinned"))
    return TrustState(roots, authors, replays, outcome, _kinds(vouching, roots))


def _kinds(matches: list[Replay], roots: frozenset[str]) -> dict[str, frozenset[str]]:
    """Author -> the accelerator kinds where one of its runs was matched by a replayer whose own
    runs count on that kind (a root, or an author with that kind here already; from the roots
    out): a trusted key's minted key, trusted on the CPU, matched the key's `cuda` poison on
    `cuda`, and the poison counted (tests/roles/test_trust_attacks.py)."""
    kinds: dict[str, set[str]] = defaultdict(set)
    grew = True
    while grew:
        grew = False
        for rep in matches:
            if rep.kind not in kinds[rep.target_author] and (
                    rep.replayer in roots or rep.kind in kinds[rep.replayer]
                    or rep.kind == "cpu"):
                kinds[rep.target_author].add(rep.kind)
                grew = True
    return {a: frozenset(k) for a, k in kinds.items() if k}


def _status(a: AuthorTrust, roots: frozenset[str], distrusted: dict[str, list[str]]
            ) -> tuple[str, str]:
    if a.author in roots:
        extra = f"; contradicted on {len(a.mismatched)} run(s)" if a.mismatched else ""
        return "root", "root: own key or pinned" + extra
    if a.author in distrusted:
        if a.mismatched:
            return "distrusted", (f"the roots' replays contradicted {len(a.mismatched)} run(s), "
                                  f"first {a.mismatched[0][:12]}")
        return "distrusted", f"its replay {a.lost[0][:12]} was outvoted by the roots' replays"
    if a.level >= THRESHOLD:
        # keys as every table shows them: their tail (all begin 12D3KooW)
        return "trusted", (f"{len(a.matched)} run(s) reproduced by "
                           f"{', '.join('…' + v[-8:] for v in a.vouchers[:3])}")
    if a.matched and not a.vouchers:
        return "untrusted", ("reproduced only across hardware (within seed noise: earns no "
                             "trust)")
    if a.matched:
        return "untrusted", f"reproduced only by authors below {THRESHOLD} trust"
    return "untrusted", "no replay by a trusted author yet"


def listing(state: TrustState, runs: dict[str, int]) -> list[dict[str, Any]]:
    """Authors with their standing, why, and influence (their share of the sane finished runs
    and claims this node holds), roots first, then by level, then by runs (a flood of keys
    with nothing counted sorts last), then by id.

    `runs`: author -> how many sane finished runs of theirs (any track)."""
    total = max(1, sum(runs.values()))
    authors = sorted(set(runs) | set(state.authors) | set(state.roots))
    rows = []
    for author in authors:
        a = state.standing(author)
        n = runs.get(author, 0)
        rows.append({"author": author, "status": a.status, "level": round(state.level(author), 4),
                     "why": a.why, "vouchers": a.vouchers, "reproduced": a.matched,
                     "contradicted": a.mismatched, "outvoted_replays": a.lost, "runs": n,
                     "influence": round(n / total, 4)})
    order = {"root": 0, "trusted": 1, "untrusted": 2, "distrusted": 3}
    return sorted(rows, key=lambda r: (order[r["status"]], -r["level"], -r["runs"], r["author"]))
