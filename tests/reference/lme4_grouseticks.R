# lme4's glmer with three grouping factors, one of them observation-level, for
# tests/estimators/test_mixedglm_multilevel.py: lme4's grouseticks (403 rows; Elston et al.
# 2001), TICKS ~ YEAR + cHEIGHT + (1|BROOD) + (1|INDEX) + (1|LOCATION), Poisson, Laplace
# (nAGQ = 1). Writes the table as tests/data/grouseticks.csv too. Run from the repository
# root:
#     Rscript tests/reference/lme4_grouseticks.R tests/reference tests/data
# Needs R with lme4 and jsonlite (Debian: r-cran-lme4 r-cran-jsonlite).
suppressMessages({library(lme4); library(jsonlite)})
args <- commandArgs(TRUE)
outdir <- args[1]
data(grouseticks, package = "lme4")
write.csv(grouseticks, file.path(args[2], "grouseticks.csv"), row.names = FALSE)
t0 <- Sys.time()
fit <- glmer(TICKS ~ YEAR + cHEIGHT + (1 | BROOD) + (1 | INDEX) + (1 | LOCATION),
             data = grouseticks, family = poisson)
secs <- as.numeric(Sys.time() - t0, units = "secs")
re <- ranef(fit, condVar = TRUE)
out <- list(lme4 = as.character(packageVersion("lme4")), nobs = nobs(fit),
            formula = paste(deparse(formula(fit)), collapse = " "),
            theta = unname(getME(fit, "theta")), theta_names = names(getME(fit, "theta")),
            fixef = as.list(fixef(fit)), se = as.list(sqrt(diag(as.matrix(vcov(fit))))),
            logLik = as.numeric(logLik(fit)), deviance = as.numeric(deviance(fit)),
            ranef_location = setNames(as.list(re$LOCATION[, 1]), rownames(re$LOCATION)),
            condsd_location = setNames(as.list(sqrt(attr(re$LOCATION, "postVar")[1, 1, ])),
                                       rownames(re$LOCATION)),
            fit_seconds = secs)
write_json(out, file.path(outdir, "lme4_grouseticks.json"), digits = NA, auto_unbox = TRUE,
           null = "null", na = "null")
