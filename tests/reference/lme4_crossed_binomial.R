# lme4's glmer on a crossed binomial GLMM of 100,000 rows, for
# tests/estimators/test_mixedglm_crossed_reference.py: y_bin ~ x + (1|user) + (1|item) on
# tests/data/crossed_binomial.csv.gz (skmixed.datasets.make_crossed(100_000, 5_000, 1_000,
# random_state=15), x rounded to 4 decimals so that R and Python read the same numbers),
# binomial logit, Laplace (nAGQ = 1), lme4's default optimizers. glmer takes minutes here.
# Run from the repository root:
#     Rscript tests/reference/lme4_crossed_binomial.R tests/data tests/reference
# Needs R with lme4 and jsonlite (Debian: r-cran-lme4 r-cran-jsonlite).
suppressMessages({library(lme4); library(jsonlite)})
args <- commandArgs(TRUE)
datadir <- args[1]
outdir <- args[2]
d <- read.csv(gzfile(file.path(datadir, "crossed_binomial.csv.gz")),
              colClasses = c(user = "factor", item = "factor"))
t0 <- Sys.time()
fit <- glmer(y_bin ~ x + (1 | user) + (1 | item), data = d, family = binomial)
secs <- as.numeric(Sys.time() - t0, units = "secs")
re <- ranef(fit, condVar = TRUE)
item_sd <- sqrt(attr(re$item, "postVar")[1, 1, ])
out <- list(lme4 = as.character(packageVersion("lme4")), nobs = nobs(fit),
            formula = paste(deparse(formula(fit)), collapse = " "),
            theta = unname(getME(fit, "theta")), theta_names = names(getME(fit, "theta")),
            fixef = as.list(fixef(fit)), se = as.list(sqrt(diag(as.matrix(vcov(fit))))),
            logLik = as.numeric(logLik(fit)), deviance = as.numeric(deviance(fit)),
            ranef_item = setNames(as.list(re$item[1:20, 1]), rownames(re$item)[1:20]),
            condsd_item = setNames(as.list(item_sd[1:20]), rownames(re$item)[1:20]),
            optinfo = list(conv = fit@optinfo$conv$opt,
                           messages = paste(fit@optinfo$conv$lme4$messages, collapse = "; ")),
            fit_seconds = secs)
write_json(out, file.path(outdir, "lme4_crossed_binomial.json"), digits = NA,
           auto_unbox = TRUE, null = "null", na = "null")
