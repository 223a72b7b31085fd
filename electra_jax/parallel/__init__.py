"""Parallelism: the device mesh, logical-axis shardings, TPU chips and topologies, and reading a
compiled program's HLO (collectives, transfers across slices)."""
