"""CPU-us the gossip validator spends on each record of an author past its quota (valid records,
then the same with a flipped signature), on the node's real validator and quotas, no network:
on the wire a peer sending them is struck every 50 and soon gated by its score (author_flood.py),
so this isolates the validator's share. `python scripts/wire_audit/validator_cost.py 5000`"""
import os
import sys
import time
from types import SimpleNamespace

sys.path.insert(0, os.getcwd())

import msgpack  # noqa: E402

from memory.crypto import Keypair  # noqa: E402
from node import gossip  # noqa: E402
from node.peers import PeerBook  # noqa: E402
from node.quota import QuotaConfig, Quotas  # noqa: E402
from tests.network.launcher import make_records  # noqa: E402

N = int(sys.argv[1]) if len(sys.argv) > 1 else 5000


def forged(raw: bytes) -> bytes:
    payload, signature = msgpack.unpackb(raw)
    return msgpack.packb([payload, bytes([signature[0] ^ 1]) + signature[1:]])


def cost(validate, raws: list[bytes]) -> float:
    """CPU-us per `validate` call over `raws`, each from a peer of its own (no strike adds up)."""
    t0 = time.process_time()
    for i, raw in enumerate(raws):
        validate(f"peer{i}", SimpleNamespace(data=raw))
    return round((time.process_time() - t0) / len(raws) * 1e6, 1)


def main() -> None:
    config = QuotaConfig(peer_new_burst=1e9)          # the author's own quota is what refuses
    validate = gossip.make_validator(PeerBook(invalid_limit=10**9), Quotas(config),
                                     gossip.Tally(), "me", lambda peer: None,
                                     lambda peer: "10.0.0.1")
    raws = make_records(N + 100, Keypair.generate())
    for raw in raws[:100]:                             # the author's quota spent
        validate("first", SimpleNamespace(data=raw))
    over = raws[100:]
    print("CPU-us per record of an author past its quota: valid", cost(validate, over),
          "forged", cost(validate, [forged(raw) for raw in over]))


main()
