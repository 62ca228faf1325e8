# glmmTMB reference for the Gamma GLMM: glmmTMB maximizes TMB's Laplace approximation of the
# likelihood with the dispersion as a parameter, which is what MixedGLM(family="gamma") does.
# (lme4's glmer finds the modes at unit dispersion and adds a plug-in dispersion term; its
# criterion is not the likelihood's Laplace approximation, so it is not a reference here.)
# Run from the repository root:  Rscript tests/reference/glmmtmb_gamma.R tests/reference
# Needs R with glmmTMB, lme4 (for sleepstudy) and jsonlite (Debian: r-cran-glmmtmb
# r-cran-lme4 r-cran-jsonlite). The data are lme4's sleepstudy (tests/data/sleepstudy.csv).
suppressMessages({library(glmmTMB); library(lme4); library(jsonlite)})
outdir <- commandArgs(TRUE)[1]
secs <- system.time(model <- glmmTMB(Reaction ~ Days + (1 | Subject), data = sleepstudy,
                                     family = Gamma(link = "log")))
re <- as.data.frame(ranef(model, condVar = TRUE))
re$grp <- as.character(re$grp)
vc <- VarCorr(model)$cond$Subject
out <- list(data = "sleepstudy.csv",
            gamma_laplace = list(
              formula = "Reaction ~ Days + (1 | Subject), family = Gamma(link = \"log\")",
              nobs = nobs(model), fixef = as.list(fixef(model)$cond),
              se = as.list(sqrt(diag(vcov(model)$cond))), vcov = unname(vcov(model)$cond),
              sigma = sigma(model), dispersion = sigma(model)^2,
              re_sd = unname(attr(vc, "stddev")), logLik = as.numeric(logLik(model)),
              AIC = AIC(model), BIC = BIC(model), fit_seconds = unname(secs["elapsed"]),
              ranef = re, glmmTMB = as.character(packageVersion("glmmTMB")),
              R = R.version.string))
write_json(out, file.path(outdir, "glmmtmb_sleepstudy_gamma.json"), digits = NA,
           auto_unbox = TRUE, pretty = TRUE, na = "null")
