"""Fixed blocks for the parallel passes: sums that do not depend on the thread count.

Floating-point addition is not associative. A pass that gives each thread one chunk of the
rows and then adds the chunks' partial sums gets sums that change in the last bits with the
number of threads — and, through the optimizer's stopping point, estimates that change far
more (1e-9 in the coefficients between ``n_jobs=1`` and ``2`` at 2e6 rows). Every parallel
pass therefore splits its rows (or groups) into blocks whose number depends only on the
problem's size, never on the threads: ``prange`` runs over the blocks, each block writes
only its own slot of the outputs, and the slots are added in block order afterwards. Any
number of threads gives bit-identical sums.

How many blocks (:func:`n_blocks`): at most ``MAX_BLOCKS``, each of at least
``MIN_BLOCK_ROWS`` rows; a pass whose blocks each own a table (per-group sums) also keeps
``rows per block ≥ TABLE_RATIO × table entries`` so that zeroing and adding the tables
stays small beside the rows, but splits into ``MIN_SPLIT`` blocks even for a large table
(the parallelism of such a pass is then ``MIN_SPLIT`` threads), and the tables of all blocks
take at most ``MAX_TABLE_BYTES``.

Group tables are zeroed and added only over each block's *span*, the range of group codes
it met (:func:`cover`, :func:`sum_spans`): on rows in group order — the usual layout — a
block touches a few groups, and the blocks' tables together cost about one table.
"""

import numpy as np
from .._cache import cached_njit

__all__ = ["n_blocks", "block_bounds", "cover", "sum_spans", "MAX_BLOCKS"]

MAX_BLOCKS = 64
MIN_BLOCK_ROWS = 16_384
TABLE_RATIO = 4
MIN_SPLIT = 8
MAX_TABLE_BYTES = 256 * 2**20


def n_blocks(n, table=0, min_rows=None):
    """The number of blocks for a pass over ``n`` rows (or groups) whose blocks each own
    ``table`` float64 entries; a function of the sizes only (module docstring)."""
    n = int(n)
    min_rows = MIN_BLOCK_ROWS if min_rows is None else int(min_rows)
    k = n // max(1, min_rows)
    if table > 0:
        k = min(k, max(n // (TABLE_RATIO * table), MIN_SPLIT))
        k = min(k, MAX_TABLE_BYTES // (8 * table))
    return int(max(1, min(k, MAX_BLOCKS)))


@cached_njit
def block_bounds(n, n_blk, b):
    """Rows ``[start, stop)`` of block ``b`` of ``n_blk`` over ``n`` rows."""
    return b * n // n_blk, (b + 1) * n // n_blk


@cached_njit
def cover(lo, hi, g):
    """The span ``[lo, hi)`` extended to contain ``g`` (``lo >= hi``: empty), and the range
    ``[a, b)`` of rows newly covered — the caller zeroes them in its tables."""
    k = np.int64(g)
    if lo >= hi:
        return k, k + 1, k, k + 1
    if k < lo:
        return k, np.int64(hi), k, np.int64(lo)
    if k >= hi:
        return np.int64(lo), k + 1, np.int64(hi), k + 1
    return np.int64(lo), np.int64(hi), k, k


@cached_njit
def sum_spans(parts, spans, out):
    """``out[g] += parts[b, g]`` over the blocks b in order, each only where
    ``spans[b, 0] <= g < spans[b, 1]`` (the rest of ``parts[b]`` is not initialized).

    ``parts``: (n_blocks, G, W); ``out``: (G, W). Serial: on rows in group order the spans
    barely overlap and this is about one table's worth of additions, less than what
    waking the thread pool for a second parallel region costs on a busy machine.
    """
    W = out.shape[1]
    for b in range(parts.shape[0]):
        for g in range(spans[b, 0], spans[b, 1]):
            for k in range(W):
                out[g, k] += parts[b, g, k]
