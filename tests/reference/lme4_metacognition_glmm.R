# lme4's glmer on the Metacognition data (tests/data/metacognition.csv) for
# tests/test_real_data.py: correct ~ confidence_z * contrast_z + (confidence_z + contrast_z || id),
# binomial, Laplace; both predictors z-scaled over the whole sample, contrast numeric.
# Run from the repository root:
#     Rscript tests/reference/lme4_metacognition_glmm.R tests/reference
# Needs R with lme4 and jsonlite (Debian: r-cran-lme4 r-cran-jsonlite).
suppressMessages({library(lme4); library(jsonlite)})
args <- commandArgs(TRUE)
outdir <- args[1]
d <- read.csv(file.path(dirname(outdir), "data", "metacognition.csv"))
d$id <- factor(d$id)
d$confidence_z <- as.numeric(scale(d$confidence))
d$contrast_z <- as.numeric(scale(d$contrast))
ctrl <- glmerControl(optimizer = "bobyqa", optCtrl = list(maxfun = 1e5))
fit <- glmer(correct ~ confidence_z * contrast_z + (confidence_z + contrast_z || id),
             data = d, family = binomial, control = ctrl)
vc <- as.data.frame(VarCorr(fit))
out <- list(lme4 = as.character(packageVersion("lme4")), nobs = nobs(fit),
            formula = paste(deparse(formula(fit)), collapse = " "),
            theta = unname(getME(fit, "theta")), theta_names = names(getME(fit, "theta")),
            fixef = as.list(fixef(fit)), se = as.list(sqrt(diag(as.matrix(vcov(fit))))),
            varcorr = lapply(seq_len(nrow(vc)), function(i) as.list(vc[i, ])),
            logLik = as.numeric(logLik(fit)), fitted_head = unname(fitted(fit)[1:20]),
            singular = isSingular(fit))
write_json(out, file.path(outdir, "lme4_metacognition_glmm.json"), digits = NA,
           auto_unbox = TRUE, null = "null", na = "null")
