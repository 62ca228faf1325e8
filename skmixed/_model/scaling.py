"""Internal centring and scaling of the fixed-effect columns.

Every fit works on ``x̃_j = (x_j − c_j) / s_j`` instead of the user's column ``x_j``, so that
a column shifted by 1e6 or multiplied by 1e12 is as well conditioned as a standardized one:
the Gram matrix ``X̃'WX̃`` has no cancellation, the rank check sees the columns' real
dependence, and Newton/quasi-Newton steps over β see comparable curvatures.

* ``c_j`` is the mean of a strided sample of at most ``SAMPLE_ROWS`` rows — any value near
  the mean removes the cancellation — and is used only with an intercept, and only for
  columns without a random slope: shifting a random-slope column changes what the random
  intercept means (and, for lme4's ``||``, the model itself).
* ``s_j`` is the sample's spread about ``c_j`` (its root mean square deviation; 1 for a
  column constant in the sample); for a random-slope column, the power of ten nearest its
  root mean square about 0 (so that a slope column in a usual unit is used as it is).
  Computed from the data, the internal columns are the same — to rounding — whatever the
  user's origin and unit: a fit on ``x + 1e6`` or on ``x · 1e-12`` is the fit on ``x``,
  optimizer path included, mapped back.

With the intercept first, ``η = X̃ β̃ = X β`` for ``β = A β̃``, where ``A`` is the identity
but for ``A[j, j] = 1 / s_j`` and ``A[0, j] = −c_j / s_j``; so ``cov(β) = A cov(β̃) Aᵀ``.

A random slope on a scaled column is a random slope on ``x / s_j``: its random effect is
``s_j`` times the user's. With ``d = (1, 1/s_j…)`` over a term's random effects (intercept
first), the relative covariance factor is ``T = diag(d) T̃`` — still lower triangular, so
each θ entry ``T[a, b]`` is ``d_a θ̃``; the modes are ``d ∘ b̃`` and their conditional
variances ``d² ∘ v``. Only scaling, never centring, keeps every covariance structure
(unstructured or lme4's ``||``) the same model.

ML and Laplace criteria do not depend on the parametrization of β. REML's
``log |X'V⁻¹X|`` does: on the scaled columns it is lower by ``2 Σ log s_j`` (over the kept
columns), which `ColumnScaling.reml_offset` returns for the caller to add back.
"""

from dataclasses import dataclass

import numpy as np

__all__ = ["ColumnScaling", "SAMPLE_ROWS", "weighted_gram"]

SAMPLE_ROWS = 4096


def _spread_scale(spread):
    """The scale of a column of this spread (1 for a zero or non-finite spread)."""
    return float(spread) if np.isfinite(spread) and spread > 0 else 1.0


def _slope_scale(rms):
    """The scale of a random-slope column of this root mean square: its power of ten
    (1 for a zero or non-finite one). A column in a usual unit is then used as it is — its
    fit, optimizer path included, is the one without scaling — and ``x · 10^k`` gets the
    same internal column as ``x``, to rounding."""
    if not (np.isfinite(rms) and rms > 0):
        return 1.0
    return float(10.0 ** np.round(np.log10(rms)))


@dataclass(frozen=True)
class ColumnScaling:
    """Centres ``c`` and scales ``s`` of the fixed-effect columns (not the
    intercept), and the map of the estimates back to the user's columns."""

    center: np.ndarray
    scale: np.ndarray
    intercept: bool

    @classmethod
    def from_columns(cls, columns, *, intercept, slope_pos=()):
        """From the columns (1-D arrays; a strided sample of each is read). Columns at
        ``slope_pos`` carry a random slope: scaled, not centred."""
        center, scale = np.zeros(len(columns)), np.ones(len(columns))
        slopes = {int(j) for j in slope_pos}
        for j, col in enumerate(columns):
            n = len(col)
            sample = np.asarray(col[::max(1, n // SAMPLE_ROWS)], dtype=np.float64)
            if sample.size == 0:
                continue
            c = float(np.mean(sample)) if intercept and j not in slopes else 0.0
            center[j] = c
            spread = float(np.sqrt(np.mean((sample - c) ** 2)))
            scale[j] = _slope_scale(spread) if j in slopes else _spread_scale(spread)
        return cls(center, scale, bool(intercept))

    @classmethod
    def from_centred_sums(cls, center, weight_sum, sums, sums_of_squares, *, intercept,
                          slope_pos=()):
        """Scales from a row pass's sums of ``w (x − c)`` and ``w (x − c)²`` (the centres
        ``c`` it subtracted); for paths that never hold the rows. Random-slope columns
        (``slope_pos``, centre 0) get the power of ten of their root mean square."""
        center = np.asarray(center, dtype=np.float64)
        mean = np.asarray(sums, dtype=np.float64) / weight_sum
        slope = np.zeros(center.size, dtype=bool)
        slope[np.asarray(slope_pos, dtype=np.int64)] = True
        var = np.maximum(np.asarray(sums_of_squares, dtype=np.float64) / weight_sum
                         - np.where(bool(intercept) & ~slope, mean * mean, 0.0), 0.0)
        scale = np.array([_slope_scale(v) if sl else _spread_scale(v)
                          for v, sl in zip(np.sqrt(var), slope)])
        return cls(center.copy(), scale, bool(intercept))

    def subset(self, columns):
        """The scaling of the fixed columns at positions ``columns`` only."""
        columns = np.asarray(columns, dtype=np.int64)
        return type(self)(self.center[columns], self.scale[columns], self.intercept)

    @property
    def is_identity(self):
        return not (np.any(self.center) or np.any(self.scale != 1.0))

    def transform(self, X, first=0):
        """Centre and scale, in place, the float64 block ``X`` whose columns ``first…`` are
        the fixed columns in order (column 0 may be the intercept: ``first=1``)."""
        for j in range(self.center.size):
            c, s = self.center[j], self.scale[j]
            if c != 0.0:
                X[:, first + j] -= c
            if s != 1.0:
                X[:, first + j] /= s
        return X

    def values(self, col, j):
        """Column j of the user's data on the internal scale (a new float64 array)."""
        out = np.asarray(col, dtype=np.float64) - self.center[j]
        if self.scale[j] != 1.0:
            out /= self.scale[j]
        return out

    def matrix(self, kept=None):
        """``A`` with ``β = A β̃`` over the full coefficient vector (intercept first when
        there is one), restricted to the ``kept`` positions (dropped columns have β = 0)."""
        off = int(self.intercept)
        P = off + self.center.size
        A = np.eye(P)
        for j in range(self.center.size):
            A[off + j, off + j] = 1.0 / self.scale[j]
            if off:
                A[0, off + j] = -self.center[j] / self.scale[j]
        if kept is not None:
            kept = np.asarray(kept, dtype=np.int64)
            A = A[np.ix_(kept, kept)]
        return A

    def to_original(self, beta, cov, kept=None):
        """(β, cov β) of the internal columns mapped back to the user's columns."""
        if self.is_identity:
            return np.asarray(beta, dtype=float), np.asarray(cov, dtype=float)
        A = self.matrix(kept)
        return A @ beta, A @ cov @ A.T

    def slope_factors(self, slope_pos):
        """``d = (1, 1/s_j…)`` over a term's random effects (intercept first; ``slope_pos``:
        its slopes' fixed-column positions): θ, modes and conditional SDs are ``d`` times
        the internal ones (module docstring)."""
        return np.concatenate([[1.0], 1.0 / self.scale[np.asarray(slope_pos, dtype=np.int64)]])

    def term_to_original(self, slope_pos, term_rows, theta, modes=None, cond_var=None):
        """θ (entries ``T[term_rows, ·]``), the modes (G, q) and their conditional variances
        of the internal random slopes on the user's columns (None stays None)."""
        d = self.slope_factors(slope_pos)
        theta = np.asarray(theta, dtype=float) * d[np.asarray(term_rows, dtype=np.int64)]
        if modes is not None:
            modes = np.asarray(modes, dtype=float) * d
        if cond_var is not None:
            cond_var = np.asarray(cond_var, dtype=float) * d * d
        return theta, modes, cond_var

    def reml_offset(self, kept=None):
        """What to add to a REML criterion computed on the internal columns to get the
        user's: ``2 Σ log s_j`` over the kept fixed columns."""
        off = int(self.intercept)
        log_s = np.concatenate([np.zeros(off), np.log(self.scale)])
        if kept is not None:
            log_s = log_s[np.asarray(kept, dtype=np.int64)]
        return 2.0 * float(np.sum(log_s))


def weighted_gram(X, w, rows=65_536):
    """``X' diag(w) X`` over blocks of ``rows`` rows: no n × p temporary (whose first
    touch costs more than the product on a big X)."""
    out = np.zeros((X.shape[1], X.shape[1]))
    for a in range(0, X.shape[0], rows):
        part = X[a:a + rows]
        out += (part * w[a:a + rows, None]).T @ part
    return out
