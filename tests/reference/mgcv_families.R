# Additive mixed models of more families for tests/estimators/test_additive_families.py
# (the negative binomial's data, drawn with set.seed(2027), in tests/data/gamsim1_nb.csv):
# a Gamma (log link) response on the gamSim(1) data of tests/data/gamsim1.csv (the same
# covariates and groups as the Gaussian and binomial references), drawn here
# (set.seed(2026): shape 3, mean exp((y - mean(y)) / 4)) and written with the covariates
# to tests/data/gamsim1_gamma.csv; fitted by bam (performance iteration, the scale
# estimated by the working model's REML), binned (discrete = TRUE) and not, and by
# gam(method = "REML") (its Laplace REML: not what AdditiveMixed fits for Gamma; kept to
# show how far the two methods are apart).
# Run from the repository root:
#     Rscript tests/reference/mgcv_families.R tests/reference
# Needs R with mgcv and jsonlite (Debian: r-cran-mgcv r-cran-jsonlite).
suppressMessages({library(mgcv); library(jsonlite)})
args <- commandArgs(TRUE)
outdir <- args[1]
datadir <- file.path(dirname(outdir), "data")
gs <- read.csv(file.path(datadir, "gamsim1.csv"))
set.seed(2026)
gs$yg <- rgamma(nrow(gs), shape = 3, rate = 3 / exp((gs$y - mean(gs$y)) / 4))
d <- gs[, c("yg", "x0", "x1", "x2", "fac")]
write.csv(d, file.path(datadir, "gamsim1_gamma.csv"), row.names = FALSE)
# a negative binomial count (size 2, log mean (y - mean(y)) / 4 + 1) on the same rows
set.seed(2027)
gs$ynb <- rnbinom(nrow(gs), size = 2, mu = exp((gs$y - mean(gs$y)) / 4 + 1))
write.csv(gs[, c("ynb", "x0", "x1", "x2", "fac")], file.path(datadir, "gamsim1_nb.csv"),
          row.names = FALSE)
dn <- read.csv(file.path(datadir, "gamsim1_nb.csv"))
dn$fac <- factor(dn$fac)
d <- read.csv(file.path(datadir, "gamsim1_gamma.csv"))  # the test's values, as written
d$fac <- factor(d$fac)
summ <- function(fit, n_head = 20) {
  sm <- summary(fit)
  list(formula = paste(deparse(formula(fit)), collapse = " "),
       coef_parametric = as.list(coef(fit)[seq_len(sum(fit$nsdf))]),
       se_parametric = as.list(sm$se[seq_len(sum(fit$nsdf))]),
       edf = as.list(setNames(sm$edf, rownames(sm$s.table))),
       s_table = as.data.frame(sm$s.table),
       vcomp_sd = as.data.frame(gam.vcomp(fit, rescale = FALSE)[, 1, drop = FALSE]),
       sp = as.list(fit$sp), scale = fit$sig2, reml_score = as.numeric(fit$gcv.ubre),
       fitted_head = unname(fitted(fit)[1:n_head]),
       linear_predictor_head = unname(fit$linear.predictors[1:n_head]),
       theta = if (inherits(fit$family, "extended.family")) fit$family$getTheta(TRUE) else NULL,
       mgcv = as.character(packageVersion("mgcv")))
}
fn <- ynb ~ s(x0, bs = "ps") + s(x1, bs = "ps") + s(x2, bs = "ps") + s(fac, bs = "re")
f <- yg ~ s(x0, bs = "ps") + s(x1, bs = "ps") + s(x2, bs = "ps") + s(fac, bs = "re")
out <- list(
  bam_gamma_disc = summ(bam(f, data = d, family = Gamma(link = "log"), discrete = TRUE)),
  bam_gamma = summ(bam(f, data = d, family = Gamma(link = "log"))),
  gam_gamma_reml = summ(gam(f, data = d, family = Gamma(link = "log"), method = "REML")),
  bam_nb_disc = summ(bam(fn, data = dn, family = nb(), discrete = TRUE)),
  bam_nb = summ(bam(fn, data = dn, family = nb())))
write_json(out, file.path(outdir, "mgcv_families.json"), digits = NA, auto_unbox = TRUE,
           pretty = TRUE)
cat("ok\n")
