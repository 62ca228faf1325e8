# mgcv's `by =` smooths for tests/estimators/test_additive_by.py (issue 18):
# * tests/data/gamsim4.csv, written here: mgcv's gamSim(4) "by factor" data (n = 1,200,
#   set.seed(4); three levels of fac, each with its own smooth of x2), plus a grouping factor
#   g (30 levels, a random intercept of SD 0.5 added to y), a varying-coefficient response
#   yv = x1 * 2 sin(2 pi x2) + f(x0) + N(0, 0.5^2) and a 0/1 response yb; values rounded to 8
#   decimals and read back before fitting;
# * fits of y ~ fac + s(x2, by = fac) + s(x0) + s(g, bs = "re") (tp, mgcv's default), of
#   y ~ fac + s(x2, by = fac, bs = "cr") + s(x0, bs = "ps"), of the numeric by
#   yv ~ s(x2, by = x1) + s(x0) (and with bs = "cr"), of yb ~ fac + s(x2, by = fac, bs = "cr")
#   (binomial) and, on real data (metacognition.csv), of
#   confidence ~ sex + s(visibility, by = sex) + s(id, bs = "re"): gam(method = "REML") and
#   bam(discrete = TRUE); fitted values (every 4th row), edf per smooth, REML score, scale,
#   random-effect SD, summary's smooth table, parametric coefficients and predictions at
#   new rows; and on tests/data/by_binomial.csv (6,000 rows drawn in Python, numpy
#   default_rng(9): x uniform, f of 4 levels with probabilities .5/.3/.15/.05, a 0/1 yb whose
#   logit is sin(2 pi x), x^2, -x or cos(2 pi x) by level plus noise; x rounded to 8
#   decimals) the binomial yb ~ f + s(x, by = f, bs = "cr") by bam(discrete = TRUE) and
#   level c's nearly linear yb ~ s(x, bs = "cr") by gam (edf 1.42: a fit that stops at the
#   bound of its smoothing parameter gives 1.00). The "_tight" entries are the gam fits run to mgcv's exact optimum
#   (gam.control: conv.tol = 1e-12, epsilon = 1e-12): with its default tolerance gam stops
#   where the REML score is flat in a nearly linear smooth's smoothing parameter
#   (e.g. s(x0), edf 1.01 instead of 1.00), up to 1e-3 in edf and 7e-4 in the score away.
# Run from the repository root:
#     Rscript tests/reference/mgcv_by.R tests/reference
# Needs R with mgcv and jsonlite (Debian: r-cran-mgcv r-cran-jsonlite).
suppressMessages({library(mgcv); library(jsonlite)})
args <- commandArgs(TRUE)
outdir <- args[1]
datadir <- file.path(dirname(outdir), "data")

set.seed(4)
d <- gamSim(4, n = 1200, verbose = FALSE)
g <- sample(30, 1200, replace = TRUE)
d$y <- d$y + rnorm(30, 0, 0.5)[g]
d$g <- sprintf("g%02d", g)
d$yv <- d$x1 * 2 * sin(2 * pi * d$x2) + d$f1 / 2 + rnorm(1200, 0, 0.5)
d$yb <- rbinom(1200, 1, plogis((d$y - mean(d$y)) / 2))
d <- d[, c("y", "yv", "yb", "x0", "x1", "x2", "fac", "g")]
for (v in c("y", "yv", "x0", "x1", "x2")) d[[v]] <- round(d[[v]], 8)
write.csv(d, file.path(datadir, "gamsim4.csv"), row.names = FALSE)
d <- read.csv(file.path(datadir, "gamsim4.csv"))
d$fac <- factor(d$fac)
d$g <- factor(d$g)
bb <- read.csv(file.path(datadir, "by_binomial.csv"))
bb$f <- factor(bb$f)
meta <- read.csv(file.path(datadir, "metacognition.csv"))
meta$sex <- factor(meta$sex)
meta$id <- factor(meta$id)

fit_summary <- function(m, nd) {
  st <- summary(m)$s.table
  rows <- seq(1, length(m$y), by = 4)  # every 4th row (1-based)
  capture.output(vcomp <- gam.vcomp(m, rescale = FALSE))  # it prints
  edf <- sapply(m$smooth, function(s) sum(m$edf[s$first.para:s$last.para]))
  list(formula = paste(deparse(formula(m)), collapse = ""), method = m$method,
       coef_parametric = as.list(coef(m)[!grepl("^s\\(", names(coef(m)))]),
       edf = as.list(setNames(edf, sapply(m$smooth, function(s) s$label))),
       sp = as.list(m$sp), scale = m$sig2, reml_score = as.numeric(m$gcv.ubre),
       vcomp_sd = as.data.frame(vcomp[, 1, drop = FALSE]),
       s_table = list(term = rownames(st), edf = unname(st[, "edf"]),
                      ref_df = unname(st[, "Ref.df"]), stat = unname(st[, 3]),
                      p_value = unname(st[, 4])),
       fitted_rows = rows, fitted = as.numeric(fitted(m))[rows],
       new_data = nd, predicted = as.numeric(predict(m, nd, type = "response")),
       mgcv = as.character(packageVersion("mgcv")))
}

nd <- data.frame(x0 = c(0.1, 0.5, 0.9, 0.3, 0.7, 0.2), x1 = c(0.2, 0.9, 0.5, 0.1, 0.6, 0.8),
                 x2 = c(0.05, 0.35, 0.6, 0.95, 0.5, 0.15),
                 fac = factor(c(1, 2, 3, 1, 2, 3), levels = 1:3), g = factor("g01", levels(d$g)))
nm <- data.frame(visibility = c(10, 40, 80, 55), sex = factor(c("female", "male", "male",
                                                                 "female"), levels(meta$sex)),
                 id = factor("1", levels(meta$id)))
f_tp <- y ~ fac + s(x2, by = fac) + s(x0) + s(g, bs = "re")
f_cr <- y ~ fac + s(x2, by = fac, bs = "cr") + s(x0, bs = "ps")
f_num <- yv ~ s(x2, by = x1) + s(x0)
f_num_cr <- yv ~ s(x2, by = x1, bs = "cr") + s(x0, bs = "cr")
f_bin <- yb ~ fac + s(x2, by = fac, bs = "cr")
f_meta <- confidence ~ sex + s(visibility, by = sex) + s(id, bs = "re")
tight <- gam.control(epsilon = 1e-12, newton = list(conv.tol = 1e-12, maxHalf = 60),
                     outerPIsteps = 0)
out <- list(
  data = "gamsim4.csv", mgcv = as.character(packageVersion("mgcv")),
  gam_fac_tp = fit_summary(gam(f_tp, data = d, method = "REML"), nd),
  bam_fac_tp = fit_summary(bam(f_tp, data = d, discrete = TRUE, method = "fREML"), nd),
  gam_fac_cr = fit_summary(gam(f_cr, data = d, method = "REML"), nd),
  bam_fac_cr = fit_summary(bam(f_cr, data = d, discrete = TRUE, method = "fREML"), nd),
  gam_num_tp = fit_summary(gam(f_num, data = d, method = "REML"), nd),
  bam_num_tp = fit_summary(bam(f_num, data = d, discrete = TRUE, method = "fREML"), nd),
  gam_num_cr = fit_summary(gam(f_num_cr, data = d, method = "REML"), nd),
  gam_bin_cr = fit_summary(gam(f_bin, data = d, family = binomial, method = "REML"), nd),
  gam_fac_tp_tight = fit_summary(gam(f_tp, data = d, method = "REML", control = tight), nd),
  gam_fac_cr_tight = fit_summary(gam(f_cr, data = d, method = "REML", control = tight), nd),
  gam_num_tp_tight = fit_summary(gam(f_num, data = d, method = "REML", control = tight), nd),
  gam_num_cr_tight = fit_summary(gam(f_num_cr, data = d, method = "REML", control = tight),
                                 nd),
  gam_bin_cr_tight = fit_summary(gam(f_bin, data = d, family = binomial, method = "REML",
                                     control = tight), nd),
  bam_bin_by = fit_summary(bam(yb ~ f + s(x, by = f, bs = "cr"), data = bb,
                               family = binomial, discrete = TRUE, method = "fREML"),
                           data.frame(x = c(0.2, 0.7), f = factor(c("a", "c"), levels(bb$f)))),
  gam_bin_level_c = fit_summary(gam(yb ~ s(x, bs = "cr"), data = bb[bb$f == "c", ],
                                    family = binomial, method = "REML", control = tight),
                                data.frame(x = c(0.2, 0.7))),
  gam_meta = fit_summary(gam(f_meta, data = meta, method = "REML"), nm),
  bam_meta = fit_summary(bam(f_meta, data = meta, discrete = TRUE, method = "fREML"), nm))
write_json(out, file.path(outdir, "mgcv_by.json"), digits = NA, auto_unbox = TRUE)
