# lme4 fits with several grouping factors beyond make_ref.R's (Penicillin, Pastes)
# for tests/estimators/test_mixedlm_multilevel.py: the study's 200,000 rows
# (../shared/data/study_2e5.csv.gz) with a second, crossed factor h = row %% 37 + 1 (row =
# 0-based row index) and y2 = y + sin(h) (a deterministic h effect, rebuilt the same way by
# the test); lmer(y2 ~ x + b + (1 + x | g) + (1 | h)) by REML and ML, and
# (1 + x || g) + (1 | h) by REML. Run from the repository root:
#     Rscript tests/reference/lme4_crossed_slopes.R tests/reference
# Needs R with lme4 and jsonlite (Debian: r-cran-lme4 r-cran-jsonlite).
suppressMessages({library(lme4); library(jsonlite)})
args <- commandArgs(TRUE)
outdir <- args[1]
st <- read.csv(gzfile(file.path(dirname(outdir), "..", "..", "shared", "data",
                                "study_2e5.csv.gz")))
st$h <- (seq_len(nrow(st)) - 1) %% 37 + 1
st$y2 <- st$y + sin(st$h)
st$g <- factor(st$g); st$h <- factor(st$h)
ctrl <- lmerControl(optimizer = "bobyqa", optCtrl = list(maxfun = 1e5))
summ <- function(fit) {
  vc <- as.data.frame(VarCorr(fit))
  list(formula = paste(deparse(formula(fit)), collapse = " "), REML = isREML(fit),
       theta = unname(getME(fit, "theta")), theta_names = names(getME(fit, "theta")),
       fixef = as.list(fixef(fit)), se = as.list(sqrt(diag(as.matrix(vcov(fit))))),
       sigma = sigma(fit), varcorr = lapply(seq_len(nrow(vc)), function(i) as.list(vc[i, ])),
       logLik = as.numeric(logLik(fit)),
       crit = if (isREML(fit)) REMLcrit(fit) else as.numeric(deviance(fit)),
       fitted_head = unname(fitted(fit)[1:20]))
}
t0 <- Sys.time()
out <- list(lme4 = as.character(packageVersion("lme4")), rows = nrow(st),
            reml_rs = summ(lmer(y2 ~ x + b + (1 + x | g) + (1 | h), data = st, control = ctrl)),
            ml_rs = summ(lmer(y2 ~ x + b + (1 + x | g) + (1 | h), data = st, REML = FALSE,
                              control = ctrl)),
            reml_diag = summ(lmer(y2 ~ x + b + (1 + x || g) + (1 | h), data = st,
                                  control = ctrl)))
write_json(out, file.path(outdir, "lme4_crossed_slopes.json"), digits = NA, auto_unbox = TRUE,
           null = "null", na = "null")
print(Sys.time() - t0)
