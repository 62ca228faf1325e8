# mgcv's "cr" (cubic regression spline) and "cc" (cyclic cubic) smooth bases for
# tests/model/test_smooth_bases.py and tests/estimators/test_additive_bases.py (issue 18), on
# the gamsim1 data (tests/data/gamsim1.csv, made by tests/reference/make_ref.R):
# * bases: smoothCon()'s knots, design matrix (first 50 rows) and penalty without the
#   constraint, the constrained penalty's eigenvalues, and Predict.matrix at new points
#   inside and outside the data's range (cr: linear beyond the end knots; cc: wrapped);
# * fits of y ~ s(x0, bs = "cr") + s(x1, bs = "cc") + s(x2, bs = "cr") + s(fac, bs = "re")
#   (and with the cc's ends given, knots = list(x1 = c(-0.05, 1.05))) by
#   gam(method = "REML") and bam(discrete = TRUE, method = "fREML"): fitted values (every 8th row),
#   edf per smooth, REML score, scale, random-effect SD, summary's smooth table and the
#   smooths' values at new points (predict type = "terms"); and the same model of the 0/1
#   response yb (binomial, logit) by gam(method = "REML") and bam(discrete = TRUE); and
#   y (and yb) ~ s(x0, bs = "cr") + s(x2, bs = "cr") + s(x3, bs = "cc") + s(fac, bs = "re")
#   by gam(method = "REML"): x3 has no effect, so its cyclic smooth's test (mgcv's
#   random-effect test) has a p-value away from 0.
# Run from the repository root:
#     Rscript tests/reference/mgcv_bases.R tests/reference
# Needs R with mgcv and jsonlite (Debian: r-cran-mgcv r-cran-jsonlite).
suppressMessages({library(mgcv); library(jsonlite)})
args <- commandArgs(TRUE)
outdir <- args[1]
gs <- read.csv(file.path(dirname(outdir), "data", "gamsim1.csv"))
gs$fac <- factor(gs$fac)
new_x <- c(-0.3, -0.02, 0, 0.001, 0.25, 0.5, 0.77, 0.999, 1, 1.04, 1.3)

basis <- function(term, bs, k, knots = NULL) {
  spec <- eval(parse(text = sprintf('s(%s, bs = "%s", k = %d)', term, bs, k)))
  kn <- if (is.null(knots)) NULL else setNames(list(knots), term)
  raw <- smoothCon(spec, data = gs, knots = kn, absorb.cons = FALSE,
                   scale.penalty = FALSE)[[1]]
  con <- smoothCon(spec, data = gs, knots = kn, absorb.cons = TRUE,
                   scale.penalty = FALSE)[[1]]
  nd <- setNames(data.frame(new_x), term)
  list(term = term, bs = bs, k = k, ends = knots, knots = raw$xp,
       X = unname(raw$X[1:50, ]), S = unname(raw$S[[1]]),
       S_constrained_eigen = eigen(con$S[[1]], symmetric = TRUE, only.values = TRUE)$values,
       X_constrained = unname(con$X[1:50, ]), new_x = new_x,
       X_new = unname(Predict.matrix(raw, nd)), rank = raw$rank,
       null_space_dim = raw$null.space.dim)
}

fit_summary <- function(m) {
  st <- summary(m)$s.table
  rows <- seq(1, length(m$y), by = 8)  # every 8th row (1-based), to keep the file small
  capture.output(vcomp <- gam.vcomp(m, rescale = FALSE))  # it prints
  edf <- sapply(m$smooth, function(s) sum(m$edf[s$first.para:s$last.para]))
  nd <- data.frame(x0 = new_x, x1 = new_x, x2 = new_x, x3 = new_x, fac = gs$fac[1])
  terms <- predict(m, nd, type = "terms")
  labels <- setdiff(sapply(m$smooth, function(s) s$label), "s(fac)")
  list(formula = paste(deparse(formula(m)), collapse = ""), method = m$method,
       coef_parametric = as.list(coef(m)[!grepl("^s\\(", names(coef(m)))]),
       edf = as.list(setNames(edf, sapply(m$smooth, function(s) s$label))),
       sp = as.list(m$sp), scale = m$sig2, reml_score = as.numeric(m$gcv.ubre),
       vcomp_sd = as.data.frame(vcomp[, 1, drop = FALSE]),
       s_table = list(term = rownames(st), edf = unname(st[, "edf"]),
                      ref_df = unname(st[, "Ref.df"]), stat = unname(st[, 3]),
                      p_value = unname(st[, 4])),
       fitted_rows = rows, fitted = as.numeric(fitted(m))[rows], new_x = new_x,
       terms_new = lapply(setNames(nm = labels), function(t) unname(terms[, t])),
       mgcv = as.character(packageVersion("mgcv")))
}

f <- y ~ s(x0, bs = "cr") + s(x1, bs = "cc") + s(x2, bs = "cr") + s(fac, bs = "re")
fb <- update(f, yb ~ .)
# x3 has no effect in gamSim(1): a cyclic smooth with a p-value away from 0
f0 <- y ~ s(x0, bs = "cr") + s(x2, bs = "cr") + s(x3, bs = "cc") + s(fac, bs = "re")
ends <- list(x1 = c(-0.05, 1.05))
out <- list(
  data = "gamsim1.csv", rows = 50, mgcv = as.character(packageVersion("mgcv")),
  cr_x0_k10 = basis("x0", "cr", 10), cr_x2_k5 = basis("x2", "cr", 5),
  cc_x1_k10 = basis("x1", "cc", 10), cc_x1_k6_ends = basis("x1", "cc", 6, c(-0.05, 1.05)),
  gam_reml = fit_summary(gam(f, data = gs, method = "REML")),
  bam_disc = fit_summary(bam(f, data = gs, discrete = TRUE, method = "fREML")),
  gam_reml_ends = fit_summary(gam(f, data = gs, method = "REML", knots = ends)),
  bam_disc_ends = fit_summary(bam(f, data = gs, discrete = TRUE, method = "fREML",
                                  knots = ends)),
  gam_bin_reml = fit_summary(gam(fb, data = gs, family = binomial, method = "REML")),
  bam_bin_disc = fit_summary(bam(fb, data = gs, family = binomial, discrete = TRUE,
                                 method = "fREML")),
  gam_null_cc = fit_summary(gam(f0, data = gs, method = "REML")),
  gam_bin_null_cc = fit_summary(gam(update(f0, yb ~ .), data = gs, family = binomial,
                                    method = "REML")))
write_json(out, file.path(outdir, "mgcv_bases.json"), digits = NA, auto_unbox = TRUE)
