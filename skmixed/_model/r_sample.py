"""R's ``set.seed(seed); sample(n, size)`` in NumPy, draw for draw.

mgcv draws the knots of a large thin-plate smooth with R's random numbers (`ThinPlate`), so
agreeing with it on big data means drawing the same ones. R's default generators
(``RNGkind()`` = Mersenne-Twister, Inversion, Rejection; R ≥ 3.6):

* ``set.seed(s)`` (R's ``RNG_Init``): ``s`` is scrambled by 50 steps of the linear
  congruential map ``s ← 69069 s + 1 (mod 2³²)``; the next 625 steps fill R's seed vector,
  whose first entry is the Mersenne-Twister position (then set to 624, "regenerate") and the
  other 624 the MT19937 state words. The generator is the standard MT19937, so NumPy's
  `MT19937` given that state yields the same 32-bit words.
* ``unif_rand()`` is a word times 2⁻³² (an exact 0 is nudged up, as R's ``fixup``).
* ``R_unif_index(n)`` is rejection sampling: ``bits = ceil(log2 n)``; draw
  ``v = Σ floor(65536 u_i)`` in 16-bit chunks (``bits // 16 + 1`` uniforms, the first the
  most significant), keep its low ``bits`` bits, and retry while ``v ≥ n``.
* ``sample(n, size)`` without replacement (``do_sample``): a pool ``0 … n−1``; each draw
  takes ``j = R_unif_index(remaining)``, returns ``pool[j] + 1`` and moves the pool's last
  entry into slot j.
"""

import math

import numpy as np

__all__ = ["r_set_seed_state", "RUniform", "r_sample"]

_LCG_A = 69069
_MASK32 = 0xFFFFFFFF
_N_MT = 624
_TWO_M32 = 2.328306437080797e-10  # R's i2_32m1 = 1 / (2^32 - 1), used by MT_genrand


def r_set_seed_state(seed):
    """The 624 MT19937 state words left by R's ``set.seed(seed)`` (default generator)."""
    s = int(seed) & _MASK32
    for _ in range(50):
        s = (_LCG_A * s + 1) & _MASK32
    words = []
    for _ in range(_N_MT + 1):
        s = (_LCG_A * s + 1) & _MASK32
        words.append(s)
    return np.array(words[1:], dtype=np.uint32)  # words[0] is the position, reset to 624


class RUniform:
    """R's ``unif_rand()`` stream after ``set.seed(seed)``, in blocks from NumPy's MT19937."""

    def __init__(self, seed):
        self._bits = np.random.MT19937()
        self._bits.state = {"bit_generator": "MT19937",
                            "state": {"key": r_set_seed_state(seed), "pos": _N_MT}}
        self._buffer = np.empty(0)
        self._at = 0

    def _refill(self, n):
        words = self._bits.random_raw(max(n, 1024)).astype(np.float64)
        # R's MT_genrand: word * 2.3283064365386963e-10, fixup keeps it in (0, 1)
        u = words * 2.3283064365386963e-10
        u[u <= 0.0] = 0.5 * _TWO_M32
        self._buffer = np.concatenate([self._buffer[self._at:], u])
        self._at = 0

    def take(self, n):
        """The next ``n`` uniforms."""
        if self._buffer.size - self._at < n:
            self._refill(n)
        out = self._buffer[self._at:self._at + n]
        self._at += n
        return out


def _unif_index(stream, n):
    """R's ``R_unif_index(n)``: uniform on ``0 … n−1`` by rejection from random bits."""
    if n <= 0:
        return 0
    bits = math.ceil(math.log2(n))
    chunks = bits // 16 + 1
    mask = (1 << bits) - 1
    while True:
        v = 0
        for u in stream.take(chunks):
            v = 65536 * v + int(math.floor(u * 65536))
        v &= mask
        if v < n:
            return v


def r_sample(n, size, seed):
    """``set.seed(seed); sample(n, size)`` (no replacement; ``n`` ≤ 10⁷, where R does not
    switch to its hashing sampler): the 1-based draws, as R returns them."""
    n, size = int(n), int(size)
    if not 0 <= size <= n:
        raise ValueError(f"cannot draw {size} of {n} values without replacement.")
    if n > 10_000_000:
        raise ValueError(f"n={n}: R samples more than 10^7 values by hashing, which this "
                         "does not reproduce.")
    stream = RUniform(seed)
    pool = np.arange(n)
    out = np.empty(size, dtype=np.int64)
    remaining = n
    for i in range(size):
        j = _unif_index(stream, remaining)
        out[i] = pool[j] + 1
        remaining -= 1
        pool[j] = pool[remaining]
    return out
