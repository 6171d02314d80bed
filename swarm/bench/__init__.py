"""Benchmark scripts behind `swarm bench ...` (figures for the issues' targets, not timed tests)."""
