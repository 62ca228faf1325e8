"""GLMM row passes specialized by code generation (see :mod:`.codegen` for the why).

The generic passes of :mod:`.glmm` loop over the fixed columns and random effects of each
row and test per row for trials, offset and weights; for the few columns of a typical model
that costs about as much as the exp/log of the row. For a given family, number of fixed
columns, random-effect columns and present arrays this module writes the passes out — every
sum a local variable, each column read from the caller's Fortran-ordered X — and compiles
the drivers of :mod:`.glmm` (the mode search, the Laplace and quadrature kernels) against
them: their source is taken from :mod:`.glmm` unchanged, so there is one implementation of
the algorithms and two of the row sums, tested against each other.

The generated module's name holds a digest of its source and of :mod:`.glmm`'s,
:mod:`.dense`'s, the families' row terms (:mod:`skmixed.families._kernel_terms`) and the
modules :mod:`.glmm` gathers (:func:`skmixed._cache.source_digest`), so a changed kernel
never reuses a stale compiled cache.
"""

import inspect

from .. import _cache as cache
from .. import families
from ..families import _kernel_terms
from . import agq, dense, glmm, glmm_rows, glmm_sums, laplace

__all__ = ["specialized_kernels", "SPECIALIZE_MIN_ROWS"]

# Below this many rows the generic kernels are fast enough and need no compilation.
SPECIALIZE_MIN_ROWS = 100_000

# The drivers compiled again against the generated passes.
_DRIVERS = ["_mode", "_refine_mode", "laplace_groups", "_agq_group", "agq_groups",
            "agq_grad_groups", "pirls_joint_sums"]
_LOADED = {}
# the modules whose kernels glmm gathers: their source is part of the generated code's
_KERNEL_MODULES = (glmm_rows, laplace, agq, glmm_sums)


def _header(p, family):
    """Common start of a generated pass: locals for β and the columns."""
    return ([f"    b{j} = beta[{j}]" for j in range(p)]
            + [f"    x{j} = X[:, {j}]" for j in range(p)]
            + [f"    fam = {family}"])


def _group_sums_header(p, q, family):
    """:func:`_header`, T u in locals and the sums every group pass has: Σ w ℓ, Σ w ℓ' z,
    C = Σ w v z z' (upper triangle)."""
    return (["    lower_matvec(T, u, Tu)", *_header(p, family)]
            + [f"    t{a} = Tu[{a}]" for a in range(q)]
            + ["    ll = 0.0"] + [f"    s{a} = 0.0" for a in range(q)]
            + [f"    c{a}_{b} = 0.0" for a in range(q) for b in range(a, q)])


def _row(p, zcol, has_m, has_off, has_fw, tu):
    """Lines computing ``eta``, ``z{a}``, ``wr``, ``mr`` for row r (indent 8); ``tu(a)`` is
    the name holding (T u)_a or the AGQ's scalar b."""
    lines = [f"        v{j} = x{j}[r]" for j in range(p)]
    terms = [f"v{j} * b{j}" for j in range(p)]
    if has_off:
        terms.insert(0, "off[r]")
    lines.append("        eta = " + (" + ".join(terms) if terms else "0.0"))
    for a, c in enumerate(zcol):
        lines.append(f"        z{a} = {'1.0' if c < 0 else f'v{c}'}")
        lines.append(f"        eta += z{a} * {tu(a)}")
    lines.append(f"        wr = {'fw[r]' if has_fw else '1.0'}")
    lines.append(f"        mr = {'m[r]' if has_m else '1.0'}")
    return lines


def _product_log(family, has_m, has_fw):
    """Rows of one trial without weights of a family whose ℓ has a term −log d with d in
    (1, 2] (:func:`skmixed.families.product_row_source`; the logit's ``log(1 + e^{−|η|})``):
    its sum as the log of running products (a multiply per row instead of a log1p, which
    costs more than the rest of the row together; 256 factors cannot overflow)."""
    return not has_m and not has_fw and families.product_row_source(family, "v") is not None


def _terms(family, has_m, has_fw, v="v"):
    """Lines (indent 8) setting ``l0, l1, <v>, vf, vf1`` of row r as
    :func:`skmixed.families.row_terms` does; with :func:`_product_log`, ``l0`` lacks
    ``−log d_``, which goes into the running product ``prod_`` (see :func:`_product_end`)."""
    if not _product_log(family, has_m, has_fw):
        return [f"        l0, l1, {v}, vf, vf1 = row_terms(fam, fpar, y[r], mr, eta)"]
    return families.product_row_source(family, v) + [
        "        prod_ *= d_",
        "        k_ += 1",
        "        if k_ == 256:",
        "            lsum_ += math.log(prod_)",
        "            prod_ = 1.0",
        "            k_ = 0"]


def _product_start(family, has_m, has_fw):
    if not _product_log(family, has_m, has_fw):
        return []
    return ["    prod_ = 1.0", "    lsum_ = 0.0", "    k_ = 0"]


def _product_end(family, has_m, has_fw):
    if not _product_log(family, has_m, has_fw):
        return []
    return ["    ll -= lsum_ + math.log(prod_)"]


def _group_pass_source(family, p, zcol, has_m, has_off, has_fw):
    q = len(zcol)
    c_pairs = [(a, b) for a in range(q) for b in range(a, q)]
    L = ["@cached_njit",
         "def _group_pass(family, fpar, X, zcol, y, m, off, fw, lo, hi, beta, T, u, z, Tu, want_c,",
         "                want_ll, sl_z, C):",
         *_group_sums_header(p, q, family), *_product_start(family, has_m, has_fw)]
    for want_c, want_ll in ((True, True), (True, False), (False, True)):
        L.append(f"    if want_c == {want_c} and want_ll == {want_ll}:")
        L.append("        for r in range(lo, hi):")
        body = _row(p, zcol, has_m, has_off, has_fw, lambda a: f"t{a}")
        if want_ll:
            body += _terms(family, has_m, has_fw)
            body.append("        ll += wr * l0")
        else:
            body.append("        l1, v = row_derivs(fam, fpar, y[r], mr, eta)")
        body.append("        wl1 = wr * l1")
        body += [f"        s{a} += wl1 * z{a}" for a in range(q)]
        if want_c:
            body.append("        wv = wr * v")
            body += [f"        c{a}_{b} += wv * z{a} * z{b}" for a, b in c_pairs]
        L += ["    " + line for line in body]
    L += [f"    sl_z[{a}] = s{a}" for a in range(q)]
    L.append("    if want_c:")
    L += [f"        C[{a}, {b}] = c{a}_{b}" for a, b in c_pairs]
    L += [f"        C[{b}, {a}] = c{a}_{b}" for a, b in c_pairs if a != b]
    L += _product_end(family, has_m, has_fw)
    L.append("    return ll")
    return L


def _laplace_pass_source(family, p, zcol, has_m, has_off, has_fw):
    q = len(zcol)
    fisher = not families.observed_logdet(family)
    pairs = [(a, b) for a in range(q) for b in range(a, q)]
    L = ["@cached_njit",
         "def _laplace_pass(family, fpar, X, zcol, y, m, off, fw, lo, hi, beta, T, u, want_grad, z,",
         "                  Tu, sl_z, C, CF, sl_x, wzx, v1zzx, v1zzz):",
         *_group_sums_header(p, q, family), *_product_start(family, has_m, has_fw),
         *([f"    f{a}_{b} = 0.0" for a, b in pairs] if fisher else []),
         *[f"    w{a}_{b}_{c} = 0.0" for a, b in pairs for c in range(q)],
         *[f"    sx{j} = 0.0" for j in range(p)],
         *[f"    zx{a}_{j} = 0.0" for a in range(q) for j in range(p)],
         *[f"    wx{a}_{b}_{j} = 0.0" for a, b in pairs for j in range(p)]]
    for grad in (True, False):
        L.append(f"    if want_grad == {grad}:")
        L.append("        for r in range(lo, hi):")
        body = _row(p, zcol, has_m, has_off, has_fw, lambda a: f"t{a}")
        body += _terms(family, has_m, has_fw)
        body += ["        ll += wr * l0",
                 "        wl1 = wr * l1",
                 "        wv = wr * v",
                 "        wv1 = wr * vf1"]
        body += [f"        s{a} += wl1 * z{a}" for a in range(q)]
        body += [f"        c{a}_{b} += wv * z{a} * z{b}" for a, b in pairs]
        if fisher:
            body.append("        wvf = wr * vf")
            body += [f"        f{a}_{b} += wvf * z{a} * z{b}" for a, b in pairs]
        for a, b in pairs:
            body.append(f"        t{a}{b} = wv1 * z{a} * z{b}")
            body += [f"        w{a}_{b}_{c} += t{a}{b} * z{c}" for c in range(q)]
            if grad:
                body += [f"        wx{a}_{b}_{j} += t{a}{b} * v{j}" for j in range(p)]
        if grad:
            body += [f"        sx{j} += wl1 * v{j}" for j in range(p)]
            for a in range(q):
                body.append(f"        wvz{a} = wv * z{a}")
                body += [f"        zx{a}_{j} += wvz{a} * v{j}" for j in range(p)]
        L += ["    " + line for line in body]
    L += [f"    sl_z[{a}] = s{a}" for a in range(q)]
    for a, b in pairs:
        for name, src in (("C", f"c{a}_{b}"), ("CF", f"f{a}_{b}" if fisher else f"c{a}_{b}")):
            L.append(f"    {name}[{a}, {b}] = {src}")
            if a != b:
                L.append(f"    {name}[{b}, {a}] = {src}")
        for c in range(q):
            L.append(f"    v1zzz[{a}, {b}, {c}] = w{a}_{b}_{c}")
            if a != b:
                L.append(f"    v1zzz[{b}, {a}, {c}] = w{a}_{b}_{c}")
    L.append("    if want_grad:")
    L += [f"        sl_x[{j}] = sx{j}" for j in range(p)]
    L += [f"        wzx[{a}, {j}] = zx{a}_{j}" for a in range(q) for j in range(p)]
    for a, b in pairs:
        for j in range(p):
            L.append(f"        v1zzx[{a}, {b}, {j}] = wx{a}_{b}_{j}")
            if a != b:
                L.append(f"        v1zzx[{b}, {a}, {j}] = wx{a}_{b}_{j}")
    L += _product_end(family, has_m, has_fw)
    L.append("    return ll")
    return L


def _agq_node_pass_source(family, p, zcol, has_m, has_off, has_fw):
    L = ["@cached_njit",
         "def _agq_node_pass(family, fpar, X, zcol, y, m, off, fw, lo, hi, beta, bz, sl_x):",
         *_header(p, family),
         "    ll = 0.0",
         "    slz = 0.0",
         *[f"    sx{j} = 0.0" for j in range(p)],
         *_product_start(family, has_m, has_fw),
         "    for r in range(lo, hi):"]
    body = _row(p, zcol, has_m, has_off, has_fw, lambda a: "bz")
    body += _terms(family, has_m, has_fw)
    body += ["        ll += wr * l0",
             "        wl1 = wr * l1",
             "        slz += wl1 * z0"]
    body += [f"        sx{j} += wl1 * v{j}" for j in range(p)]
    L += body
    L += [f"    sl_x[{j}] = sx{j}" for j in range(p)]
    L += _product_end(family, has_m, has_fw)
    L.append("    return ll, slz")
    return L


def _joint_pass_source(family, p, zcol, has_m, has_off, has_fw):
    q = len(zcol)
    c_pairs = [(a, b) for a in range(q) for b in range(a, q)]
    x_pairs = [(j, k) for j in range(p) for k in range(j, p)]
    L = ["@cached_njit",
         "def _joint_pass(family, fpar, X, zcol, y, m, off, fw, lo, hi, beta, Tu, z, slz, C, wzx, sc,",
         "                xvx):",
         *_header(p, family),
         *[f"    t{a} = Tu[{a}]" for a in range(q)],
         "    ll = 0.0",
         *[f"    s{a} = 0.0" for a in range(q)],
         *[f"    c{a}_{b} = 0.0" for a, b in c_pairs],
         *[f"    zx{a}_{j} = 0.0" for a in range(q) for j in range(p)],
         *[f"    sx{j} = 0.0" for j in range(p)],
         *[f"    xx{j}_{k} = 0.0" for j, k in x_pairs],
         *_product_start(family, has_m, has_fw),
         "    for r in range(lo, hi):"]
    body = _row(p, zcol, has_m, has_off, has_fw, lambda a: f"t{a}")
    body += _terms(family, has_m, has_fw, v="v0_")
    body += ["        ll += wr * l0",
             "        wl1 = wr * l1",
             "        wv = wr * vf"]
    body += [f"        s{a} += wl1 * z{a}" for a in range(q)]
    body += [f"        c{a}_{b} += wv * z{a} * z{b}" for a, b in c_pairs]
    body += [f"        zx{a}_{j} += wv * z{a} * v{j}" for a in range(q) for j in range(p)]
    body += [f"        sx{j} += wl1 * v{j}" for j in range(p)]
    body += [f"        xx{j}_{k} += wv * v{j} * v{k}" for j, k in x_pairs]
    L += body
    L += [f"    slz[{a}] = s{a}" for a in range(q)]
    L += [f"    C[{a}, {b}] = c{a}_{b}" for a, b in c_pairs]
    L += [f"    C[{b}, {a}] = c{a}_{b}" for a, b in c_pairs if a != b]
    L += [f"    wzx[{a}, {j}] = zx{a}_{j}" for a in range(q) for j in range(p)]
    L += [f"    sc[{j}] = sx{j}" for j in range(p)]
    L += [f"    xvx[{j}, {k}] = xx{j}_{k}" for j, k in x_pairs]
    L += _product_end(family, has_m, has_fw)
    L.append("    return ll")
    return L


def _source(family, p, zcol, has_m, has_off, has_fw):
    key = (family, p, zcol, has_m, has_off, has_fw)
    L = ['"""Generated by skmixed._kernels.glmm_codegen; do not edit."""',
         "import math",
         "import numpy as np",
         "from numba import prange",
         "from skmixed._kernels import glmm as _generic",
         "",
         "globals().update({k: v for k, v in vars(_generic).items() if not k.startswith('__')})",
         "", ""]
    L += _group_pass_source(*key) + ["", ""]
    L += _laplace_pass_source(*key) + ["", ""]
    L += _joint_pass_source(*key) + ["", ""]
    if len(zcol) == 1:
        L += _agq_node_pass_source(*key) + ["", ""]
    for name in _DRIVERS:
        L += [inspect.getsource(getattr(glmm, name)).rstrip("\n"), "", ""]
    return "\n".join(L)


def specialized_kernels(family, rows, weighted=False):
    """The generated module for this family and these rows' shape (its ``laplace_groups``,
    ``agq_groups``, ``agq_grad_groups`` and ``pirls_joint_sums`` take the arguments of
    :mod:`.glmm`'s). Its passes read the frequency weights if the rows have some or
    ``weighted`` (the caller passes weights of its own); else they ignore any."""
    key = (int(family), int(rows.X.shape[1]), tuple(int(c) for c in rows.zcol),
           rows.m.size > 0, rows.offset.size > 0, rows.weights.size > 0 or bool(weighted))
    module = _LOADED.get(key)
    if module is None:
        source = _source(*key)
        digest = cache.source_digest(source, glmm, *_KERNEL_MODULES, dense, _kernel_terms)
        name = (f"glmm_f{key[0]}_p{key[1]}_q{len(key[2])}_"
                f"{''.join(str(int(b)) for b in key[3:])}_{digest}")
        module = cache.load_generated(name, source)
        _LOADED[key] = module
    return module
