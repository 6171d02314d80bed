"""The shared memory: signed records and the DuckDB store every peer replicates. Imports nothing of ours.

canonical.py    canonical msgpack, content ids, config hashes
crypto.py       Ed25519 keys, libp2p peer ids, signatures (no libp2p import)
records.py      the record kinds (strict pydantic bodies)
codec.py        sign / decode-and-validate with named rejection reasons; envelope-only reads
batch.py        decoding a batch: in-process with signatures on threads, or in helper processes
                (which also build the valid records' rows)
helpers.py      the record-checking helper processes (pool, pipes, failure handling)
check_worker.py the helper process itself (python -m memory.check_worker)
schema.py       tables derived from the record models; Arrow rows for a batch
keyset.py       compact sets of 64-bit keys that spare each batch a scan of every record
store.py        Store (read-write, one process), ReadOnlyMemory (browsing), memory_stats
gcpause.py      the cyclic garbage collector paused while decoding large frames and batches
diskspace.py    a full disk recognised in DuckDB's and the OS's errors, and its one-line message
views.py        derived state as SQL views: seed stats, leaderboard, claim status, noise floor;
                values over every run moved on as runs arrive (runs per track, base configs)
leaderboard.py  the leaderboard as the CLI shows it: top-N per track with config and support
antientropy.py  have-summaries, digest, and what a peer lacks (for sync 1.0.0)
reconcile.py    range-based set reconciliation over (ts, id8) keys (for sync 2.x)
sketch.py       invertible Bloom lookup tables of id8 keys (sync 2.1.0 sparse differences)
sqlguard.py     user SQL: one SELECT only; connections without file or network access
stream.py       record stream files (swarm memory export / import)
stats.py        Welch / paired t, LOND over the screened family, noise floor, the claim gate
invisible.py    the characters shown as U+FFFD wherever a person or a model reads a record's text
synthetic.py    realistic signed records for tests, benchmarks and demos; history(): a small swarm
"""
