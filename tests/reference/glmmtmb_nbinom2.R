# glmmTMB reference for the negative binomial GLMM (NB2, log link; issue 14 item 5).
# glmmTMB's family = nbinom2 has Var(y) = mu + mu^2 / theta; glmmTMB maximizes TMB's Laplace
# approximation of the marginal likelihood over (beta, log theta, log random-effect SDs)
# (REML = FALSE, the default). For nbinom2 glmmTMB's sigma(model) IS the NB "size" theta (not
# a variance or an overdispersion 1/theta): it is stored as `theta_size`, and its log as
# `log_theta_size` (glmmTMB's dispersion-model intercept, betad).
# Data: glmmTMB's Salamanders (644 rows: 23 sites x 7 species x 4 samples), written by this
# script to tests/data/salamanders.csv with all columns; site and spp as their labels, mined
# as "yes"/"no". R's level order is mined = c("yes", "no"): the reference level is "yes", so
# the slope is `minedno` (in Python, give mined the categories ["yes", "no"]).
# Models (entries of the JSON):
#   nb2_site      count ~ mined + (1 | site)
#   nb2_site_spp  count ~ mined + (1 | site) + (1 | spp)   (crossed: 23 sites x 7 species)
#   lme4_glmer_nb lme4's glmer.nb(count ~ mined + (1 | site)), a cross-check of nb2_site only.
#     glmer.nb alternates a glmer fit at fixed theta with a 1-D optimization of theta (its own
#     tolerances), and, more importantly, maximizes a different Laplace approximation: glmer's
#     log-determinant uses the expected (Fisher) working weights theta mu / (theta + mu), while
#     TMB uses the exact Hessian theta (y + theta) mu / (theta + mu)^2; they differ because the
#     log link is not NB2's canonical link. So glmer.nb's intercept is ~1 % off glmmTMB's and its
#     logLik (of its own criterion) is 0.05 higher; theta and the SD agree to ~3e-4. glmmTMB is
#     the reference; glmer.nb only confirms the parametrization (theta = glmer.nb.theta).
# Each glmmTMB entry has: formula, nobs, fixef (named), se and vcov (fixed effects, from TMB's
# sdreport), theta_size, log_theta_size, re_sd (per factor), logLik, AIC, BIC, df (number of
# parameters), ranef (conditional modes `condval` and their SDs `condsd` per factor and level,
# glmmTMB's ranef(condVar = TRUE)), convergence (optimizer code and message, pdHess, warnings),
# fit_seconds (2-core reference machine) and package versions. `nb2_loglik` states the
# per-row log density that logLik is built from (the full density, lgamma(y + 1) included).
# Run from the repository root:
#     Rscript tests/reference/glmmtmb_nbinom2.R tests/reference tests/data
# Needs R with glmmTMB, lme4 and jsonlite (Debian: r-cran-glmmtmb r-cran-lme4 r-cran-jsonlite).
suppressMessages({library(glmmTMB); library(lme4); library(jsonlite)})
args <- commandArgs(TRUE)
outdir <- args[1]
datadir <- if (length(args) > 1) args[2] else "tests/data"

sal <- Salamanders
csv <- sal
csv$site <- as.character(csv$site)
csv$spp <- as.character(csv$spp)
csv$mined <- as.character(csv$mined)
write.csv(csv, file.path(datadir, "salamanders.csv"), row.names = FALSE)

# Fit, keeping any warning in the entry (a clean fit has none).
fit_quiet <- function(expr) {
  warns <- character(0)
  secs <- system.time(value <- withCallingHandlers(expr, warning = function(w) {
    warns <<- c(warns, conditionMessage(w)); invokeRestart("muffleWarning")
  }))
  list(value = value, warnings = warns, secs = unname(secs["elapsed"]))
}

tmb_entry <- function(form) {
  f <- fit_quiet(glmmTMB(form, data = sal, family = nbinom2))
  model <- f$value
  re <- as.data.frame(ranef(model, condVar = TRUE))
  re$grp <- as.character(re$grp)
  vc <- VarCorr(model)$cond
  ranef_by <- lapply(split(re, re$grpvar), function(d) {
    list(level = d$grp, term = as.character(d$term), condval = d$condval, condsd = d$condsd)
  })
  ll <- logLik(model)
  list(formula = paste(deparse(form), collapse = " "), family = "nbinom2(link = \"log\")",
       nobs = nobs(model), fixef = as.list(fixef(model)$cond),
       se = as.list(sqrt(diag(vcov(model)$cond))), vcov = unname(vcov(model)$cond),
       theta_size = sigma(model), log_theta_size = unname(log(sigma(model))),
       re_sd = lapply(vc, function(v) unname(attr(v, "stddev"))),
       logLik = as.numeric(ll), AIC = AIC(model), BIC = BIC(model), df = attr(ll, "df"),
       ranef = ranef_by,
       convergence = list(code = model$fit$convergence, message = model$fit$message,
                          pdHess = model$sdr$pdHess, warnings = f$warnings),
       fit_seconds = f$secs)
}

m_a <- tmb_entry(count ~ mined + (1 | site))
m_b <- tmb_entry(count ~ mined + (1 | site) + (1 | spp))

g <- fit_quiet(glmer.nb(count ~ mined + (1 | site), data = sal))
gnb <- g$value
lme4_nb <- list(formula = "glmer.nb(count ~ mined + (1 | site), data = Salamanders)",
                nobs = nobs(gnb), fixef = as.list(fixef(gnb)),
                theta_size = unname(getME(gnb, "glmer.nb.theta")),
                re_sd = list(site = as.data.frame(VarCorr(gnb))$sdcor[1]),
                logLik = as.numeric(logLik(gnb)), warnings = g$warnings,
                note = paste("glmer's Laplace uses the expected (Fisher) weights in the",
                             "log-determinant, glmmTMB the exact Hessian: not the same",
                             "criterion, so not the same optimum (see the script header)"),
                fit_seconds = g$secs)

out <- list(data = "salamanders.csv",
            levels = list(mined = levels(sal$mined)),
            nb2_loglik = paste("log f(y; mu, theta) = lgamma(y + theta) - lgamma(theta)",
                               "- lgamma(y + 1) + theta * log(theta / (theta + mu))",
                               "+ y * log(mu / (theta + mu)); Var(y) = mu + mu^2 / theta,",
                               "theta = theta_size = glmmTMB's sigma(model)"),
            nb2_site = m_a, nb2_site_spp = m_b, lme4_glmer_nb = lme4_nb,
            glmmTMB = as.character(packageVersion("glmmTMB")),
            lme4 = as.character(packageVersion("lme4")),
            TMB = as.character(packageVersion("TMB")), R = R.version.string)
write_json(out, file.path(outdir, "glmmtmb_nbinom2.json"), digits = NA,
           auto_unbox = TRUE, pretty = TRUE, na = "null")
