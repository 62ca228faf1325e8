# Factor-smooth interactions s(x, f, bs = "fs") in mgcv for tests/estimators/test_additive_fs.py
# (issue 18).
#
# mgcv's fs smooth penalizes each null-space column of its base smooth (for tp, cr or ps: the
# constant and the linear function) across the factor's levels with a smoothing parameter of
# its own, in a basis that nat.param takes from the eigenvectors of a matrix whose null-space
# eigenvalues are rounding noise: the basis, so the model, changes with the last bits of x
# (x + 1e-13 * rnorm(n) moved the REML score by up to 0.17 and fitted values by 4e-4 in a
# test). skmixed fixes that basis to the constant 1 and (x - mean(x)) / sd(x) (orthonormal
# over the data, each of mean square 1, as mgcv scales them): a per-level random intercept
# and centred slope. "fsc" below is mgcv's own fs constructor with only that basis set; every
# fit is mgcv's. mgcv's unmodified fs fit is recorded too (fs_mgcv_*: its REML score, for the
# docs' comparison).
#
# * tests/data/fs_sim.csv, written here (set.seed(181)): n = 3,000 rows, factor f with 12
#   levels, x ~ U(0, 1), z ~ U(0, 1); per level a random intercept (SD 0.5), slope (SD 0.8) and
#   wiggle 0.4 sin(2 pi x + phase); y = sin(2 pi x) + 0.5 z + level curve + N(0, 0.3^2) and a
#   0/1 yb with logit sin(2 pi x) + level curve; values rounded to 8 decimals and read back;
# * gam(method = "REML", tight) of y ~ s(x, f, bs = "fs") (tp base, k = 10), of
#   y ~ z + s(x, f, bs = "fs", xt = "cr", k = 8), of y ~ s(x) + s(x, f, bs = "fs", k = 5)
#   (a common curve and the levels' departures), of y ~ s(x, f, bs = "fs", k = 5) + s(z) (the
#   fs test's rank beside another smooth), of the binomial yb ~ s(x, f, bs = "fs"), and
#   bam(discrete = TRUE) of the first on 20,000 rows drawn the same way (fs_big.csv.gz);
# * real data: lme4's sleepstudy, Reaction ~ s(Days, Subject, bs = "fs", k = 5) (gam, tight).
# Run from the repository root:
#     Rscript tests/reference/mgcv_fs.R tests/reference
# Needs R with mgcv and jsonlite (Debian: r-cran-mgcv r-cran-jsonlite).
suppressMessages({library(mgcv); library(jsonlite)})
args <- commandArgs(TRUE)
outdir <- args[1]
datadir <- file.path(dirname(outdir), "data")

smooth.construct.fsc.smooth.spec <- function(object, data, knots) {
  class(object) <- c("fs.smooth.spec", setdiff(class(object), "fsc.smooth.spec"))
  sm <- smooth.construct(object, data, knots)
  r <- sm$base$rank
  k <- ncol(sm$Xb)
  ind <- (r + 1):k
  x <- data[[sm$base$term]]
  s <- sqrt(mean((x - mean(x))^2))
  A <- qr.coef(qr(sm$Xb[, ind]), cbind(1, (x - mean(x)) / s))  # orthogonal (2 x 2)
  sm$P[, ind] <- sm$P[, ind] %*% A
  sm$Xb[, ind] <- sm$Xb[, ind] %*% A
  X <- matrix(0, nrow(sm$Xb), k * length(sm$flev))
  for (i in seq_along(sm$flev))
    X[, (i - 1) * k + 1:k] <- sm$Xb * as.numeric(sm$fac == sm$flev[i])
  sm$X <- X
  if (!is.null(sm$margin)) {  # bam(discrete = TRUE): the smooth's margin
    sm$margin[[2]]$P <- sm$P
    sm$margin[[2]]$X <- sm$Xb
  }
  sm
}

simulate <- function(n, G) {
  f <- sample(G, n, replace = TRUE)
  x <- runif(n)
  z <- runif(n)
  a <- rnorm(G, 0, 0.5)
  b <- rnorm(G, 0, 0.8)
  ph <- runif(G, 0, 2 * pi)
  curve <- a[f] + b[f] * (x - 0.5) + 0.4 * sin(2 * pi * x + ph[f])
  eta <- sin(2 * pi * x) + curve
  d <- data.frame(y = eta + 0.5 * z + rnorm(n, 0, 0.3), yb = rbinom(n, 1, plogis(eta)),
                  x = x, z = z, f = sprintf("L%02d", f))
  for (v in c("y", "x", "z")) d[[v]] <- round(d[[v]], 8)
  d
}
set.seed(181)
write.csv(simulate(3000, 12), file.path(datadir, "fs_sim.csv"), row.names = FALSE)
big <- gzfile(file.path(datadir, "fs_big.csv.gz"), "w")
write.csv(simulate(20000, 12), big, row.names = FALSE)
close(big)
d <- read.csv(file.path(datadir, "fs_sim.csv"))
d$f <- factor(d$f)
dbig <- read.csv(file.path(datadir, "fs_big.csv.gz"))
dbig$f <- factor(dbig$f)
sleep <- read.csv(file.path(datadir, "sleepstudy.csv"))
sleep$Subject <- factor(sleep$Subject)

summ <- function(m, nd) {
  st <- summary(m)$s.table
  rows <- seq(1, length(m$y), by = 4)  # every 4th row (1-based)
  edf <- sapply(m$smooth, function(s) sum(m$edf[s$first.para:s$last.para]))
  list(formula = paste(deparse(formula(m)), collapse = ""), method = m$method,
       coef_parametric = as.list(coef(m)[!grepl("^s\\(", names(coef(m)))]),
       edf = as.list(setNames(edf, sapply(m$smooth, function(s) s$label))),
       edf_total = sum(m$edf), sp = as.list(m$sp), scale = m$sig2,
       reml_score = as.numeric(m$gcv.ubre),
       s_table = list(term = rownames(st), edf = unname(st[, "edf"]),
                      ref_df = unname(st[, "Ref.df"]), stat = unname(st[, 3]),
                      p_value = unname(st[, 4])),
       fitted_rows = rows, fitted = as.numeric(fitted(m))[rows],
       new_data = nd, predicted = as.numeric(predict(m, nd, type = "response")),
       se_fit = as.numeric(predict(m, nd, se.fit = TRUE)$se.fit),
       mgcv = as.character(packageVersion("mgcv")))
}
tight <- gam.control(epsilon = 1e-12, newton = list(conv.tol = 1e-12, maxHalf = 60),
                     outerPIsteps = 0)
nd <- data.frame(x = c(0.05, 0.5, 0.93), z = c(0.2, 0.5, 0.7),
                 f = factor(c("L01", "L07", "L12"), levels(d$f)))
ns <- data.frame(Days = c(0, 4.5, 9), Subject = factor(c("308", "335", "372"),
                                                      levels(sleep$Subject)))
f1 <- y ~ s(x, f, bs = "fsc")
out <- list(
  data = "fs_sim.csv", mgcv = as.character(packageVersion("mgcv")),
  gam_fs_tp = summ(gam(f1, data = d, method = "REML", control = tight), nd),
  gam_fs_cr = summ(gam(y ~ z + s(x, f, bs = "fsc", xt = "cr", k = 8), data = d,
                       method = "REML", control = tight), nd),
  gam_fs_main = summ(gam(y ~ s(x) + s(x, f, bs = "fsc", k = 5), data = d, method = "REML",
                         control = tight), nd),
  gam_fs_plus_z = summ(gam(y ~ s(x, f, bs = "fsc", k = 5) + s(z), data = d, method = "REML",
                           control = tight), nd),
  gam_fs_binomial = summ(gam(yb ~ s(x, f, bs = "fsc"), data = d, family = binomial,
                             method = "REML", control = tight), nd),
  bam_fs_big = summ(bam(f1, data = dbig, discrete = TRUE, method = "fREML"), nd),
  gam_fs_sleep = summ(gam(Reaction ~ s(Days, Subject, bs = "fsc", k = 5), data = sleep,
                          method = "REML", control = tight), ns),
  fs_mgcv_tp_reml = gam(y ~ s(x, f, bs = "fs"), data = d, method = "REML",
                        control = tight)$gcv.ubre,
  fs_mgcv_sleep_reml = gam(Reaction ~ s(Days, Subject, bs = "fs", k = 5), data = sleep,
                           method = "REML", control = tight)$gcv.ubre)
write_json(out, file.path(outdir, "mgcv_fs.json"), digits = NA, auto_unbox = TRUE)
