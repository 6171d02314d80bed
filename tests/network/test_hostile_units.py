"""Quotas, protocol back-off, quiet logs and peer scoring, without a network (fast)."""
from __future__ import annotations

import logging
import time

from node import quiet
from node.peers import MAX_PEERS, PRUNE_STEP, PeerBook
from node.quota import QuotaConfig, Quotas, flood_bound


def test_a_fresh_key_flood_from_one_peer_gets_only_its_quota() -> None:
    config = QuotaConfig()
    quotas = Quotas(config)
    quotas.know("honest", time.time() - 7200, 500)           # an author seen for two hours
    start = time.monotonic()
    accepted, reasons, strikes = 0, {}, 0
    for i in range(20_000):                                  # 2,000 fresh keys x 10 records
        reason, strike = quotas.admit("hostile", f"key{i % 2000}", 1000)
        accepted += reason is None
        reasons[reason] = reasons.get(reason, 0) + 1
        strikes += strike
    elapsed = time.monotonic() - start
    assert accepted <= flood_bound(config, elapsed, 10)
    assert reasons["quota_new_authors"] > 19_000
    assert strikes == (20_000 - accepted) // config.strike_every
    # the flood costs honest peers and established authors nothing
    assert all(quotas.admit("honest-peer", "honest", 1000)[0] is None for _ in range(50))
    assert quotas.counts()["quota_new_authors"] == reasons["quota_new_authors"]


def test_a_new_author_starts_small_and_an_established_one_gets_the_full_rate() -> None:
    config = QuotaConfig()
    quotas = Quotas(config)
    burst = config.author_burst * config.new_author_factor
    fresh = [quotas.admit("p", "new", 100)[0] for _ in range(int(burst) + 10)]
    assert fresh.count(None) in (int(burst), int(burst) + 1)
    assert "quota_author" in fresh
    quotas.know("old", time.time() - 2 * config.ramp_s, 10)
    assert [quotas.admit("p", "old", 100)[0] for _ in range(int(config.author_burst))] == [None] * int(
        config.author_burst)
    assert quotas.admit("p", "old", 100)[0] == "quota_author"
    big = Quotas(QuotaConfig(author_bytes_per_hour=10_000))
    big.know("a", 0.0, 10)
    assert big.admit("p", "a", 9_000)[0] is None
    assert big.admit("p", "a", 9_000)[0] == "quota_author_bytes"


def test_a_peer_that_refuses_a_protocol_is_not_asked_again_for_a_while() -> None:
    peers = PeerBook()
    assert not peers.refuses("p", "/swarm/sync/1.0.0")
    peers.refused("p", "/swarm/sync/1.0.0")
    assert peers.refuses("p", "/swarm/sync/1.0.0") and not peers.refuses("p", "/other")
    state = peers._peers["p"]
    first = state.refusals["/swarm/sync/1.0.0"][1]
    peers.refused("p", "/swarm/sync/1.0.0")
    assert state.refusals["/swarm/sync/1.0.0"][1] == 2 * first          # backs off further
    assert peers.snapshot()[0]["refuses"] == ["/swarm/sync/1.0.0"]


def test_fresh_peer_ids_are_forgotten_but_connected_banned_and_struck_peers_kept() -> None:
    peers = PeerBook(invalid_limit=3)
    peers.seen("honest", ["/ip4/192.0.2.1/tcp/7400/p2p/honest"], connected=True)
    peers.invalid("banned", 3)
    peers.invalid("struck")
    for i in range(20_000):                  # a peer id costs nothing: connect, leave, repeat
        peers.seen(f"fresh{i}", connected=True)
        peers.seen(f"fresh{i}", connected=False)
    held = {p["peer_id"] for p in peers.snapshot()}
    assert len(held) <= MAX_PEERS + PRUNE_STEP
    assert {"honest", "banned", "struck", "fresh19999"} <= held
    assert peers.is_banned("banned") and peers.app_score("struck") < 0
    assert peers.connected_count() == 1


def test_fresh_struck_peer_ids_do_not_make_every_new_id_scan_the_book(monkeypatch) -> None:
    # ids struck within the last minute cannot be forgotten: with the book full of them, every
    # new id sorted the whole book again (32,000 fresh ids sending bad signatures: 124 CPU-s)
    peers = PeerBook()
    scans = []
    original = peers._prune
    monkeypatch.setattr(peers, "_prune", lambda now: (scans.append(now), original(now)))
    extra = 3 * PRUNE_STEP
    for i in range(MAX_PEERS + PRUNE_STEP + extra):
        peers.invalid(f"evil{i}")
    assert len(scans) <= extra // PRUNE_STEP + 1          # once per PRUNE_STEP new ids, not each
    assert len(peers.snapshot()) == MAX_PEERS + PRUNE_STEP + extra     # all struck: all kept


def test_strikes_lower_the_application_score() -> None:
    peers = PeerBook(invalid_limit=3)
    assert peers.app_score("p") == 0.0
    peers.invalid("p")
    assert peers.app_score("p") < 0
    peers.invalid("p", 2)                                   # banned
    assert peers.is_banned("p") and peers.app_score("p") <= -1000


def test_repeated_warnings_are_rate_limited_and_library_noise_hidden() -> None:
    limit = quiet.RateLimit(window_s=60)

    def record(name: str, msg: str, level: int = logging.WARNING) -> logging.LogRecord:
        return logging.LogRecord(name, level, __file__, 1, msg, None, None)

    assert limit.filter(record("node.host", "banning %s"))
    assert not any(limit.filter(record("node.host", "banning %s")) for _ in range(5))
    assert limit.filter(record("node.host", "other"))
    assert limit.filter(record("node.host", "debug", logging.DEBUG))
    assert not limit.filter(record("libp2p.kad_dht.kad_dht", "Failed to read DHT message from "
                                   "stream: %s", logging.WARNING))
    assert quiet.library_level(logging.WARNING) > logging.CRITICAL          # default: silent
    assert quiet.library_level(logging.INFO) == logging.WARNING             # -v
    assert quiet.library_level(logging.DEBUG) == logging.DEBUG              # -vv


def test_library_logs_go_through_our_handlers() -> None:
    import libp2p  # noqa: F401 - its import sets propagate=False on its logger

    lib = logging.getLogger("libp2p")
    saved = lib.level, lib.propagate, list(lib.handlers)
    try:
        quiet.library_logs()
        assert lib.propagate and not lib.handlers
        assert logging.getLogger("libp2p.network.auto_connector").level == logging.NOTSET
    finally:                                    # leave pytest's own handlers as they were
        lib.level, lib.propagate, lib.handlers = saved[0], saved[1], saved[2]
        quiet.uninstall()


def test_the_mdns_service_name_fits_dns_sd() -> None:
    from node.discovery import mdns_fingerprint

    names = {f"p2p-{mdns_fingerprint(n)}" for n in ("main", "test-1234abcd", "x" * 200)}
    assert len(names) == 3 and all(len(name) <= 15 for name in names)


def test_banning_a_peer_while_it_disconnects_costs_nothing() -> None:
    # The race the fuzzing test hit: the ban's teardown awaits the stream reset, the peer's own
    # disconnect removes it meanwhile, and py-libp2p 0.8.1's `del self.peers[peer]` raised KeyError,
    # ending the pubsub service (one host restart). Real `_teardown_if_connected`, with the pubsub
    # state it touches and a stream whose reset lets the disconnect run first.
    import trio
    from libp2p.pubsub.pubsub import Pubsub

    from node import patches

    patches.apply()

    class Stream:
        async def reset(self) -> None:
            await trio.sleep(0)
            state.peers.pop("peer", None)                       # the disconnect, during the await

    class State:
        peers = {"peer": Stream()}
        forgotten: list[str] = []

        def _forget_all_subscriptions(self, peer: str) -> None:
            self.forgotten.append(peer)

    state = State()
    trio.run(Pubsub._teardown_if_connected, state, "peer")
    assert state.peers == {} and state.forgotten == ["peer"]


def test_gossip_address_budgets_are_shared_by_ids_and_separate_by_address() -> None:
    quotas = Quotas(QuotaConfig(peer_new_burst=2, peer_new_rate=0.0, address_factor=2.0))
    one = [quotas.admit(f"id{i}", f"a{i}", 100, "10.0.0.1")[0] for i in range(6)]
    assert one == [None] * 4 + ["quota_address_new_authors"] * 2
    # another IPv4 address has its own budget; one IPv6 /64 is one address
    assert quotas.admit("id9", "b", 100, "10.0.0.2")[0] is None
    six = [quotas.admit(f"v6-{i}", f"c{i}", 100, f"2001:db8::{i}")[0] for i in range(5)]
    assert six.count(None) == 4


def test_a_rate_limit_left_on_pytests_handlers_is_removed_before_each_test(caplog) -> None:
    """pytest reuses its capturing handler from test to test, and a daemon started in an earlier
    test put a RateLimit on it: a later test saw one of two warnings of one template (CI, the
    pending-run test). tests/conftest.py removes it before each test, with `quiet.uninstall`."""
    log = logging.getLogger("tests.ratelimit")
    assert not any(isinstance(f, quiet.RateLimit) for f in caplog.handler.filters)
    quiet.install()                              # what a daemon does at its start
    assert any(isinstance(f, quiet.RateLimit) for f in caplog.handler.filters)
    quiet.uninstall()
    for seed in (4, 5):
        log.warning("pending run seed %d dropped", seed)
    assert [r.getMessage() for r in caplog.records][-2:] == [
        "pending run seed 4 dropped", "pending run seed 5 dropped"]


def test_a_sync_producer_whose_exchange_ends_has_its_read_interrupted(tmp_path) -> None:
    """node/syncwire.py runs a responder's store read in a worker thread that trio abandons when
    the exchange ends (the requester gone, the serve cancelled): the read ran on to its end,
    hours for a hostile 1.0.0 summary, holding a token of trio's thread limiter all along. The
    exchange's end now interrupts it (a real DuckDB query that would run for hours)."""
    import threading

    import duckdb
    import trio

    from memory.store import Store
    from node.syncwire import send_records

    running, finished, ended = threading.Event(), threading.Event(), []

    def produce(stop):
        try:
            query = store.read()
            with query.stream() as cursor:
                stop.attach(query.cancel)
                running.set()
                cursor.execute("SELECT sum(a.range * b.range) FROM range(1000000) a, "
                               "range(1000000) b").fetchall()
            yield [b"never"]
        except BaseException as exc:                 # noqa: BLE001 - what stopped it is checked
            ended.append(exc)
            raise
        finally:
            finished.set()

    async def exchange() -> None:
        with trio.CancelScope() as scope:
            async def cancel_once_running() -> None:
                await trio.to_thread.run_sync(running.wait, 60)
                scope.cancel()                     # the exchange ends: the peer hung up
            async with trio.open_nursery() as nursery:
                nursery.start_soon(cancel_once_running)
                await send_records(None, produce)
        assert scope.cancelled_caught

    with Store(tmp_path / "m.duckdb", helpers=0) as store:
        trio.run(exchange)
        assert finished.wait(120), "the read went on after the exchange ended"
        assert len(ended) == 1 and isinstance(ended[0], duckdb.InterruptException), ended


def test_sync_strikes_bar_an_address_and_no_other() -> None:
    """node/addrstrikes.py: the limit's strikes within the window bar that address (an IPv6 one
    by its /64) for bar_s; other addresses, unknown ones ("?": relayed links) and strikes spread
    wider than the window bar nothing."""
    from node.addrstrikes import AddressStrikes

    now = [0.0]
    strikes = AddressStrikes(limit=4, window_s=60, bar_s=300, clock=lambda: now[0])
    for t in (0, 30, 59, 70):                               # the first expires at 60
        now[0] = t
        assert not strikes.strike("2001:db8::1")
    assert not strikes.barred("2001:db8::1")
    now[0] = 75
    assert strikes.strike("2001:db8::2")                    # 4 within 60 s, the /64 shared
    assert strikes.barred("2001:db8::99") and not strikes.barred("2001:db8:1::1")
    assert not any(strikes.strike(address) for address in ["?", None] * 10)
    assert not strikes.barred("?") and not strikes.barred(None)
    now[0] += 301
    assert not strikes.barred("2001:db8::1")                # the bar ends
