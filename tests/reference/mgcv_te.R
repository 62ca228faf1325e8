# mgcv's tensor-product smooths, te() and ti(), in additive (mixed) models, for
# tests/estimators/test_additive_te.py (issue 18). It writes tests/data/te_cyclic.csv and
# reads the rest:
# * tests/data/gamsim2.csv (mgcv_tp2.R's gamSim(2) surface, 600 rows, 12-level factor g):
#   y ~ te(x, z) + s(g, bs = "re") (mgcv's default cr margins, k = 5 each) by
#   gam(method = "REML") (to its exact optimum) and bam(discrete = TRUE);
#   te(x, z, k = c(6, 4), bs = c("tp", "cr")) and te(x, z, bs = c("ps", "cc"), k = c(6, 5)) by
#   gam; y ~ s(x) + s(z) + ti(x, z) + s(g, bs = "re") by gam and bam discrete; fitted values
#   at every 4th row;
# * tests/data/gamsim2_big.csv.gz (20,000 rows): y ~ te(x, z) by bam(discrete = TRUE) (every
#   50th row);
# * tests/data/gamsim1.csv: y ~ te(x0, x1, x2, k = c(4, 4, 4)) + s(x3) and the binomial
#   yb ~ te(x1, x2) + s(fac, bs = "re") by gam (every 8th row);
# * tests/data/metacognition.csv: confidence ~ te(visibility, trial) + s(id, bs = "re") by gam
#   and bam discrete (every 10th row);
# * tests/data/te_cyclic.csv (written here, set.seed(5): hours 2 to 20 of a 24-hour cycle):
#   y ~ te(x, hour, bs = c("cr", "cc")) by gam, with knots = list(hour = c(0, 24)) and
#   without (every 5th row);
# * tests/data/te_poisson.csv (1,000 rows drawn in Python, numpy default_rng(103): a, b
#   uniform, yp Poisson with log mean (0.3 sin(4a) b + 0.5 cos(3b)) / 2, after 1,000 unused
#   normal draws): yp ~ te(a, b), Poisson, by gam (every 10th row);
# * tests/data/gamsim4.csv (mgcv_by.R's): y ~ fac + te(x0, x2, by = fac) + s(g, bs = "re") by
#   gam and bam discrete, yv ~ te(x0, x2, by = x1) (numeric by) by gam (every 6th row);
# * select = TRUE (each tensor product's null space penalized too): gamsim2's
#   y ~ te(x, z) + s(g, bs = "re") and gamsim1's y ~ te(x0, x3) + s(x2) (x3 has no effect)
#   by gam.
# Each entry: edf, sp, scale, REML score, SDs, the smooth table, fitted values, the te/ti
# terms at new points and the coefficients. "te_basis": smoothCon(te(x, z)) of gamsim2.csv
# (margins' knots, reparameterisation and penalties, the first rows of the basis and the
# penalties, before and after the constraint is absorbed).
# Run from the repository root:
#     Rscript tests/reference/mgcv_te.R tests/reference
# Needs R with mgcv and jsonlite (Debian: r-cran-mgcv r-cran-jsonlite).
suppressMessages({library(mgcv); library(jsonlite)})
args <- commandArgs(TRUE)
outdir <- args[1]
datadir <- file.path(dirname(outdir), "data")

d <- read.csv(file.path(datadir, "gamsim2.csv"))
d$g <- factor(d$g)
big <- read.csv(file.path(datadir, "gamsim2_big.csv.gz"))
g1 <- read.csv(file.path(datadir, "gamsim1.csv"))
g1$fac <- factor(g1$fac)
meta <- read.csv(file.path(datadir, "metacognition.csv"))
meta$id <- factor(meta$id)
tight <- gam.control(epsilon = 1e-12, newton = list(conv.tol = 1e-12, maxHalf = 60),
                     outerPIsteps = 0)
nd2 <- data.frame(x = c(0.1, 0.5, 0.9, 0.3), z = c(0.2, 0.5, 0.8, 0.9), g = d$g[1])
nd3 <- data.frame(x0 = c(0.1, 0.5, 0.9, 0.3), x1 = c(0.2, 0.5, 0.8, 0.9),
                  x2 = c(0.7, 0.4, 0.1, 0.5), x3 = c(0.5, 0.5, 0.5, 0.5))
ndb <- data.frame(x1 = c(0.1, 0.5, 0.9, 0.3), x2 = c(0.2, 0.5, 0.8, 0.9), fac = g1$fac[1])
ndm <- data.frame(visibility = c(10, 50, 90, 30), trial = c(5, 20, 35, 40), id = meta$id[1])

# a cyclic margin whose data do not span its cycle (hours 2 to 20 of 0 to 24), written here
set.seed(5)
cyc <- data.frame(x = round(runif(500), 8), hour = round(runif(500, 2, 20), 8))
cyc$y <- round(sin(2 * pi * cyc$hour / 24) * (1 + cyc$x) + rnorm(500, 0, 0.3), 8)
write.csv(cyc, file.path(datadir, "te_cyclic.csv"), row.names = FALSE)
cyc <- read.csv(file.path(datadir, "te_cyclic.csv"))
ndc <- data.frame(x = c(0.1, 0.5, 0.9, 0.3), hour = c(3, 8, 15, 19.5))
# a Poisson surface (1,000 rows drawn in Python: numpy default_rng(103), see README.md)
pois <- read.csv(file.path(datadir, "te_poisson.csv"))
ndp <- data.frame(a = c(0.1, 0.5, 0.9, 0.3), b = c(0.2, 0.5, 0.8, 0.9))

# mgcv_by.R's gamSim(4) "by factor" data with a random intercept g
g4 <- read.csv(file.path(datadir, "gamsim4.csv"))
g4$fac <- factor(g4$fac)
g4$g <- factor(g4$g)
nd4 <- data.frame(x0 = c(0.1, 0.5, 0.9, 0.3), x2 = c(0.2, 0.5, 0.8, 0.9),
                  x1 = c(0.5, 0.5, 0.5, 0.5), fac = factor(1:3, levels = 1:3)[c(1, 2, 3, 1)],
                  g = g4$g[1])

fit_summary <- function(m, every, nd) {
  st <- summary(m)$s.table
  rows <- seq(1, length(m$y), by = every)  # 1-based
  capture.output(vcomp <- gam.vcomp(m, rescale = FALSE))  # it prints
  labels <- sapply(m$smooth, function(s) s$label)
  edf <- sapply(m$smooth, function(s) sum(m$edf[s$first.para:s$last.para]))
  terms <- predict(m, nd, type = "terms")
  tlab <- labels[grepl("^t[ei]\\(", labels)]
  list(formula = paste(deparse(formula(m)), collapse = ""), method = m$method,
       edf = as.list(setNames(edf, labels)),
       sp = as.list(m$sp), scale = m$sig2, reml_score = as.numeric(m$gcv.ubre),
       vcomp_sd = as.data.frame(vcomp[, 1, drop = FALSE]),
       s_table = list(term = rownames(st), edf = unname(st[, "edf"]),
                      ref_df = unname(st[, "Ref.df"]), stat = unname(st[, 3]),
                      p_value = unname(st[, 4])),
       fitted_rows = rows, fitted = as.numeric(fitted(m))[rows],
       new_data = nd[, !sapply(nd, is.factor), drop = FALSE],
       terms_new = lapply(setNames(tlab, tlab), function(l) unname(terms[, l])),
       coef_names = names(m$coefficients), coefficients = unname(m$coefficients),
       mgcv = as.character(packageVersion("mgcv")))
}

te_basis <- function() {
  sm0 <- smoothCon(te(x, z), data = d, absorb.cons = FALSE)[[1]]
  sm1 <- smoothCon(te(x, z), data = d, absorb.cons = TRUE)[[1]]
  margin <- lapply(sm0$margin, function(mg) c(list(  # XP: only for a reparameterised margin
    term = mg$term, class = class(mg)[1], bs_dim = mg$bs.dim,
    knots = if (!is.null(mg$xp)) unname(mg$xp) else unname(mg$knots),
    S = unname(mg$S[[1]])), if (!is.null(mg$XP)) list(XP = mg$XP)))
  list(call = "smoothCon(te(x, z), data = gamsim2)", label = sm0$label,
       np = sm0$np, margin = margin,
       unconstrained = list(dim = dim(sm0$X), X_head = sm0$X[1:5, ], C = sm0$C,
                            S = lapply(sm0$S, unname), S_scale = sm0$S.scale),
       constrained = list(dim = dim(sm1$X), X_head = sm1$X[1:5, ],
                          S_dims = lapply(sm1$S, dim), S = lapply(sm1$S, unname)))
}

f <- y ~ te(x, z) + s(g, bs = "re")
fk <- y ~ te(x, z, k = c(6, 4), bs = c("tp", "cr")) + s(g, bs = "re")
fpc <- y ~ te(x, z, bs = c("ps", "cc"), k = c(6, 5)) + s(g, bs = "re")
fti <- y ~ s(x) + s(z) + ti(x, z) + s(g, bs = "re")
fm <- confidence ~ te(visibility, trial) + s(id, bs = "re")
out <- list(
  mgcv = as.character(packageVersion("mgcv")),
  gam_te = fit_summary(gam(f, data = d, method = "REML", control = tight), 4, nd2),
  bam_te = fit_summary(bam(f, data = d, discrete = TRUE, method = "fREML"), 4, nd2),
  gam_te_k = fit_summary(gam(fk, data = d, method = "REML", control = tight), 4, nd2),
  gam_te_ps_cc = fit_summary(gam(fpc, data = d, method = "REML", control = tight), 4, nd2),
  gam_ti = fit_summary(gam(fti, data = d, method = "REML", control = tight), 4, nd2),
  bam_ti = fit_summary(bam(fti, data = d, discrete = TRUE, method = "fREML"), 4, nd2),
  gam_te3 = fit_summary(gam(y ~ te(x0, x1, x2, k = c(4, 4, 4)) + s(x3), data = g1,
                            method = "REML", control = tight), 8, nd3),
  bam_te_big = fit_summary(bam(y ~ te(x, z), data = big, discrete = TRUE, method = "fREML"),
                           50, nd2[, c("x", "z")]),
  gam_te_binomial = fit_summary(gam(yb ~ te(x1, x2) + s(fac, bs = "re"), family = binomial,
                                    data = g1, method = "REML", control = tight), 8, ndb),
  meta_te_gam = fit_summary(gam(fm, data = meta, method = "REML", control = tight), 10, ndm),
  meta_te_bam = fit_summary(bam(fm, data = meta, discrete = TRUE, method = "fREML"), 10, ndm),
  gam_te_cc_knots = fit_summary(gam(y ~ te(x, hour, bs = c("cr", "cc")), data = cyc,
                                    knots = list(hour = c(0, 24)), method = "REML",
                                    control = tight), 5, ndc),
  gam_te_cc = fit_summary(gam(y ~ te(x, hour, bs = c("cr", "cc")), data = cyc,
                              method = "REML", control = tight), 5, ndc),
  gam_te_poisson = fit_summary(gam(yp ~ te(a, b), family = poisson, data = pois,
                                   method = "REML", control = tight), 10, ndp),
  gam_te_by = fit_summary(gam(y ~ fac + te(x0, x2, by = fac) + s(g, bs = "re"), data = g4,
                              method = "REML", control = tight), 6, nd4),
  bam_te_by = fit_summary(bam(y ~ fac + te(x0, x2, by = fac) + s(g, bs = "re"), data = g4,
                              discrete = TRUE, method = "fREML"), 6, nd4),
  gam_te_by_num = fit_summary(gam(yv ~ te(x0, x2, by = x1), data = g4, method = "REML",
                                  control = tight), 6, nd4),
  gam_te_select = fit_summary(gam(f, data = d, method = "REML", select = TRUE,
                                  control = tight), 4, nd2),
  gam_te_select_x3 = fit_summary(gam(y ~ te(x0, x3) + s(x2), data = g1, method = "REML",
                                     select = TRUE, control = tight), 8, nd3),
  te_basis = te_basis())
write_json(out, file.path(outdir, "mgcv_te.json"), digits = NA, auto_unbox = TRUE)
