# A noisy smooth (y = sin(6x) + 4 N(0, 1), 1,000 rows, tests/data/noisy_smooth.csv, drawn in
# Python with numpy's default_rng(0) and rounded to 8 decimals) for
# tests/estimators/test_additive_bases.py: gam(y ~ s(x, bs = b), method = "REML") per basis
# — where a REML search from log tau = 0 alone jumped to the lower bound (edf 1 or 0).
# Run from the repository root:
#     Rscript tests/reference/mgcv_noisy_smooth.R tests/reference
# Needs R with mgcv and jsonlite.
suppressMessages({library(mgcv); library(jsonlite)})
args <- commandArgs(TRUE)
outdir <- args[1]
d <- read.csv(file.path(dirname(outdir), "data", "noisy_smooth.csv"))
fit <- function(bs) {
  m <- gam(y ~ s(x, bs = bs), data = d, method = "REML")
  list(edf = sum(m$edf[-1]), reml_score = as.numeric(m$gcv.ubre), scale = m$sig2,
       fitted_head = unname(fitted(m)[1:20]))
}
out <- lapply(setNames(nm = c("ps", "cr", "cc", "tp")), fit)
out$mgcv <- as.character(packageVersion("mgcv"))
write_json(out, file.path(outdir, "mgcv_noisy_smooth.json"), digits = NA, auto_unbox = TRUE,
           pretty = TRUE)
cat("ok\n")
