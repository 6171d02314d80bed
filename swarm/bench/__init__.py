"""Benchmark scripts behind `swarm bench ...` (figures for the issues targets; never timed tests)."""
