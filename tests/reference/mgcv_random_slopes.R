# Additive mixed models with independent random slopes (mgcv's s(g, x, bs = "re") beside
# s(g, bs = "re"); lme4's (1 + x || g)) for tests/estimators/test_additive_slopes.py.
#  * sleepstudy (tests/data/sleepstudy.csv): gam(method = "REML"), and lmer's
#    (Days || Subject) fit of the same model;
#  * the study's 200,000 rows (../shared/data/study_2e5.csv.gz) with a random slope of x added
#    to y_nl: per-group slope deviations drawn here (set.seed(2026), SD 0.3) and stored in the
#    JSON so the test rebuilds the same response; bam(discrete = TRUE), Gaussian, and
#    binomial with the 0/1 response (frac(1000 z) < plogis(eta)) — a deterministic
#    function of the data, rebuilt the same way by the test.
# Run from the repository root:
#     Rscript tests/reference/mgcv_random_slopes.R tests/reference
# Needs R with mgcv, lme4, jsonlite (Debian: r-cran-mgcv r-cran-lme4 r-cran-jsonlite).
suppressMessages({library(mgcv); library(lme4); library(jsonlite)})
args <- commandArgs(TRUE)
outdir <- args[1]
shared <- file.path(dirname(outdir), "..", "..", "shared", "data")  # the large study only
summ <- function(fit, n_head = 20) {
  sm <- summary(fit)
  list(formula = paste(deparse(formula(fit)), collapse = " "),
       coef_parametric = as.list(coef(fit)[seq_len(sum(fit$nsdf))]),
       se_parametric = as.list(sm$se[seq_len(sum(fit$nsdf))]),
       edf = as.list(setNames(sm$edf, rownames(sm$s.table))),
       # the SD of each random-effect smooth's coefficients on the data's scale (mgcv scales
       # the penalty of s(g, x, bs = "re") by S.scale; gam.vcomp does not undo it)
       sd = as.list(setNames(sqrt(fit$sig2 / fit$sp * sapply(fit$smooth, function(s)
         s$S.scale)), names(fit$sp))), sp = as.list(fit$sp), scale = fit$sig2,
       reml_score = as.numeric(fit$gcv.ubre), fitted_head = unname(fitted(fit)[1:n_head]))
}
ss <- read.csv(file.path(dirname(outdir), "data", "sleepstudy.csv"))
ss$Subject <- factor(ss$Subject)
g_ss <- gam(Reaction ~ Days + s(Subject, bs = "re") + s(Subject, Days, bs = "re"),
            data = ss, method = "REML")
l_ss <- lmer(Reaction ~ Days + (Days || Subject), data = ss, REML = TRUE)
vc <- as.data.frame(VarCorr(l_ss))
sleep <- c(summ(g_ss), list(lmer = list(fixef = as.list(fixef(l_ss)),
                                        sd = setNames(as.list(vc$sdcor), vc$var1),
                                        reml = as.numeric(REMLcrit(l_ss)))))
st <- read.csv(gzfile(file.path(shared, "study_2e5.csv.gz")))
G <- max(st$g)
set.seed(2026)
slope_dev <- rnorm(G, sd = 0.3)
st$y_rs <- st$y_nl + slope_dev[st$g] * st$x
st$g <- factor(st$g)
eta <- -0.2 + (0.5 + slope_dev[as.integer(st$g)]) * st$x + 0.25 * st$b + sin(2 * pi * st$z)
st$yb_rs <- as.integer((1000 * st$z) %% 1 < plogis(eta))
b_gau <- bam(y_rs ~ x + b + s(z, bs = "ps") + s(g, bs = "re") + s(g, x, bs = "re"), data = st,
             discrete = TRUE)
b_bin <- bam(yb_rs ~ x + b + s(z, bs = "ps") + s(g, bs = "re") + s(g, x, bs = "re"),
             data = st, family = binomial, discrete = TRUE)
out <- list(mgcv = as.character(packageVersion("mgcv")),
            lme4 = as.character(packageVersion("lme4")),
            sleepstudy_gam = sleep, study_slope_dev = slope_dev,
            study_bam_gau = summ(b_gau), study_bam_bin = summ(b_bin))
write_json(out, file.path(outdir, "mgcv_random_slopes.json"), digits = NA, auto_unbox = TRUE)
