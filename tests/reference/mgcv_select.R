# mgcv's select = TRUE (a penalty on each smooth's null space too) for
# tests/estimators/test_additive_select.py (issue 18), on gamsim1.csv (x3 has no effect:
# select shrinks its smooth to edf ~0) and gamsim4.csv (written by mgcv_by.R):
# * y ~ s(x0, bs = "cr") + s(x1, bs = "ps") + s(x2, bs = "cr") + s(x3, bs = "cr") +
#   s(fac, bs = "re"): gam(method = "REML", select = TRUE) (to its exact optimum: gam.control
#   conv.tol = 1e-12) and bam(discrete = TRUE, select = TRUE);
# * the binomial yb ~ s(x0, bs = "cr") + s(x2, bs = "cr") + s(x3, bs = "cr"), gam (tight);
# * a numeric by (no centring constraint: a two-dimensional null space)
#   yv ~ s(x2, by = x1) + s(x0) with tp and with cr bases, gam (tight);
# * tests/data/select_tp.csv, written here (n = 500, set.seed(11): y = sin(2 pi x) +
#   0.5 cos(3 z) + 0.3 x [fac = b] + a random intercept of g (10 levels, SD 0.3) +
#   N(0, 0.3^2), b of no effect; yb a 0/1 response of half the terms and the intercepts),
#   y ~ s(x) + s(b) (tp) with select = TRUE, where a search from a common start ends at an
#   interior optimum with s(b) at edf 3.3 and the lower one removes s(b); and
#   yb ~ s(x, bs = "cr") + s(b, bs = "cr") + s(g, bs = "re") without select, binomial, where
#   s(x) is nearly linear (a search from tau = 1 ended at edf 1 for s(b)); gam (tight);
# each: fitted values (every 8th row), edf per smooth, REML score, sp (both penalties per
# smooth), SDs and summary's smooth table.
# Run from the repository root:
#     Rscript tests/reference/mgcv_select.R tests/reference
# Needs R with mgcv and jsonlite (Debian: r-cran-mgcv r-cran-jsonlite).
suppressMessages({library(mgcv); library(jsonlite)})
args <- commandArgs(TRUE)
outdir <- args[1]
datadir <- file.path(dirname(outdir), "data")
gs <- read.csv(file.path(datadir, "gamsim1.csv"))
gs$fac <- factor(gs$fac)
g4 <- read.csv(file.path(datadir, "gamsim4.csv"))
set.seed(11)  # the draws of a reviewer's data set, in this order
n <- 500
x <- runif(n); z <- runif(n); w <- runif(n); b <- runif(n)
fac <- factor(sample(c("a", "b", "c"), n, TRUE))
g <- factor(sprintf("g%02d", sample(1:10, n, TRUE)))
v <- rnorm(n)
f_st <- sin(2 * pi * x) + 0.5 * cos(3 * z) + 0.3 * (fac == "b") * x
ge <- rnorm(10, 0, .3)[as.integer(g)]
st <- data.frame(y = round(f_st + ge + rnorm(n, 0, .3), 8), x = round(x, 8),
                 b = round(b, 8), g = g)
st$yb <- rbinom(n, 1, plogis(0.5 * f_st + ge))
write.csv(st, file.path(datadir, "select_tp.csv"), row.names = FALSE)
st <- read.csv(file.path(datadir, "select_tp.csv"))
st$g <- factor(st$g)
tight <- gam.control(epsilon = 1e-12, newton = list(conv.tol = 1e-12, maxHalf = 60),
                     outerPIsteps = 0)

fit_summary <- function(m) {
  st <- summary(m)$s.table
  rows <- seq(1, length(m$y), by = 8)  # every 8th row (1-based)
  capture.output(vcomp <- gam.vcomp(m, rescale = FALSE))  # it prints
  edf <- sapply(m$smooth, function(s) sum(m$edf[s$first.para:s$last.para]))
  list(formula = paste(deparse(formula(m)), collapse = ""), method = m$method,
       edf = as.list(setNames(edf, sapply(m$smooth, function(s) s$label))),
       sp = as.list(m$sp), scale = m$sig2, reml_score = as.numeric(m$gcv.ubre),
       vcomp_sd = as.data.frame(vcomp[, 1, drop = FALSE]),
       s_table = list(term = rownames(st), edf = unname(st[, "edf"]),
                      ref_df = unname(st[, "Ref.df"]), stat = unname(st[, 3]),
                      p_value = unname(st[, 4])),
       fitted_rows = rows, fitted = as.numeric(fitted(m))[rows],
       mgcv = as.character(packageVersion("mgcv")))
}

f <- y ~ s(x0, bs = "cr") + s(x1, bs = "ps") + s(x2, bs = "cr") + s(x3, bs = "cr") +
  s(fac, bs = "re")
fb <- yb ~ s(x0, bs = "cr") + s(x2, bs = "cr") + s(x3, bs = "cr")
out <- list(
  mgcv = as.character(packageVersion("mgcv")),
  gam_select = fit_summary(gam(f, data = gs, method = "REML", select = TRUE,
                               control = tight)),
  bam_select = fit_summary(bam(f, data = gs, discrete = TRUE, method = "fREML",
                               select = TRUE)),
  gam_bin_select = fit_summary(gam(fb, data = gs, family = binomial, method = "REML",
                                   select = TRUE, control = tight)),
  gam_num_tp_select = fit_summary(gam(yv ~ s(x2, by = x1) + s(x0), data = g4,
                                      method = "REML", select = TRUE, control = tight)),
  gam_num_cr_select = fit_summary(gam(yv ~ s(x2, by = x1, bs = "cr") + s(x0, bs = "cr"),
                                      data = g4, method = "REML", select = TRUE,
                                      control = tight)),
  gam_tp_select_removes = fit_summary(gam(y ~ s(x) + s(b), data = st, method = "REML",
                                          select = TRUE, control = tight)),
  gam_bin_near_linear = fit_summary(gam(yb ~ s(x, bs = "cr") + s(b, bs = "cr") +
                                          s(g, bs = "re"), data = st, family = binomial,
                                        method = "REML", control = tight)))
write_json(out, file.path(outdir, "mgcv_select.json"), digits = NA, auto_unbox = TRUE)
