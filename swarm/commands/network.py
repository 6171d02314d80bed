"""`swarm join` (run a node), `swarm status` (this node), `swarm peers` (who it knows)."""
from __future__ import annotations

import datetime as dt
import json
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Optional

import typer

from swarm.output import console, fail, print_json, print_table

HOME = typer.Option(None, "--home", help="Node home (default: $SWARM_HOME or ~/.swarm).")
JSON = typer.Option(False, "--json", help="Machine-readable JSON instead of a table.")
DEFAULT_LISTEN = "/ip4/0.0.0.0/tcp/7400"


def join(
    home: Optional[Path] = HOME,
    listen: list[str] = typer.Option([DEFAULT_LISTEN], "--listen", help="Multiaddr to listen on "
                                     "(repeatable; /tcp/0 picks a free port)."),
    bootstrap: list[str] = typer.Option([], "--bootstrap", help="Multiaddr of a peer to join "
                                        "through (repeatable; printed by every node at start)."),
    no_mdns: bool = typer.Option(False, "--no-mdns", help="Do not look for peers on the LAN."),
    no_dht: bool = typer.Option(False, "--no-dht", help="Do not use the Kademlia DHT."),
    network: str = typer.Option("main", "--network", help="Swarm network name (separate swarms "
                                "never exchange records)."),
    track: Optional[str] = typer.Option(None, "--track", help="Track to work on (used once the "
                                        "training harness lands)."),
    threads: Optional[int] = typer.Option(None, "--threads", help="Training threads (harness)."),
    max_runs: Optional[int] = typer.Option(None, "--max-runs", help="Stop after N runs (harness)."),
    duration: Optional[float] = typer.Option(None, "--duration", help="Stop after S seconds."),
    sync_interval: float = typer.Option(3.0, "--sync-interval", help="Seconds between repair "
                                        "syncs with a random peer."),
) -> None:
    """Start a node: find peers, gossip new records, catch up, serve the local read API."""
    from memory.store import StoreError
    from node.daemon import AlreadyRunning, Daemon, DaemonConfig
    from node.home import resolve_home
    from node.host import NetConfig

    net = NetConfig(listen=listen, bootstrap=bootstrap, mdns=not no_mdns, dht=not no_dht,
                    network=network, sync_interval_s=sync_interval,
                    gossip_drop=float(os.environ.get("SWARM_TEST_GOSSIP_DROP", "0") or 0))
    config = DaemonConfig(home=resolve_home(home), net=net, duration_s=duration, track=track,
                          threads=threads, max_runs=max_runs)
    try:
        _run(Daemon(config))
    except AlreadyRunning as exc:
        fail(str(exc))
    except StoreError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot start the node: {exc} (is --listen's port in use? try .../tcp/0)")


def _run(daemon: Any) -> None:
    import asyncio
    import logging

    import uvloop

    # libp2p logs expected network failures (an unreachable peer) at WARNING; show them with -vv only
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        logging.getLogger("libp2p").setLevel(logging.ERROR)

    def ready(info: dict[str, Any]) -> None:
        console.print(f"[bold]peer id[/] {info['peer_id']}")
        console.print(f"listening on {', '.join(info['addrs'])}")
        console.print(f"local API {info['api']}")
        lan = [a for a in info["addrs"] if "/ip4/127." not in a] or info["addrs"]
        console.print("to join this swarm from another machine, run:")
        console.print(f"  swarm join --bootstrap {lan[0]}", highlight=False, soft_wrap=True)

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(daemon.run(on_ready=ready))
    console.print("node stopped")


def _api_get(home: Optional[Path], path: str) -> Any | None:
    """GET `path` from the daemon on `home`; None when no daemon runs there."""
    from node.api_server import API_FILE, TOKEN_FILE
    from node.home import resolve_home

    root = resolve_home(home)
    try:
        url = json.loads((root / API_FILE).read_text())["url"]
        token = (root / TOKEN_FILE).read_text().strip()
    except (OSError, ValueError, KeyError):
        return None
    request = urllib.request.Request(url + path, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None                     # api.json left by a daemon that died


def status(json_out: bool = JSON, home: Optional[Path] = HOME) -> None:
    """This node: peer id, addresses, peers, records, last sync, current work."""
    info = _api_get(home, "/status")
    if info is None:
        info = _offline_status(home)
    if json_out:
        return print_json(info)
    rows = [(key, json.dumps(value) if isinstance(value, (dict, list)) else value)
            for key, value in info.items() if key != "addrs"]
    rows += [("addr", addr) for addr in info.get("addrs", [])]
    print_table("node status", ["field", "value"], rows)


def _offline_status(home: Optional[Path]) -> dict[str, Any]:
    from node.home import resolve_home
    from node.identity import load_or_create

    root = resolve_home(home)
    if not root.exists():
        fail(f"no node home at {root}; run `swarm join` first")
    return {"running": False, "peer_id": load_or_create(root).peer_id, "home": str(root)}


def peers(json_out: bool = JSON, home: Optional[Path] = HOME) -> None:
    """Peers this node knows: who, where, when last seen, records received, rejected."""
    found = _api_get(home, "/peers")
    if found is None:
        found = _saved_peers(home)
    if json_out:
        return print_json(found)
    print_table("peers", ["peer", "connected", "last seen", "received", "rejected", "banned", "addr"],
                [(p["peer_id"], "yes" if p.get("connected") else "", _when(p.get("last_seen")),
                  p.get("received", ""), p.get("rejected", ""),
                  "yes" if p.get("banned_until") else "", (p.get("addrs") or [""])[0])
                 for p in found], empty="none known (is `swarm join` running?)")


def _saved_peers(home: Optional[Path]) -> list[dict[str, Any]]:
    from node.home import resolve_home
    from node.peers import PEERS_FILE

    try:
        return json.loads((resolve_home(home) / PEERS_FILE).read_text())
    except (OSError, ValueError):
        return []


def _when(ts: float | None) -> str:
    if not ts:
        return ""
    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Add join, status, peers and `bench network` to the CLI."""
    app.command()(join)
    app.command()(status)
    app.command()(peers)
    from swarm.bench import network as bench_network
    bench_app.command("network")(bench_network.bench)
