# Two and three random slopes correlated with the intercept, lme4's (1 + x1 + x2 | g) and
# (1 + x1 + x2 + x3 | g), REML, run to its exact optimum (bobyqa, rhoend = 1e-12), on the six
# data sets of tests/data/correlated_slopes.csv (written by make_correlated_slopes.py), for
# tests/estimators/test_additive_re.py (issue 18): REML criterion, θ, σ, fixed effects,
# VarCorr and every row's fitted value. Run from the repository root:
#     Rscript tests/reference/lme4_correlated_slopes.R tests/reference
# Needs R with lme4 and jsonlite (Debian: r-cran-lme4 r-cran-jsonlite).
suppressMessages({library(lme4); library(jsonlite)})
args <- commandArgs(TRUE)
outdir <- args[1]
all <- read.csv(file.path(dirname(outdir), "data", "correlated_slopes.csv"))
ctrl <- lmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-12, maxfun = 1e5),
                    check.conv.singular = "ignore")
out <- list(lme4 = as.character(packageVersion("lme4")), data = "correlated_slopes.csv")
for (s in unique(all$set)) {
  d <- all[all$set == s, ]
  f <- if (startsWith(s, "two")) y ~ x1 + x2 + (1 + x1 + x2 | g) else
    y ~ x1 + x2 + x3 + (1 + x1 + x2 + x3 | g)
  m <- suppressWarnings(lmer(f, data = d, REML = TRUE, control = ctrl))
  vc <- as.data.frame(VarCorr(m))
  out[[s]] <- list(formula = paste(deparse(f), collapse = ""), crit = REMLcrit(m),
                   theta = unname(getME(m, "theta")), sigma = sigma(m),
                   fixef = as.list(fixef(m)),
                   varcorr = lapply(seq_len(nrow(vc)), function(i) as.list(vc[i, ])),
                   fitted = unname(fitted(m)))
}
write_json(out, file.path(outdir, "lme4_correlated_slopes.json"), digits = NA,
           auto_unbox = TRUE)
