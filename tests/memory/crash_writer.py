"""Child process for the crash test: ingest a record stream in batches, printing ACK after each commit."""
from __future__ import annotations

import sys

from memory import stream
from memory.store import Store

if __name__ == "__main__":
    db, source, batch = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with open(source, "rb") as f:
        raws = list(stream.read(f))
    store = Store(db)
    done = store.count()
    for i in range(done, len(raws), batch):
        store.ingest(raws[i:i + batch])
        print(f"ACK {i + batch}", flush=True)
    print("DONE", flush=True)
