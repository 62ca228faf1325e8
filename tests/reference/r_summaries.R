# R's printouts of summary() that the summary layout tests compare with (header lines,
# column names, number formats, p-values, stars): tests/estimators/test_summary_layout.py.
# Run from the repository root: Rscript tests/reference/r_summaries.R
# R 4.2.2, lme4 1.1-31, lmerTest 3.1-3, mgcv 1.8-41; options(width = 80), UTF-8 locale.
suppressPackageStartupMessages({library(lme4); library(mgcv)})
options(width = 80)
out <- function(name, x) writeLines(capture.output(print(x)),
                                     file.path("tests/reference", name))
ss <- read.csv("tests/data/sleepstudy.csv"); ss$Subject <- factor(ss$Subject)
out("r_summary_lmer.txt", summary(lmer(Reaction ~ Days + (Days | Subject), ss)))
suppressPackageStartupMessages(library(lmerTest))
out("r_summary_lmertest.txt", summary(lmer(Reaction ~ Days + (Days | Subject), ss)))
cb <- read.csv("tests/data/cbpp.csv"); cb$period <- factor(cb$period); cb$herd <- factor(cb$herd)
out("r_summary_glmer.txt", summary(glmer(cbind(incidence, size - incidence) ~ period +
                                           (1 | herd), cb, family = binomial)))
d <- read.csv("tests/data/gamsim1.csv"); d$fac <- factor(d$fac)
out("r_summary_bam.txt", summary(bam(y ~ x3 + s(x0, bs = "ps") + s(x1, bs = "ps") +
                                       s(x2, bs = "ps") + s(fac, bs = "re"), data = d,
                                     discrete = TRUE)))
out("r_summary_bam_binomial.txt", summary(bam(yb ~ s(x0, bs = "ps") + s(x1, bs = "ps") +
                                                s(x2, bs = "ps") + s(fac, bs = "re"),
                                              data = d, family = binomial, discrete = TRUE)))
# p-values as printCoefmat formats them (digits 3 in lme4's and mgcv's summaries)
p <- list(c(1e-20, 0.308), c(1e-20, 6.21e-7), 1e-300, c(1.47e-9, 0.001068, 0.000474, 0.000182),
          c(0.04, 0.00005, 0.2), c(1e-20, 1e-20, 0.0123), 0.5181503, 3.2638e-06)
writeLines(vapply(p, function(v) paste(format.pval(v, digits = 3), collapse = "|"), ""),
           "tests/reference/r_format_pval.txt")
