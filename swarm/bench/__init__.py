"""Benchmark scripts behind `swarm bench ...` (figures for the issues' targets, never timed tests).

memory.py    `swarm bench memory`: ingest rate, query latency, size, anti-entropy repair cost
harness.py   `swarm bench harness`: tokens/s and MFU against a textbook GPT, seed noise of a track
textbook.py  the reference: a plain eager PyTorch GPT training step, straight from the textbook
procstat.py  CPU time and memory of a process, from /proc
search.py    `swarm bench search` (and `bench gate`): the search and the gate on simulated surfaces
search_surface.py  the simulated response surfaces with a known optimum, and their runner
"""
