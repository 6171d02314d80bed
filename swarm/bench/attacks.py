"""`swarm bench crowd`, `swarm bench stucksub`, `swarm bench slotwait`: the hostile-peer benches
behind the CLI. Each imports its bench (and so trio and py-libp2p) only when run, so that
browsing commands never import them."""
from __future__ import annotations

import json

import typer

from swarm.commands import MAX_SECONDS


def crowd(ids: int = typer.Option(1200, "--ids", min=1, help="Fresh peer ids that connect."),
          batch: int = typer.Option(50, "--batch", min=1, help="Connected at once."),
          hold: float = typer.Option(1.0, "--hold", min=0.0, max=MAX_SECONDS,
                                      help="Seconds each stays.")) -> None:
    """Many fresh peer ids connect to a node and leave: does it still take new peers, answer
    identify, sync? (one JSON line; swarm/bench/crowd.py)"""
    from swarm.bench import crowd as bench

    print(json.dumps(bench.run(ids, batch, hold)))


def stucksub(stuck: int = typer.Option(1, "--stuck", min=0, help="Grafted peers that never read."),
             iwant: int = typer.Option(0, "--iwant", min=0,
                                       help="Peers outside the mesh that stop reading and ask "
                                            "IWANT."),
             records: int = typer.Option(1500, "--records", min=1, help="Records published."),
             size: int = typer.Option(60 * 1024, "--size", min=8, help="Bytes per record."),
             interval: float = typer.Option(0.0, "--interval", min=0.0, max=MAX_SECONDS,
                                            help="Seconds between publishes."),
             honest_pause: float = typer.Option(None, "--honest-pause", min=0.0,
                                                max=MAX_SECONDS,
                                                help="Seconds one honest mesh peer stops "
                                                     "reading, 60% in (counts what it gets)."),
             iwant_reads: bool = typer.Option(False, "--iwant-reads",
                                              help="The --iwant peers read and discard what "
                                                   "they are sent."),
             churn: float = typer.Option(None, "--churn", min=0.0, max=MAX_SECONDS,
                                         help="Peers at one address ask by IWANT in turn, this "
                                              "many seconds each, a fresh peer id each time."),
             churn_same_key: bool = typer.Option(False, "--churn-same-key",
                                                 help="The --churn peers are one key "
                                                      "reconnecting.")
             ) -> None:
    """Gossip subscribers that never read: the bytes queued to them (one JSON line;
    swarm/bench/stucksub.py)."""
    import trio

    from swarm.bench import stucksub as bench

    print(json.dumps(trio.run(bench.main, stuck, records, size, iwant, interval, honest_pause,
                              iwant_reads, churn, churn_same_key)))


def slotwait(addresses: int = typer.Option(8, "--addresses", min=0, help="Attacker addresses."),
             queued: int = typer.Option(1, "--queued", min=0, help="Pulls each keeps waiting."),
             hold: float = typer.Option(120.0, "--hold", min=1.0, max=MAX_SECONDS,
                                        help="A stalled pull's seconds."),
             arrive: float = typer.Option(10.0, "--arrive", min=0.0, max=MAX_SECONDS,
                                          help="The newcomer asks then."),
             horizon: float = typer.Option(600.0, "--horizon", min=1.0, max=MAX_SECONDS,
                                           help="Seconds simulated.")) -> None:
    """How long a newcomer waits for a serving slot while addresses hold them (virtual clock;
    one JSON line; swarm/bench/slotwait.py)."""
    from swarm.bench import slotwait as bench

    print(json.dumps(bench.run(addresses=addresses, queued=queued, hold=hold, arrive=arrive,
                               horizon=horizon)))
