# mgcv's thin-plate smooth of two covariates, s(x, z), in an additive mixed model, for
# tests/estimators/test_additive_tp2.py (issue 18):
# * tests/data/gamsim2.csv, written here: mgcv's gamSim(2) bivariate data (n = 600,
#   set.seed(2), scale 0.1) with a 12-level grouping factor g (random intercepts, SD 0.3),
#   and tests/data/gamsim2_big.csv.gz: the same surface at 20,000 rows (set.seed(3)), more
#   distinct points than bam(discrete = TRUE)'s 100 × 100 grid; values rounded to 8 decimals
#   and read back before fitting;
# * y ~ s(x, z) + s(g, bs = "re") (mgcv's default k = 30) and y ~ s(x, z, k = 20) by
#   gam(method = "REML") (to its exact optimum) and bam(discrete = TRUE); y ~ s(x, z) by
#   bam(discrete = TRUE) on the 20,000 rows: fitted values (every 4th row; every 50th for
#   the large data), edf, REML score, SDs, the smooth table and the smooth at new points.
# Run from the repository root:
#     Rscript tests/reference/mgcv_tp2.R tests/reference
# Needs R with mgcv and jsonlite (Debian: r-cran-mgcv r-cran-jsonlite).
suppressMessages({library(mgcv); library(jsonlite)})
args <- commandArgs(TRUE)
outdir <- args[1]
datadir <- file.path(dirname(outdir), "data")

make <- function(n, seed, groups) {
  set.seed(seed)
  d <- gamSim(2, n = n, scale = 0.1, verbose = FALSE)$data
  g <- sample(groups, n, replace = TRUE)
  d$y <- d$y + rnorm(groups, 0, 0.3)[g]
  d$g <- sprintf("g%02d", g)
  d <- d[, c("y", "x", "z", "g")]
  for (v in c("y", "x", "z")) d[[v]] <- round(d[[v]], 8)
  d
}
write.csv(make(600, 2, 12), file.path(datadir, "gamsim2.csv"), row.names = FALSE)
big <- make(20000, 3, 12)
con <- gzfile(file.path(datadir, "gamsim2_big.csv.gz"), "w")
write.csv(big[, c("y", "x", "z")], con, row.names = FALSE)
close(con)
d <- read.csv(file.path(datadir, "gamsim2.csv"))
d$g <- factor(d$g)
big <- read.csv(file.path(datadir, "gamsim2_big.csv.gz"))
tight <- gam.control(epsilon = 1e-12, newton = list(conv.tol = 1e-12, maxHalf = 60),
                     outerPIsteps = 0)
nd <- data.frame(x = c(0.1, 0.5, 0.9, 0.3), z = c(0.2, 0.5, 0.8, 0.9), g = d$g[1])

fit_summary <- function(m, every) {
  st <- summary(m)$s.table
  rows <- seq(1, length(m$y), by = every)  # 1-based
  capture.output(vcomp <- gam.vcomp(m, rescale = FALSE))  # it prints
  edf <- sapply(m$smooth, function(s) sum(m$edf[s$first.para:s$last.para]))
  terms <- predict(m, nd, type = "terms")
  list(formula = paste(deparse(formula(m)), collapse = ""), method = m$method,
       edf = as.list(setNames(edf, sapply(m$smooth, function(s) s$label))),
       sp = as.list(m$sp), scale = m$sig2, reml_score = as.numeric(m$gcv.ubre),
       vcomp_sd = as.data.frame(vcomp[, 1, drop = FALSE]),
       s_table = list(term = rownames(st), edf = unname(st[, "edf"]),
                      ref_df = unname(st[, "Ref.df"]), stat = unname(st[, 3]),
                      p_value = unname(st[, 4])),
       fitted_rows = rows, fitted = as.numeric(fitted(m))[rows],
       new_data = nd[, c("x", "z")], terms_new = unname(terms[, "s(x,z)"]),
       mgcv = as.character(packageVersion("mgcv")))
}
f <- y ~ s(x, z) + s(g, bs = "re")
f20 <- y ~ s(x, z, k = 20) + s(g, bs = "re")
out <- list(
  mgcv = as.character(packageVersion("mgcv")),
  gam_tp2 = fit_summary(gam(f, data = d, method = "REML", control = tight), 4),
  bam_tp2 = fit_summary(bam(f, data = d, discrete = TRUE, method = "fREML"), 4),
  gam_tp2_k20 = fit_summary(gam(f20, data = d, method = "REML", control = tight), 4),
  bam_tp2_big = fit_summary(bam(y ~ s(x, z), data = big, discrete = TRUE, method = "fREML"),
                            50))
write_json(out, file.path(outdir, "mgcv_tp2.json"), digits = NA, auto_unbox = TRUE)
