<<<<<<< HEAD
"""Benchmark scripts behind `swarm bench ...` (figures for the issues targets; never timed tests)."""
=======
"""Benchmark scripts behind `swarm bench ...` (figures for the issues' targets, not timed tests).

harness.py   `swarm bench harness`: tokens/s and MFU against a textbook GPT, seed noise of a track
textbook.py  the reference: a plain eager PyTorch GPT training step, straight from the textbook
"""
>>>>>>> harness
