"""Sync budgets per address (node/syncquota.py): fresh peer ids from one remote IP share that
address's budget (`address_factor` times a peer's), and each peer id still has its own.

Real py-libp2p hosts on loopback in one process: each flooding responder is a host with a fresh key
serving its own memory of fresh-key records; the requester pulls from each through `sync.pull`,
rationed as `NetHost.pull_from` does (the ration's address read from the real stream). Hosts
listening on 127.0.0.1 share one address; one on 127.0.0.2 (still loopback) is another address.
"""
from __future__ import annotations

from typing import Any

import trio

from memory.crypto import Keypair
from memory.store import Store
from node import sync
from node.quota import Quotas
from node.relay import remote_ip
from node.syncquota import Head, SyncQuotaConfig, SyncQuotas, SyncRation, address_key
from tests.network.launcher import make_records

PER_PEER = 40                              # never-seen authors one peer may introduce an hour
CONFIG = SyncQuotaConfig(new_authors_per_hour=PER_PEER, address_factor=2.0)
FLOODERS = 4                               # peer ids on one address, each serving 2 x PER_PEER


def _flood(keys: int, track: str) -> list[bytes]:
    return [r for _ in range(keys) for r in make_records(1, Keypair.generate(), track=track)]


def _head(author: str, size: int = 100) -> Head:
    return Head(f"id-{author}", author, size)


def _count(store: Store, track: str) -> int:
    sql = "SELECT count(*) FROM hypotheses WHERE track = ?"
    return store.query(sql, [track]).rows[0][0]


async def _pull_each(store: Store, quotas: SyncQuotas,
                     servers: list[tuple[str, list[bytes]]]) -> list[tuple[str, int, dict]]:
    """Serve each memory from a host of its own (fresh key) listening on its IP; pull from each in
    turn, as `NetHost.pull_from` does. Per server: the address the requester saw, records stored,
    and drops by reason (or "paused": the address's pulls were, so this one did not happen)."""
    import multiaddr
    from libp2p import new_host
    from libp2p.custom_types import TProtocol
    from libp2p.peer.peerinfo import info_from_p2p_addr

    results = []
    client = new_host()
    async with client.run([multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]):
        for n, (ip, raws) in enumerate(servers):
            with Store(":memory:", helpers=0) as served:
                served.ingest(raws)
                server = new_host()

                async def serve(stream: Any, served: Store = served) -> None:
                    await sync.serve(stream, served, "net")
                    await stream.close()

                for protocol in sync.PROTOCOLS:
                    server.set_stream_handler(TProtocol(protocol), serve)
                async with server.run([multiaddr.Multiaddr(f"/ip4/{ip}/tcp/0")]):
                    addr = f"{server.get_addrs()[0]}"
                    addr += "" if "/p2p/" in addr else f"/p2p/{server.get_id()}"
                    await client.connect(info_from_p2p_addr(multiaddr.Multiaddr(addr)))
                    peer = str(server.get_id())
                    ration = SyncRation(quotas, peer)
                    before = store.count()
                    with trio.fail_after(60):
                        stream = await client.new_stream(
                            server.get_id(), [TProtocol(p) for p in sync.PROTOCOLS])
                        paused = not ration.open(remote_ip(stream))   # as pull_from does
                        if not paused:
                            await sync.pull(stream, store, "net", ration=ration)
                        await stream.close()
                    ration.finish()
                    results.append((ration.address, store.count() - before,
                                    "paused" if paused else dict(ration.dropped)))
    return results


def test_fresh_peer_ids_from_one_address_share_its_budget_and_each_keeps_its_own() -> None:
    floods = [("127.0.0.1", _flood(2 * PER_PEER, f"flood{n}")) for n in range(FLOODERS)]
    honest = ("127.0.0.2", _flood(PER_PEER // 2, "honest"))
    quotas = SyncQuotas(Quotas(), CONFIG)
    with Store(":memory:", helpers=0) as store:
        results = trio.run(_pull_each, store, quotas, [*floods, honest])
        stored = [_count(store, f"flood{n}") for n in range(FLOODERS)]
        honest_stored = _count(store, "honest")
    assert [address for address, _, _ in results] == ["127.0.0.1"] * FLOODERS + ["127.0.0.2"]
    # each peer id: at most its own budget (the first two spend the address's)
    assert all(n <= PER_PEER + 1 for n in stored) and stored[0] >= PER_PEER
    assert results[0][2] == {"quota_sync_new_authors": 2 * PER_PEER - stored[0]}
    # together: at most the address's budget, however many fresh keys; the third gets nothing
    # (its pull dropped everything over the address's budget), and pulls from that address
    # pause: the fourth key is not pulled from at all
    # (the address's budget refills at 80 authors an hour: a slow run may let one through)
    assert sum(stored) <= CONFIG.address_factor * PER_PEER + 1
    assert stored[2] <= 1 and stored[3] == 0
    assert results[2][2] == {"quota_sync_address_new_authors": 2 * PER_PEER - stored[2]}
    assert results[3][2] == "paused"
    # another address's peer is untouched by the flood
    assert honest_stored == PER_PEER // 2 and not results[-1][2]


def test_a_pull_the_address_budget_cut_short_pauses_every_peer_id_there() -> None:
    quotas = SyncQuotas(Quotas(), SyncQuotaConfig(new_authors_per_hour=10, address_factor=1.0))
    first = SyncRation(quotas, "p")
    assert first.open("10.1.2.3")
    quotas.admit("p", [_head(f"k{i}") for i in range(15)], "10.1.2.3")   # peer's own budget
    first.dropped = {"quota_sync_new_authors": 5}
    first.finish()
    assert quotas.may_pull("q", "10.1.2.3")          # only p paused: the address's budget spoke
    second = SyncRation(quotas, "q")
    assert second.open("10.1.2.3")
    keep, drops = quotas.admit("q", [_head(f"j{i}") for i in range(5)], "10.1.2.3")
    assert not any(keep) and drops == {"quota_sync_address_new_authors": 5}
    second.dropped = drops
    second.finish()
    fresh = SyncRation(quotas, "fresh key")           # a new peer id there: no pull at all
    assert not fresh.open("10.1.2.3") and not quotas.may_pull("fresh key", "10.1.2.3")
    fresh.finish()                                    # a pull that did not happen: no change
    assert quotas.may_pull("fresh key") and quotas.may_pull("r", "10.9.9.9")


def test_the_per_peer_budget_applies_within_an_address_budget_to_spare() -> None:
    quotas = SyncQuotas(Quotas(), SyncQuotaConfig(new_authors_per_hour=10, address_factor=8.0))
    heads = [_head(f"k{i}") for i in range(30)]
    keep, drops = quotas.admit("p", heads, "10.1.2.3")
    assert sum(keep) == 10 and drops == {"quota_sync_new_authors": 20}
    keep, drops = quotas.admit("q", [_head(f"j{i}") for i in range(30)], "10.1.2.3")
    assert sum(keep) == 10 and drops == {"quota_sync_new_authors": 20}     # q's own 10


def test_a_refund_gives_the_address_its_bytes_back() -> None:
    config = SyncQuotaConfig(peer_bytes_per_hour=3000, address_factor=1.0)
    quotas = SyncQuotas(Quotas(), config)
    heads = [_head(f"k{i}", 1000) for i in range(3)]
    assert all(quotas.admit("p", heads, "10.0.0.1")[0])
    assert not any(quotas.admit("q", [_head("x", 1000)], "10.0.0.1")[0])   # address spent
    quotas.refund("p", heads, "10.0.0.1")                     # all three were held already
    assert all(quotas.admit("q", [_head("x", 1000)], "10.0.0.1")[0])


def test_addresses_are_keyed_by_ipv4_and_ipv6_slash_64() -> None:
    assert address_key("192.0.2.7") == "192.0.2.7"
    assert address_key("::ffff:192.0.2.7") == "192.0.2.7"
    # one subscriber's /64: every address in it is one budget
    assert address_key("2001:db8:1:2::1") == address_key("2001:db8:1:2:ffff::9") \
        == "2001:db8:1:2::/64"
    assert address_key("2001:db8:1:3::1") != address_key("2001:db8:1:2::1")
    assert address_key("?") == address_key(None) == address_key("not an ip") == "?"
