"""`swarm join` (run a node), `swarm status` (this node), `swarm peers` (who it knows)."""
from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import time
from pathlib import Path
from typing import Any, Optional

import typer

from swarm.commands import MAX_BUDGET_TOKENS, MAX_SECONDS
from swarm.output import (check_folder, console, fail, home_flag, plain_text, print_json,
                           plural, print_table)

HOME = typer.Option(None, "--home", help="Node home (default: $SWARM_HOME or ~/.swarm).")
JSON = typer.Option(False, "--json", help="Machine-readable JSON instead of a table.")
DEFAULT_LISTEN = "/ip4/0.0.0.0/tcp/7400"
STATUS_CELL = 400       # `swarm status` shows a value up to this many characters (folded over lines)


def join(
    home: Optional[Path] = HOME,
    listen: list[str] = typer.Option([DEFAULT_LISTEN], "--listen", help="Multiaddr to listen on "
                                     "(repeatable; /tcp/0 picks a free port)."),
    bootstrap: list[str] = typer.Option([], "--bootstrap", help="Multiaddr of a peer to join "
                                        "through (repeatable; printed by every node at start; "
                                        "also $SWARM_BOOTSTRAP and HOME/bootstrap.txt)."),
    no_mdns: bool = typer.Option(False, "--no-mdns", help="Do not look for peers on the LAN."),
    relay: bool = typer.Option(False, "--relay", help="Relay for nodes behind NAT (circuit relay "
                               "v2, capped per IP and in total); for a publicly reachable node."),
    reachability: str = typer.Option("auto", "--reachability", help="auto (ask peers to dial "
                                     "back), public, or private (reserve a relay slot, hole-punch)."),
    no_dht: bool = typer.Option(False, "--no-dht", help="Do not use the Kademlia DHT."),
    network: str = typer.Option("main", "--network", help="Swarm network name (separate swarms "
                                "never exchange records)."),
    # one flag, not a --work/--no-work pair: the pair's extra column cut the help at 80 columns
    no_work: bool = typer.Option(False, "--no-work", help="Only keep the memory in sync: no "
                                 "research loop (roles, training) beside the node."),
    track: str = typer.Option("tinystories-cpu", "--track", help="Track to work on."),
    budget_tokens: Optional[int] = typer.Option(None, "--budget-tokens", min=1, max=MAX_BUDGET_TOKENS,
                                                help="Training tokens per run (another budget is "
                                                "another track id)."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="Training threads per run."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="Folder with the track's "
                                            "train.txt and valid.txt."),
    max_runs: Optional[int] = typer.Option(None, "--max-runs", min=1, help="Stop the node after N "
                                           "training runs, once the unit of work under way is "
                                           "done (a fresh track's first: up to 3 baseline runs)."),
    duration: Optional[float] = typer.Option(None, "--duration", min=0.1, max=MAX_SECONDS,
                                             help="Stop after S seconds."),
    role: Optional[str] = typer.Option(None, "--role", help="Pin a role: experimenter, verifier, "
                                       "statistician or meta_analyst (default: chosen each step)."),
    agent: str = typer.Option("auto", "--agent", help="Who proposes experiments: auto (Claude "
                              "too, when ANTHROPIC_API_KEY is set), offline (TPE, the response "
                              "surface, random search), claude."),
    agent_model: Optional[str] = typer.Option(None, "--agent-model", help="Claude model id "
                                              "(default $SWARM_AGENT_MODEL or claude-sonnet-4-6)."),
    lease: float = typer.Option(600.0, "--lease", min=1.0, max=MAX_SECONDS, help="Seconds a claim "
                                "lease holds; renewed before each run while the work goes on."),
    run_timeout: Optional[float] = typer.Option(None, "--run-timeout", min=1.0, max=MAX_SECONDS,
                                                help="Wall-clock limit of one training run in "
                                                "seconds (default 3600)."),
    checkpoint_every: Optional[float] = typer.Option(None, "--checkpoint-every", min=0.01,
                                                     max=MAX_SECONDS,
                                                     help="Training seconds between a run's "
                                                     "checkpoints (default 120)."),
    min_baseline: Optional[int] = typer.Option(None, "--min-baseline", help="Baseline seeds "
                                               "of the noise floor (gate default 16; "
                                               "screening starts at min_start, 6)."),
    gate: list[str] = typer.Option([], "--gate", help="Gate override KEY=VALUE (repeatable), e.g. "
                                   "confirm_max=3, verify_seeds=2, alpha=0.05."),
    trust: list[str] = typer.Option([], "--trust", help="Peer id whose runs this node trusts "
                                    "(repeatable; kept in HOME/trust.json, see swarm trust)."),
    sync_interval: float = typer.Option(1.0, "--sync-interval", min=0.05, max=MAX_SECONDS,
                                        help="Seconds between repair syncs with a random peer "
                                        "(up to 3x that while in sync)."),
    query_timeout: float = typer.Option(5.0, "--query-timeout", min=0.1, max=MAX_SECONDS,
                                        help="Seconds a query through the local API may run "
                                        "unless it asks for more."),
) -> None:
    """Start a node and its research loop (choose a role, work, publish, repeat).

    The node finds peers, gossips new records, catches up and serves the local read API; beside it
    the worker trains, assesses or verifies (--no-work: only keep the memory in sync)."""
    from memory.store import StoreError
    from node.daemon import AlreadyRunning, Daemon, DaemonConfig
    from node.identity import IdentityError
    from node.home import resolve_home
    from node.host import NetConfig
    from swarm.node_work import NodeWork, WorkOptions, gate_params, with_roots

    from node.listen import AddressError, bootstrap_addrs, check_listen

    from swarm.reader import home_folder

    # the flags themselves first: a bad value is reported whatever this machine's state (a port
    # another node holds, a home in use)
    from node.nat import MODES

    if reachability not in MODES:
        fail(f"--reachability must be one of {', '.join(MODES)}, not {reachability!r}")
    if not re.fullmatch(r"[^\s/]{1,64}", network) or not network.isprintable():
        # an unset variable (`--network "$NET"`) made a swarm of its own, "/swarm//records/1"
        fail(f"--network wants a name (1-64 characters, no spaces or '/'), not {network!r}")
    home_folder(home)
    work = not no_work
    if work and data_dir is not None:           # a typo: say so, start nothing
        check_folder(data_dir, "--data-dir", must_exist=True)
    _check_home_free(resolve_home(home))
    try:
        check_listen(listen)
        bootstrap = bootstrap_addrs(bootstrap, resolve_home(home))
    except AddressError as exc:
        fail(str(exc))
    _check_trust(trust, resolve_home(home))
    net = NetConfig(listen=listen, bootstrap=bootstrap, mdns=not no_mdns, dht=not no_dht,
                    network=network, sync_interval_s=sync_interval, reachability=reachability,
                    relay=_relay_caps() if relay else None,
                    hole_punch=not os.environ.get("SWARM_TEST_NO_HOLE_PUNCH"),
                    gossip_drop=float(os.environ.get("SWARM_TEST_GOSSIP_DROP", "0") or 0))
    config = DaemonConfig(home=resolve_home(home), net=net, duration_s=duration,
                          query_timeout_s=query_timeout)
    starter = summary = None
    try:                    # a --no-work node's dashboard and browsing judge by its gate too
        gate_set = gate_params(gate, min_baseline)
    except ValueError as exc:
        fail(str(exc))
    if work:
        try:
            options = WorkOptions(track=track, budget_tokens=budget_tokens, threads=threads,
                                  data_dir=data_dir, max_runs=max_runs, role=role, agent=agent,
                                  agent_model=agent_model, lease_s=lease, run_timeout_s=run_timeout,
                                  checkpoint_every_s=checkpoint_every, gate=gate_set)
            options.check()
        except (KeyError, ValueError) as exc:
            fail(exc.args[0] if isinstance(exc, KeyError) else str(exc))
        starter = NodeWork.starter(options)
        summary = (track, options.gate.min_baseline, options.gate.min_start)
    from swarm.web.app import with_dashboard
    try:
        _run(Daemon(config), with_roots(with_dashboard(starter), tuple(trust), gate_set), summary,
             browse_hint(config.home, home))
    except (AlreadyRunning, IdentityError, StoreError) as exc:
        fail(str(exc))
    except OSError as exc:
        hint = " (is --listen's port in use? try .../tcp/0)" if exc.errno == errno.EADDRINUSE else ""
        # the path and the OS's words, not Python's "[Errno 30] ...: '/home/x/daemon.lock'"
        said = f"{exc.filename}: {exc.strerror}" if exc.filename and exc.strerror else exc
        fail(f"cannot start the node: {said}{hint}")


def _check_home_free(home: Path) -> None:
    """A node already running on this home: say so, with its pid, before the port check, which
    blamed the port that node holds (a second `swarm join` with the defaults: both on 7400)."""
    from node import api_client
    from node.daemon import already_running

    if api_client.connect(home) is None:
        return
    try:
        pid = json.loads((home / api_client.API_FILE).read_text())["pid"]
    except (OSError, ValueError, KeyError, TypeError):
        pid = "?"
    fail(already_running(home, pid))


def _check_trust(pins: list[str], home: Path) -> None:
    """Stop with one line on a `--trust` that is no peer id, or a HOME/trust.json that cannot be
    read (pinning would write over it), with or without --no-work."""
    from memory.crypto import public_key_from_peer_id
    from swarm.commands.trust import check_pins_file

    try:
        for peer in pins:
            public_key_from_peer_id(peer)       # BadPeerId (a ValueError) names the bad one
    except ValueError as exc:
        fail(str(exc))
    if pins:
        check_pins_file(home)


def _relay_caps() -> Any:
    """The relay's caps: the defaults, or (tests) those in $SWARM_TEST_RELAY_CAPS as JSON."""
    from node.relay import RelayCaps

    try:
        return RelayCaps(**json.loads(os.environ.get("SWARM_TEST_RELAY_CAPS") or "{}"))
    except (TypeError, ValueError) as exc:
        fail(f"SWARM_TEST_RELAY_CAPS: {exc}")


def browse_hint(resolved: Path, given: Optional[Path]) -> str:
    """The start line that says where results go and how to look at them (a newcomer's first
    question); `--home DIR` in the commands when the home was given that way."""
    return (f"results go to {resolved / 'memory.duckdb'}: in another terminal, swarm runs"
            f"{home_flag(given)} "
            "(or leaderboard, findings; or the dashboard)")


def _run(daemon: Any, starter: Any, summary: tuple[str, int, int] | None, hint: str = "") -> None:
    """Run the daemon; with `summary` (track, baseline seeds wanted, seeds before screening), the
    live work panel; `hint` (where results go) is printed among the start lines."""
    import asyncio
    import logging

    import uvloop

    from swarm import progress_view

    # libp2p logs expected network failures (an unreachable peer) at WARNING; show them with -vv only
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        logging.getLogger("libp2p").setLevel(logging.ERROR)

    def ready(info: dict[str, Any]) -> None:
        # soft_wrap: a multiaddr or peer id is never cut into lines, even when piped to a file
        console.print(f"[bold]peer id[/] {info['peer_id']}", soft_wrap=True, highlight=False)
        console.print(f"listening on {', '.join(info['addrs'])}", soft_wrap=True, highlight=False)
        console.print(f"local app {info['api']} (API; dashboard: {info['api']}/)",
                      soft_wrap=True, highlight=False)
        if hint:
            console.print(plain_text(hint), soft_wrap=True, highlight=False)
        lan = [a for a in info["addrs"] if "/ip4/127." not in a] or info["addrs"]
        console.print("to join this swarm from another machine, run:")
        console.print(f"  swarm join --bootstrap {lan[0]}", highlight=False, soft_wrap=True)

    swarm = None

    def work() -> dict[str, Any] | None:
        nonlocal swarm
        if not daemon.services:
            return None
        if swarm is None and summary is not None:
            swarm = progress_view.SwarmSummary(daemon.store, *summary)
        status = daemon.services[0].status()
        return {**status, "swarm": progress_view.with_work(swarm.get(), status) if swarm else {}}

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        with progress_view.live(console, work) if summary else contextlib.nullcontext():
            runner.run(daemon.run(on_ready=ready, on_started=starter))
    last = work() if summary else None
    if daemon.failure is not None:          # it stopped on its own: say why, exit non-zero
        fail(f"node stopped: {daemon.failure}")
    console.print(plain_text("node stopped" + (f": {progress_view.summary_line(last)}" if last
                                               else "") + _left_to_resume(daemon.home)),
                  soft_wrap=True, highlight=False)


def _left_to_resume(home: Path) -> str:
    """`; 1 run saved to resume (swarm pending): the next swarm join resumes it` when the node
    left runs to resume (a Ctrl-C mid-run), else "": the last line said nothing of the run just
    checkpointed, as if its minutes of training were lost."""
    from roles.pending_list import resumable

    left = resumable(home)
    if not left:
        return ""
    return (f"; {plural(left, 'run')} saved to resume (swarm pending): the next swarm join "
            f"resumes {'it' if left == 1 else 'them'}")


def _api_get(home: Optional[Path], path: str) -> Any | None:
    """GET `path` from the daemon on `home`; None when no daemon runs there."""
    from node import api_client
    from node.home import resolve_home

    client = api_client.connect(resolve_home(home))
    if client is None:
        return None
    try:
        return client.get(path)
    except api_client.ApiError:
        return None                     # api.json left by a daemon that died


def _status_info(home: Optional[Path]) -> dict[str, Any]:
    """What `status` shows: the node's own word through its local API, else what the home says.
    A node that runs but does not answer (hung, or in another network namespace) said `running
    no`, beside a `swarm join` refused because that node runs: it is known by its pid, alive and
    the same in api.json and daemon.lock (a process that took a dead node's pid holds no lock)."""
    from node import api_client
    from node.home import resolve_home

    root = resolve_home(home)
    client = api_client.connect(root)
    if client is None:
        return _offline_status(home)
    try:            # the keys an offline home gives, too: `--json | .running` was null
        return {"running": True, "home": str(root), **client.get("/status")}
    except api_client.ApiError as exc:
        said = str(exc)
    pid = _node_pid(root)
    if pid is None:                     # api.json left by a node that died
        return _offline_status(home)
    return {**_offline_status(home), "running": True, "pid": pid, "api": f"not answering: {said}"}


def _node_pid(root: Path) -> int | None:
    """The pid that both api.json and daemon.lock name, None when they differ or are unread."""
    from node import api_client
    from node.daemon import LOCK_FILE

    try:
        pid = json.loads((root / api_client.API_FILE).read_text())["pid"]
        holder = (root / LOCK_FILE).read_text().strip()
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return pid if isinstance(pid, int) and holder == str(pid) else None


def status(json_out: bool = JSON, home: Optional[Path] = HOME) -> None:
    """This node: peer id, addresses, peers, records, last sync, current work."""
    info = _status_info(home)
    if json_out:
        return print_json(info)
    # the peer id and addresses whole, each on its own line: what another machine pastes
    console.print(f"peer id {info.get('peer_id') or 'none yet (swarm join creates the key)'}",
                  soft_wrap=True, highlight=False)
    for addr in info.get("addrs", []):
        console.print(f"addr {addr}", soft_wrap=True, highlight=False)
    # other long values fold over lines rather than being cut
    print_table("node status", ["field", "value"], _status_rows(info), cell_width=STATUS_CELL)


# The status table's words for the daemon's fields (--json keeps the keys); unknown keys show as is.
STATUS_LABELS = {
    "running": "running", "home": "home", "network": "network", "api": "local API", "pid": "process id",
    "uptime_s": "up for", "connected": "connections", "peers": "peers connected",
    "known_peers": "peers known", "mesh_peers": "gossip mesh peers",
    "outbound_queue_high_water": "gossip queue high water", "records": "records",
    "digest": "memory digest", "last_sync": "last sync", "reachability": "reachability",
    "host_restarts": "libp2p restarts", "stream_failures": "failed streams",
    "pending_runs": "runs to resume", "memory": "memory",
}


def _status_rows(info: dict[str, Any]) -> list[tuple[str, Any]]:
    """The status table's rows, in words: one per field, each group (nat, relay, rejected, reads)
    one row per entry, work one row per item (80 columns)."""
    from swarm.progress_view import work_rows

    rows = [(STATUS_LABELS.get(key, key), _status_value(key, value))
            for key, value in info.items()
            if key not in ("peer_id", "addrs", "current_work") and not isinstance(value, dict)]
    for group, entries in info.items():
        if isinstance(entries, dict):
            rows += [(f"{group}: {k}", _status_value(k, v)) for k, v in entries.items()
                     if k != "relayed_addrs"]
    work = info.get("current_work")
    for loop in work if isinstance(work, list) else []:
        rows += [(f"work: {name}", value) for name, value in work_rows(loop)]
    if isinstance(work, str):
        rows.append(("work", work))
    return rows


def _status_value(key: str, value: Any) -> str:
    """One value as a person reads it: a duration, a time, a count with separators, yes/no."""
    from swarm.output import when
    from swarm.progress_view import duration_text

    if key == "uptime_s" and isinstance(value, (int, float)):
        return duration_text(value)
    if key == "last_sync":
        return when(value) + " UTC" if isinstance(value, int) else "not yet"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value) if key == "pid" else f"{value:,}"
    if isinstance(value, list):
        return ", ".join(map(str, value)) or "none"
    if isinstance(value, dict):
        return ", ".join(f"{k} {_status_value(k, v)}" for k, v in value.items()) or "none"
    return str(value)


def _offline_status(home: Optional[Path]) -> dict[str, Any]:
    """What a home says without its daemon: its peer id (None before its first `swarm join`;
    status never creates a key)."""
    from node.identity import IdentityError
    from swarm.conclusions import own_peer_id
    from swarm.reader import home_folder

    root = home_folder(home)
    if not root.is_dir():
        fail(f"no node home at {root}; run `swarm join` first")
    try:
        info = {"running": False, "peer_id": own_peer_id(root), "home": str(root)}
    except IdentityError as exc:
        fail(str(exc))
    return {**info, **_home_holds(root)}


def _home_holds(root: Path) -> dict[str, Any]:
    """What a stopped node's home holds: its records and the runs it left to resume. After a
    Ctrl-C, `swarm status` said only `running no` and the home's path."""
    import duckdb

    from memory.store import ReadOnlyMemory, StoreError
    from node.home import memory_path
    from roles.pending_list import resumable

    holds: dict[str, Any] = {}
    if memory_path(root).exists():
        try:
            memory = ReadOnlyMemory(memory_path(root))
            try:
                holds["records"] = memory.query("SELECT count(*) FROM records").rows[0][0]
            finally:
                memory.close()
        except (StoreError, duckdb.Error) as exc:     # held by a `swarm run`, or damaged
            holds["memory"] = f"unreadable: {str(exc).splitlines()[0]}"
    holds["pending_runs"] = resumable(root)
    return holds


def peers(json_out: bool = JSON, home: Optional[Path] = HOME) -> None:
    """Peers this node knows: who, where, when last seen, records received, rejected (strikes and
    gossip ignored, with why)."""
    found = _api_get(home, "/peers")
    running = found is not None
    if found is None:
        found = _saved_peers(home)
    if json_out:
        return print_json([_times_as_ms(p) for p in found])
    from swarm.output import short_peer, when

    # 80 columns: the peer id's tail (all start 12D3KooW), times as MM-DD HH:MM UTC
    print_table("peers", ["peer", "link", "last seen", "recv", "rej", "addr"],
                [(short_peer(p["peer_id"]), _link(p), when(_ms(p.get("last_seen"))),
                  p.get("received", ""), _rejected_cell(p),
                  (p.get("addrs") or [""])[0].split("/p2p/")[0])
                 for p in found],
                empty="none known yet" if running else "none known (is `swarm join` running?)")


def _rejected_cell(peer: dict[str, Any]) -> str:
    """The `rej` cell: the peer's strikes plus the ids of its gossip this node ignored, and the
    commonest reason of those (`12 iwant_budget`); '' when a saved peer says nothing."""
    ignored = peer.get("gossip_ignored")
    ignored = ignored if isinstance(ignored, dict) else {}
    strikes = peer.get("rejected")
    if not ignored:
        return "" if strikes is None else str(strikes)
    total = (strikes if isinstance(strikes, int) else 0) + sum(ignored.values())
    return f"{total} {max(ignored, key=ignored.__getitem__)}"


def _link(peer: dict[str, Any]) -> str:
    """How a peer is connected: direct / relayed / hole-punched; banned; '' when not connected."""
    if (peer.get("banned_until") or 0) > time.time():
        return "banned"
    if not peer.get("connected"):
        return ""
    return peer.get("link") or "yes"


def _ms(ts: float | None) -> int | None:
    return int(ts * 1000) if ts else None


def _times_as_ms(peer: dict[str, Any]) -> dict[str, Any]:
    """A peer's times (seconds in the peer table) as epoch ms, the one time format of --json."""
    return {k: int(v * 1000) if k in PEER_TIMES and isinstance(v, (int, float)) else v
            for k, v in peer.items()}


PEER_TIMES = {"first_seen", "last_seen", "last_sync", "banned_until"}


def _saved_peers(home: Optional[Path]) -> list[dict[str, Any]]:
    """The peers a stopped node saved in HOME/peers.json ([] when none or unreadable)."""
    from node.peers import PEERS_FILE
    from swarm.reader import home_folder

    root = home_folder(home)
    if not root.is_dir():
        fail(f"no node home at {root}; run `swarm join` first")
    try:
        saved = json.loads((root / PEERS_FILE).read_text())
    except (OSError, ValueError):
        return []
    if not isinstance(saved, list):
        return []
    # a file edited by hand: keep only the entries shaped like those the node writes
    return [p for p in saved if isinstance(p, dict) and isinstance(p.get("peer_id"), str)]


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Add join, status, peers, `bench network`, `bench blob`, `bench nat`, `bench crowd`,
    `bench stucksub` and `bench slotwait` to the CLI."""
    from swarm.commands import TAKE_PART

    for command in (join, status, peers):
        app.command(rich_help_panel=TAKE_PART)(command)
    from swarm.bench import blob as bench_blob
    from swarm.bench import attacks
    from swarm.bench import nat as bench_nat
    from swarm.bench import network as bench_network
    bench_app.command("network")(bench_network.bench)
    bench_app.command("blob")(bench_blob.bench)
    bench_app.command("nat")(bench_nat.bench)
    bench_app.command("crowd")(attacks.crowd)
    bench_app.command("stucksub")(attacks.stucksub)
    bench_app.command("slotwait")(attacks.slotwait)
