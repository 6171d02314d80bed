"""IWANT answers are rationed per remote address, not per peer id (node/gossip_requests.py,
`_iwant_credit`; docs/PROTOCOL.md, "Gossip: new records"): a peer id is free, so a fresh one
from an address that spent its credit, or the same one reconnecting, must not get the whole
cache again; a peer at another address still gets its catch-up.

Real py-libp2p on loopback, in one process: a node's own GossipSub publishes records; raw peers,
neither subscribed nor in its mesh, visit it in turn (each dialing from a given loopback IP, with
a fresh key or a given one), send one IWANT and stay until it is handled. What the node put into
its answers to each is counted as it answers (swarm/bench/stucksub.py `_count_sent`).
"""
from __future__ import annotations

import os
from types import SimpleNamespace
from typing import Any

import trio
import varint
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.pubsub.mcache import MessageCache
from libp2p.pubsub.pb import rpc_pb2

from node import gossip, gossip_requests
from swarm.bench import stucksub

RECORDS, SIZE = 20, 60 * 1024    # 1.2 MiB cached: an address's credit is that plus 1 MiB
WAIT_S = 120


def _handled(router: Any) -> int:
    """IWANT asks of cached records the router answered or ignored so far."""
    served = sum(sum(counts.values()) for counts in
                 router.mcache.__dict__.get("served", {}).values())
    return served + sum(router.__dict__.get("gossip_refused", {}).values())


async def _visits(plan: list[tuple[str, Any, int]]) -> list[int]:
    """A node publishes RECORDS records of SIZE bytes; then, one after another, a raw peer dials
    it from IP `source` with key `key` (None: a fresh one), asks by one IWANT for every record
    `times` times over, and disconnects once the node has answered or ignored each ask (and the
    node has dropped it). Returns the records the node put into its answers to each visit."""
    from libp2p import new_host
    from libp2p.tools.anyio_service import background_trio_service

    victim = new_host()
    router, pubsub = gossip.make_router_and_pubsub(victim)
    router.mcache = MessageCache(3, 600)    # records stay cached however slow the machine is
    answered: list[int] = []
    async with victim.run(stucksub.LOOPBACK), background_trio_service(pubsub), \
            background_trio_service(router), trio.open_nursery() as nursery:
        await pubsub.wait_until_ready()
        await pubsub.subscribe(stucksub.TOPIC)
        ids = []
        for i in range(RECORDS):
            data = i.to_bytes(4, "big") + os.urandom(SIZE - 4)
            await pubsub.publish(stucksub.TOPIC, data)
            ids.append(gossip.message_id(SimpleNamespace(data=data)).hex().encode())
        to: set[Any] = set()
        sent = stucksub._count_sent(router, to)
        for source, key, times in plan:
            before, asks = sent[0], _handled(router) + times * RECORDS
            async with trio.open_nursery() as visit:
                host, stream = await stucksub._subscriber(
                    victim, visit, graft=False, handler=stucksub._discard, subscribe=False,
                    key_pair=key, source=source)
                to.add(host.get_id())
                with trio.fail_after(WAIT_S):
                    while host.get_id() not in pubsub.peer_queues:
                        await trio.sleep(0.05)
                    rpc = rpc_pb2.RPC()
                    rpc.control.iwant.add(messageIDs=ids * times)
                    raw = rpc.SerializeToString()
                    await stream.write(varint.encode(len(raw)) + raw)
                    while _handled(router) < asks:      # answers are put in the same step
                        await trio.sleep(0.05)
                    await host.disconnect(victim.get_id())
                    while host.get_id() in pubsub.peer_queues:  # py-libp2p's remove_peer ran
                        await trio.sleep(0.05)
                visit.cancel_scope.cancel()
            answered.append(sent[0] - before)
        pubsub.seen_messages.stop()
        nursery.cancel_scope.cancel()
    return answered


# the first visit spends its address's whole credit: every record once, then more copies
# (each asked GOSSIP_RETRANSMISSION times) until the 1 MiB past the cache is spent too
SPEND = ("127.0.0.1", None, gossip_requests.GOSSIP_RETRANSMISSION)
SPENT = RECORDS + gossip_requests.IWANT_ALLOWANCE_BYTES // SIZE


def test_a_fresh_peer_id_from_an_address_that_spent_its_credit_gets_none() -> None:
    """A second key from the same address asks for every record once: before, it got them all
    (a fresh id, a fresh credit of the whole cache plus 1 MiB); now nothing (no record was cached
    since its address spent the credit)."""
    answered = trio.run(_visits, [SPEND, ("127.0.0.1", None, 1)])
    assert answered == [SPENT, 0], answered


def test_a_peer_reconnecting_gets_no_fresh_credit() -> None:
    """The same key disconnects, reconnects and asks for every record once: before, it got them
    all again (its credit left with it, in `remove_peer`); now nothing."""
    key = create_new_key_pair()
    answered = trio.run(_visits, [("127.0.0.1", key, gossip_requests.GOSSIP_RETRANSMISSION),
                                  ("127.0.0.1", key, 1)])
    assert answered == [SPENT, 0], answered


def test_a_peer_at_another_address_still_gets_its_catch_up() -> None:
    """Once 127.0.0.1 has spent its credit, a fresh peer at 127.0.0.2 asking for every record
    once gets them all (its address's own credit), as any new peer did before."""
    answered = trio.run(_visits, [SPEND, ("127.0.0.2", None, 1)])
    assert answered == [SPENT, RECORDS], answered


def test_the_credits_kept_are_bounded_the_least_recently_asking_forgotten() -> None:
    """Addresses are not free, but an attacker may hold many: past MAX_CREDIT_ADDRESSES the
    address that asked least recently is forgotten (it starts full again, as a new one does),
    so the table stays bounded. No network: the rationing on a message cache."""
    from node import patches

    patches.apply()
    cache = MessageCache(1, 2)
    msg = rpc_pb2.Message(data=b"record", topicIDs=[stucksub.TOPIC])
    cache.put(msg)
    wire = gossip.message_id(msg).hex().encode()
    limit = gossip_requests.MAX_CREDIT_ADDRESSES
    for n in range(limit + 10):
        gossip_requests._ration_iwant(cache, [wire], f"10.0.{n // 256}.{n % 256}")
        if n == 0:
            first = gossip_requests._iwant_credit(cache, "10.0.0.0")
        if n == limit - 1:      # the first address asks again: now the most recently asking
            gossip_requests._ration_iwant(cache, [], "10.0.0.0")
    credits = cache.__dict__["credit"]
    assert len(credits) == limit
    assert "10.0.0.0" in credits and "10.0.0.1" not in credits
    assert gossip_requests._iwant_credit(cache, "10.0.0.0") == first < \
        gossip_requests._iwant_credit(cache, "10.0.0.1")
