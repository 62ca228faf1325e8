# Additive mixed models of the Tweedie family for tests/estimators/test_additive_families.py
# (issue 18): a Tweedie (log link) response on the gamSim(1) data of tests/data/gamsim1.csv
# (the same covariates and groups as the Gaussian, binomial, Gamma and negative binomial
# references), drawn here (set.seed(2028): mgcv's rTweedie with mean exp((y - mean(y)) / 4),
# power p = 1.5, dispersion phi = 1.2; about a fifth of the values are exact zeros), rounded
# to 8 decimals and written with the covariates to tests/data/gamsim1_tweedie.csv; fitted by
# bam (performance iteration) with the power fixed (Tweedie(p = 1.5), binned and not;
# Tweedie(p = 1.2), binned; tw(theta = 1.5), binned) and estimated (tw(), binned and not),
# and by gam(tw(), method = "REML"). With p fixed through tw(theta = 1.5), mgcv 1.8-41's bam
# keeps the scale at 1 (sig2 = 1, the same fit as Tweedie(p = 1.5) with scale = 1), unlike
# gam(tw(theta = 1.5)); for bam with tw, gam.vcomp gives no scale row (and warns while
# making its intervals, which are not kept). The scale is well above the 1.2 drawn: the
# gamSim noise in y is part of the log mean and not in the model. Also mgcv's ldTweedie log
# density at a few points
# (p = 1.2, 1.5, 1.8; phi = 1.2), to check a Tweedie log density implementation; and
# Tweedie(p = 1.5) by bam (binned and not) of the same data with y set to 0 wherever x0 < 0.2.
# Run from the repository root:
#     Rscript tests/reference/mgcv_tweedie.R tests/reference
# Needs R with mgcv and jsonlite (Debian: r-cran-mgcv r-cran-jsonlite).
suppressMessages({library(mgcv); library(jsonlite)})
args <- commandArgs(TRUE)
outdir <- args[1]
datadir <- file.path(dirname(outdir), "data")
gs <- read.csv(file.path(datadir, "gamsim1.csv"))
set.seed(2028)
gs$yt <- round(rTweedie(exp((gs$y - mean(gs$y)) / 4), p = 1.5, phi = 1.2), 8)
write.csv(gs[, c("yt", "x0", "x1", "x2", "fac")], file.path(datadir, "gamsim1_tweedie.csv"),
          row.names = FALSE)
d <- read.csv(file.path(datadir, "gamsim1_tweedie.csv"))  # the test's values, as written
d$fac <- factor(d$fac)
summ <- function(fit, n_head = 20, every = 10) {
  sm <- summary(fit)
  rows <- seq(1, nrow(fit$model), by = every)
  list(formula = paste(deparse(formula(fit)), collapse = " "),
       family_name = fit$family$family,
       coef_parametric = as.list(coef(fit)[seq_len(sum(fit$nsdf))]),
       se_parametric = as.list(sm$se[seq_len(sum(fit$nsdf))]),
       edf = as.list(setNames(sm$edf, rownames(sm$s.table))),
       s_table = as.data.frame(sm$s.table),
       vcomp_sd = as.data.frame(gam.vcomp(fit, rescale = FALSE)[, 1, drop = FALSE]),
       sp = as.list(fit$sp), scale = fit$sig2, reml_score = as.numeric(fit$gcv.ubre),
       fitted_head = unname(fitted(fit)[1:n_head]),
       linear_predictor_head = unname(fit$linear.predictors[1:n_head]),
       fitted_rows = rows,
       fitted = unname(fitted(fit)[rows]),
       theta = if (inherits(fit$family, "extended.family")) fit$family$getTheta(TRUE) else NULL,
       mgcv = as.character(packageVersion("mgcv")))
}
f <- yt ~ s(x0, bs = "ps") + s(x1, bs = "ps") + s(x2, bs = "ps") + s(fac, bs = "re")
ld <- function(p, phi = 1.2, y = c(0, 0.1, 1, 2.5, 10), mu = c(0.5, 1, 1, 3, 8))
  list(p = p, phi = phi, y = y, mu = mu, logd = unname(ldTweedie(y, mu, p = p, phi = phi)[, 1]))
# y = 0 wherever x0 < 0.2: the fitted means there run towards 0 (η far below −30)
dz <- d
dz$yt[dz$x0 < 0.2] <- 0
out <- list(
  zero_share = mean(d$yt == 0),
  bam_tweedie_disc = summ(bam(f, data = d, family = Tweedie(p = 1.5, link = "log"),
                              discrete = TRUE)),
  bam_tweedie = summ(bam(f, data = d, family = Tweedie(p = 1.5, link = "log"))),
  bam_tweedie_p12_disc = summ(bam(f, data = d, family = Tweedie(p = 1.2, link = "log"),
                                  discrete = TRUE)),
  bam_tw_disc = summ(bam(f, data = d, family = tw(), discrete = TRUE)),
  bam_tw = summ(bam(f, data = d, family = tw())),
  bam_tw_fixed = summ(bam(f, data = d, family = tw(theta = 1.5), discrete = TRUE)),
  gam_tw_reml = summ(gam(f, data = d, family = tw(), method = "REML")),
  bam_tweedie_zero_region = summ(bam(f, data = dz, family = Tweedie(p = 1.5, link = "log"))),
  bam_tweedie_zero_region_disc = summ(bam(f, data = dz, family = Tweedie(p = 1.5, link = "log"),
                                          discrete = TRUE)),
  ld_tweedie = list(ld(1.5), ld(1.2), ld(1.8)))
write_json(out, file.path(outdir, "mgcv_tweedie.json"), digits = NA, auto_unbox = TRUE,
           pretty = TRUE)
cat("ok\n")
