"""Benchmark scripts behind `swarm bench ...` (figures for the issues' targets, never timed tests).

memory.py    `swarm bench memory`: ingest rate, query latency, size, anti-entropy repair cost
dashboard.py `swarm bench dashboard`: latency of each dashboard JSON view on a big memory
memory_gen.py the bench memory's generator, fast: synthetic signed runs bulk-loaded, cached
harness.py   `swarm bench harness`: tokens/s and MFU against a textbook GPT, seed noise of a track
textbook.py  the reference: a plain eager PyTorch GPT training step, straight from the textbook
procstat.py  CPU time and memory of a process, from /proc
fuzzpeer.py  a fuzzing peer: random and mutated frames on every protocol a node speaks
floodpeer.py a flooding peer: valid records from many fresh keys over one connection
attacks.py   `swarm bench crowd | stucksub | slotwait`: the commands, importing their bench lazily
crowd.py     `swarm bench crowd`: many fresh peer ids connecting to a node; its identify, sync, memory after
stucksub.py  `swarm bench stucksub`: gossip subscribers that never read (or ask IWANT from outside the mesh)
slotwait.py  `swarm bench slotwait`: a newcomer's wait for a serving slot (ServeSlots, virtual clock)
hostile_bench.py  `swarm bench network --flood/--fuzz`: propagation under a flood; a fuzzing run
nat.py       `swarm bench nat`: propagation between two homes behind NAT, relayed and hole-punched
netns.py     the namespaces of `bench nat` and the NAT test: a WAN, homes behind nftables NATs
blob.py      `swarm bench blob`: blob transfer MB/s and a fresh node's fetch of tinystories-cpu from a peer
search.py    `swarm bench search` (and `bench gate`): the search and the gate on simulated surfaces
search_surface.py  the simulated response surfaces with a known optimum, and their runner
search_sim.py the gate's rules alone over many candidates (`bench search --mode sim`)
"""
