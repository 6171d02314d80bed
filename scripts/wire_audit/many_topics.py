"""A peer publishes MSGS valid records (10 fresh authors), each message naming the node's topic
and TOPICS made-up ones; watched for 90 s.  `python scripts/wire_audit/many_topics.py 100 5000`"""
import sys
import time

from common import api_ok, main, measure, publisher

import trio

from memory.crypto import Keypair
from tests.network.launcher import make_records

MSGS = int(sys.argv[1]) if len(sys.argv) > 1 else 100
TOPICS = int(sys.argv[2]) if len(sys.argv) > 2 else 5000


async def attack(node):
    async with publisher(node) as (pubsub, topic):
        print("before", measure(node), flush=True)
        keys = [Keypair.generate() for _ in range(10)]
        records = [r for k in keys for r in make_records(MSGS // 10, k)]
        for i, raw in enumerate(records):
            await pubsub.publish([topic] + [f"/junk/{i}/{j}" for j in range(TOPICS)], raw)
            if i % 20 == 19:
                await trio.sleep(0.2)
        await trio.sleep(5)
        print("after", measure(node), "records", node.query("SELECT count(*) FROM records")["rows"])
        for k in range(9):
            await trio.to_thread.run_sync(time.sleep, 10)
            print(f"+{10 * (k + 1)}s", measure(node), "api", api_ok(node), flush=True)


main(attack)
