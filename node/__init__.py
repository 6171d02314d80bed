"""What a volunteer machine runs. Imports `memory`, never `roles` or `swarm`.

home.py        the home folder (--home, $SWARM_HOME, ~/.swarm) and its files
identity.py    the node's Ed25519 key (HOME/identity.key, mode 0600)
api_client.py  client of a running daemon's local read API (browsing commands)
daemon.py      `swarm join`: store, libp2p host, local API, signals, one daemon per home
bridge.py      trio (libp2p) in its own thread, callable from asyncio
host.py        the libp2p host: gossip, sync protocol, connections, bans (trio side)
gossip.py      GossipSub settings, topic, record validator
sync.py        /swarm/sync/1.0.0: digest, have, missing batches
framing.py     length-prefixed msgpack frames with bounded reads and deadlines
discovery.py   bootstrap/saved peers, mDNS, Kademlia DHT providers; connection events
peers.py       the peer table: last seen, records received, strikes, bans, peers.json
batcher.py     gossip records ingested in ~100 ms batches; arrival times
machine.py     this machine's hardware and software for the `node` record
api_server.py  the local app: Starlette on uvicorn in the daemon's loop (127.0.0.1, token gate)
api_routes.py  the API's endpoints: /query /status /peers /ingest /publish /arrivals; timed reads
"""
