# select = TRUE with a tensor product of two pure-noise covariates, for
# tests/estimators/test_additive_select.py (issue 18): tests/data/select_te.csv (1,500 rows drawn
# in Python, numpy default_rng(1): x, z, u1, u2 uniform, y = sin(2 pi x) + exp(z) + N(0, 0.3^2);
# u1 and u2 have no effect; rounded to 8 decimals — a hostile review's data, where a search
# left te(u1, u2)'s margins at the bound of their smoothing parameters, REML 318.7232 against
# mgcv's 318.6431). gam(y ~ s(x) + s(z) + ti(x, z) + te(u1, u2), select = TRUE,
# method = "REML") with mgcv's default control and run to its exact optimum (tight): REML score,
# edf, sp, fitted values (every 4th row).
# Run from the repository root:
#     Rscript tests/reference/mgcv_select_te.R tests/reference
suppressMessages({library(mgcv); library(jsonlite)})
args <- commandArgs(TRUE)
outdir <- args[1]
d <- read.csv(file.path(dirname(outdir), "data", "select_te.csv"))
tight <- gam.control(epsilon = 1e-12, newton = list(conv.tol = 1e-12, maxHalf = 60),
                     outerPIsteps = 0)
summ <- function(m) {
  rows <- seq(1, nrow(d), by = 4)
  list(reml_score = as.numeric(m$gcv.ubre), sp = as.list(m$sp),
       edf = as.list(setNames(sapply(m$smooth, function(s)
         sum(m$edf[s$first.para:s$last.para])), sapply(m$smooth, function(s) s$label))),
       fitted_rows = rows, fitted = as.numeric(fitted(m))[rows])
}
f <- y ~ s(x) + s(z) + ti(x, z) + te(u1, u2)
out <- list(data = "select_te.csv", mgcv = as.character(packageVersion("mgcv")),
            gam = summ(gam(f, data = d, method = "REML", select = TRUE)),
            gam_tight = summ(gam(f, data = d, method = "REML", select = TRUE,
                                 control = tight)))
write_json(out, file.path(outdir, "mgcv_select_te.json"), digits = NA, auto_unbox = TRUE)
