"""The fixed blocks of the parallel passes (:mod:`skmixed._kernels.blocks`): how many, their
rows, the spans of group codes, and the sum of the blocks' tables in block order — the same
bits on any number of threads."""

import numba
import numpy as np
import pytest

from skmixed._kernels import blocks
from skmixed._kernels.blocks import block_bounds, cover, n_blocks, sum_spans
from skmixed._kernels.threads import numba_threads


def test_block_count_depends_on_sizes_only():
    assert n_blocks(0) == n_blocks(1) == n_blocks(blocks.MIN_BLOCK_ROWS - 1) == 1
    assert n_blocks(2 * blocks.MIN_BLOCK_ROWS) == 2
    assert n_blocks(10**9) == blocks.MAX_BLOCKS
    # the study's 2e6 rows × 2,000 groups: random intercept (q = 1, p = 2) and slope (q = 2)
    assert n_blocks(2_000_000, 2_000 * (1 * 4 + 1)) == 50
    assert n_blocks(2_000_000, 2_000 * (2 * 4 + 1)) == 27
    # a large table: still MIN_SPLIT blocks, within the memory bound
    assert n_blocks(1_000_000, 20_000 * 5) == blocks.MIN_SPLIT
    assert n_blocks(10**7, 10**7) == blocks.MAX_TABLE_BYTES // (8 * 10**7)
    assert n_blocks(10**7, 10**9) == 1
    with numba_threads(1):
        one = n_blocks(2_000_000, 10_000)
    with numba_threads(numba.config.NUMBA_NUM_THREADS):
        assert n_blocks(2_000_000, 10_000) == one


@pytest.mark.parametrize("n, k", [(0, 1), (3, 7), (10, 3), (100_001, 64)])
def test_blocks_partition_the_rows(n, k):
    bounds = np.array([block_bounds(n, k, b) for b in range(k)])
    assert bounds[0, 0] == 0 and bounds[-1, 1] == n
    np.testing.assert_array_equal(bounds[1:, 0], bounds[:-1, 1])
    sizes = bounds[:, 1] - bounds[:, 0]
    assert sizes.min() >= 0 and sizes.max() - sizes.min() <= 1


def test_cover_extends_the_span():
    assert cover(0, 0, 5) == (5, 6, 5, 6)  # empty span
    assert cover(5, 6, 9) == (5, 10, 6, 10)
    assert cover(5, 10, 2) == (2, 10, 2, 5)
    lo, hi, a, b = cover(2, 10, 7)
    assert (lo, hi) == (2, 10) and a == b  # nothing new


@pytest.mark.parametrize("dtype", [np.float64, np.int64])
def test_sum_spans_adds_in_block_order(dtype):
    """Each entry is the sum of its blocks' terms in block order (outside a block's span its
    table is garbage and ignored), bit for bit the same on 1 and 2 threads."""
    rng = np.random.default_rng(2)
    k, G, W = 9, 300, 3
    parts = (rng.normal(size=(k, G, W)) * 10.0 ** rng.integers(-8, 8, size=(k, G, W)))
    parts = parts.astype(dtype) if dtype == np.float64 else rng.integers(-5, 5, (k, G, W))
    spans = np.sort(rng.integers(0, G + 1, size=(k, 2)), axis=1)
    spans[3] = [0, 0]  # a block that met no group
    garbage = parts.copy().astype(dtype)
    expected = np.zeros((G, W), dtype=dtype)
    for b in range(k):
        lo, hi = spans[b]
        garbage[b, :lo] = -(10**6)
        garbage[b, hi:] = 10**6
        expected[lo:hi] += parts[b, lo:hi]  # the reference order: block 0, 1, 2, …
    results = []
    for n_threads in (1, 2):
        out = np.zeros((G, W), dtype=dtype)
        with numba_threads(n_threads):
            sum_spans(garbage, spans, out)
        results.append(out)
    np.testing.assert_array_equal(results[0], expected)
    np.testing.assert_array_equal(results[1], expected)
