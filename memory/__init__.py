"""The shared memory: signed records and the DuckDB store every peer replicates. Imports nothing of ours.

canonical.py  canonical msgpack, content ids, config hashes
crypto.py     Ed25519 keys, libp2p peer ids, signatures (no libp2p import)
records.py    the record kinds (strict pydantic bodies)
codec.py      sign / encode / decode-and-validate, with named rejection reasons
"""
