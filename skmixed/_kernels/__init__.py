"""Numba kernels: everything that touches every row, and the per-group loops of the objective.

Kernels take arrays and scalars, write into caller-owned output arrays, and are compiled
with :func:`.cache.cached_njit` (``numba.njit`` with a checked disk cache). Parallel loops
run over row chunks or group chunks, each chunk writing only its own slice of a per-chunk
buffer that is reduced afterwards.
"""
