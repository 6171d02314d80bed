<<<<<<< HEAD
"""Benchmark scripts behind `swarm bench ...` (figures for the issues' targets, not timed tests)."""
=======
"""Benchmark scripts behind `swarm bench ...` (figures for the issues targets; never timed tests)."""
>>>>>>> main
