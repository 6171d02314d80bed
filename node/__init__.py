"""What a volunteer machine runs. Imports `memory`, never `roles` or `swarm`.

home.py        the home folder (--home, $SWARM_HOME, ~/.swarm) and its files
identity.py    the node's Ed25519 key (HOME/identity.key, mode 0600)
api_client.py  client of a running daemon's local read API (browsing commands)
daemon.py      `swarm join`: store, libp2p host, local API, signals, one daemon per home
bridge.py      trio (libp2p) in its own thread, callable from asyncio
host.py        the libp2p host: gossip, sync protocol, connections, bans (trio side)
gossip.py      GossipSub settings, peer scoring, topic, record validator (checks + quotas)
patches.py     narrow start-up fixes to py-libp2p 0.8.1; per-stream containment of handlers
gossip_requests.py  py-libp2p GossipSub patches for IHAVE / IWANT (GossipSub v1.1's bounds)
inbound.py     inbound connection slots: given back when a connection ends, fair among addresses
hearsay.py     addresses DHT peers name, filtered before kept or dialed; peerstore eviction
dialbudget.py  dials of addresses only hearsay named: a budget per target IP
serveslots.py  whom the node serves at once (sync pulls, blob transfers), fair among addresses
servework.py   the CPU a requester address's sync answers may take (CPU-seconds, token bucket)
quota.py       token buckets per connected peer and per author for gossip
syncquota.py   wall-clock budgets per serving peer and per author for records pulled by sync
quiet.py       py-libp2p logging routed through ours; repeated warnings rate-limited
sync.py        /swarm/sync/2.1.0 (range-based reconciliation, sketches); 2.0.0, 1.0.0
sync_v1.py     /swarm/sync/1.0.0 (digest, have, missing batches), kept for older nodes
syncwire.py    what both versions share: pull result, batch checks, ingest, record producer
blob.py        /swarm/blob/1.0.0: track files by sha256, chunk-verified, resumable, rate-limited
framing.py     length-prefixed msgpack frames with bounded reads and deadlines
discovery.py   bootstrap/saved peers, mDNS, Kademlia DHT providers; connection events
nat.py         reachability: dial-back check, relay reservations, relayed dials, DCUtR, links
relay.py       `--relay`: circuit relay v2 hop with per-IP/global caps; relay peer listing
listen.py      join-time checks: listen multiaddrs and free ports, bootstrap sources (flag, env, file)
peers.py       the peer table: last seen, records received, strikes, bans, peers.json
batcher.py     gossip records ingested in ~100 ms batches; arrival times
machine.py     this machine's hardware and software for the `node` record
api_server.py  the local app: Starlette on uvicorn in the daemon's loop (127.0.0.1, token gate)
api_routes.py  the API's endpoints: /query /status /peers /ingest /publish /arrivals; timed reads
pidlock.py     a lock one live process holds (flock; a dead holder's is none): daemon.lock, runs
"""
