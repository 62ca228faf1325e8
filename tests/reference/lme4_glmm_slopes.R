# References for several-factor GLMMs with a random slope, for
# tests/estimators/test_mixedglm_multilevel.py::test_random_slope_glmms_against_r, on
# tests/data/glmm_slopes.csv (3,000 simulated rows, 60 levels of g1 crossed with 30 of g2,
# x rounded to 4 decimals so that R and Python read the same numbers; written by
# benchmarks/test_bench_peers.py::_general_path_data):
#   binomial   glmer(y ~ x + (1 + x | g1) + (1 | g2), family = binomial)      correlated slope
#   poisson    glmer(c ~ x + (1 + x || g1) + (1 | g2), family = poisson)      uncorrelated slope
#   probit     glmer(y ~ x + (1 + x | g1) + (1 | g2), family = binomial(link = "probit"))
#   cloglog    glmer(y ~ x + (1 + x | g1) + (1 | g2), family = binomial(link = "cloglog"))
#              (without the slope lme4 stops with max|grad| 0.016 and SEs of 0.005: no
#              reference)
#   nbinom2    glmmTMB(c ~ x + (1 | g1) + (1 | g2), family = nbinom2)         with the size k
#              (with a slope on g1 glmmTMB reports singular convergence: the counts have none)
# Laplace (nAGQ = 1), each package's default optimizer. Each entry: the call, -2 logLik
# (m2ll), fixef, se (lme4: from its finite-difference Hessian), the random-effect SDs and
# correlation per factor, theta (lme4) or the size k (glmmTMB), and the conditional modes and
# SDs of g1's first 10 levels (R's level order), the fit's seconds and package versions.
# Run from the repository root:
#     Rscript tests/reference/lme4_glmm_slopes.R tests/data tests/reference
# Needs R with lme4, glmmTMB and jsonlite (Debian: r-cran-lme4 r-cran-glmmtmb r-cran-jsonlite).
suppressMessages({library(lme4); library(glmmTMB); library(jsonlite)})
args <- commandArgs(TRUE)
d <- read.csv(file.path(args[1], "glmm_slopes.csv"), stringsAsFactors = TRUE)

sd_cor <- function(vc) {
  lapply(vc, function(m) list(sd = unname(attr(m, "stddev")),
                              cor = if (ncol(m) > 1) attr(m, "correlation")[2, 1] else NULL))
}
modes <- function(re) {
  # the conditional modes and SDs of g1's first 10 levels (every term), as records
  df <- as.data.frame(re)
  df <- df[df$grpvar %in% c("g1", "g1.1") & df$grp %in% levels(d$g1)[1:10], ]
  data.frame(term = as.character(df$term), level = as.character(df$grp),
             mode = df$condval, cond_sd = df$condsd)
}
lme4_entry <- function(call) {
  t0 <- Sys.time()
  fit <- eval(parse(text = call))
  secs <- as.numeric(Sys.time() - t0, units = "secs")
  vc <- VarCorr(fit)
  list(call = call, m2ll = -2 * as.numeric(logLik(fit)), theta = unname(getME(fit, "theta")),
       fixef = as.list(fixef(fit)), se = as.list(sqrt(diag(as.matrix(vcov(fit))))),
       re = if ("g1.1" %in% names(vc)) {
         list(g1 = list(sd = c(attr(vc$g1, "stddev"), attr(vc$g1.1, "stddev")), cor = 0),
              g2 = list(sd = unname(attr(vc$g2, "stddev"))))
       } else sd_cor(vc),
       g1 = modes(ranef(fit, condVar = TRUE)), seconds = secs, conv = fit@optinfo$conv$opt,
       messages = paste(fit@optinfo$conv$lme4$messages, collapse = "; "))
}
out <- list(
  lme4 = as.character(packageVersion("lme4")),
  glmmTMB = as.character(packageVersion("glmmTMB")),
  binomial = lme4_entry("glmer(y ~ x + (1 + x | g1) + (1 | g2), d, family = binomial)"),
  poisson = lme4_entry("glmer(c ~ x + (1 + x || g1) + (1 | g2), d, family = poisson)"),
  probit = lme4_entry(
    "glmer(y ~ x + (1 + x | g1) + (1 | g2), d, family = binomial(link = 'probit'))"),
  cloglog = lme4_entry(
    "glmer(y ~ x + (1 + x | g1) + (1 | g2), d, family = binomial(link = 'cloglog'))"))
t0 <- Sys.time()
nb <- glmmTMB(c ~ x + (1 | g1) + (1 | g2), d, family = nbinom2)
secs <- as.numeric(Sys.time() - t0, units = "secs")
out$nbinom2 <- list(
  call = "glmmTMB(c ~ x + (1 | g1) + (1 | g2), d, family = nbinom2)",
  m2ll = -2 * as.numeric(logLik(nb)), fixef = as.list(fixef(nb)$cond),
  se = as.list(sqrt(diag(vcov(nb)$cond))), size = sigma(nb), re = sd_cor(VarCorr(nb)$cond),
  g1 = modes(ranef(nb, condVar = TRUE)), seconds = secs,
  pdHess = nb$sdr$pdHess)
write_json(out, file.path(args[2], "lme4_glmm_slopes.json"), digits = NA, auto_unbox = TRUE,
           null = "null", na = "null")
