# lme4 references for the binomial links beyond make_ref.R's (which has logit only):
# cbpp with the probit and cloglog links. Run from the repository root:
#     Rscript tests/reference/lme4_links.R tests/reference
# Needs R with lme4 and jsonlite (Debian: r-cran-lme4 r-cran-jsonlite). The output JSON has
# the same fields as lme4_cbpp.json; `data` names the data set the tests
# read (lme4's own cbpp, saved in tests/data/cbpp.csv).
suppressMessages({library(lme4); library(jsonlite)})
outdir <- commandArgs(TRUE)[1]
entry <- function(model, secs) {
  re <- as.data.frame(ranef(model, condVar = TRUE))
  re$grp <- as.character(re$grp)
  list(formula = paste(deparse(formula(model)), collapse = ""),
       family = family(model)$family, link = family(model)$link, nobs = nobs(model),
       fixef = as.list(fixef(model)), se = as.list(sqrt(diag(as.matrix(vcov(model))))),
       vcov = unname(as.matrix(vcov(model))), theta = unname(getME(model, "theta")),
       varcorr = as.data.frame(VarCorr(model)), logLik = as.numeric(logLik(model)),
       AIC = AIC(model), BIC = BIC(model), deviance = deviance(model),
       fit_seconds = unname(secs["elapsed"]), ranef = re,
       lme4 = as.character(packageVersion("lme4")), R = R.version.string)
}
fit <- function(link, nAGQ) {
  secs <- system.time(model <- glmer(cbind(incidence, size - incidence) ~ period + (1 | herd),
                                     data = cbpp, family = binomial(link = link), nAGQ = nAGQ))
  entry(model, secs)
}
out <- list(data = "cbpp.csv")
for (link in c("probit", "cloglog")) {
  out[[paste0(link, "_laplace")]] <- fit(link, 1)
  out[[paste0(link, "_agq10")]] <- fit(link, 10)
  out[[paste0(link, "_nagq0")]] <- fit(link, 0)
}
write_json(out, file.path(outdir, "lme4_cbpp_links.json"), digits = NA, auto_unbox = TRUE,
           pretty = TRUE, na = "null")

