# mgcv's "ps" (P-spline) smooth basis for tests/model/test_smooth.py: the design matrix
# before and after the sum-to-zero constraint, the penalty, and the knots, from
# smoothCon() on the gamsim1 data (tests/data/gamsim1.csv, made by
# tests/reference/make_ref.R). Run from the repository root:
#     Rscript tests/reference/mgcv_ps_basis.R tests/reference
# Needs R with mgcv and jsonlite (Debian: r-cran-mgcv r-cran-jsonlite).
suppressMessages({library(mgcv); library(jsonlite)})
args <- commandArgs(TRUE)
outdir <- args[1]
data <- read.csv(file.path(dirname(outdir), "data", "gamsim1.csv"))
basis <- function(term, k, m) {
  spec <- eval(parse(text = sprintf('s(%s, bs = "ps", k = %d, m = c(%d, %d))', term, k,
                                    m[1], m[2])))
  raw <- smoothCon(spec, data = data, absorb.cons = FALSE, scale.penalty = FALSE)[[1]]
  con <- smoothCon(spec, data = data, absorb.cons = TRUE, scale.penalty = FALSE)[[1]]
  list(term = term, k = k, m = m, knots = raw$knots, X = unname(raw$X[1:50, ]),
       S = unname(raw$S[[1]]), X_constrained = unname(con$X[1:50, ]),
       S_constrained = unname(con$S[[1]]), rank = raw$rank,
       null_space_dim = raw$null.space.dim)
}
out <- list(data = "gamsim1.csv", rows = 50, mgcv = as.character(packageVersion("mgcv")),
            x0_k10 = basis("x0", 10, c(2, 2)), x2_k20 = basis("x2", 20, c(2, 2)),
            x1_k8_m13 = basis("x1", 8, c(1, 3)))
write_json(out, file.path(outdir, "mgcv_ps_basis.json"), digits = NA, auto_unbox = TRUE)
