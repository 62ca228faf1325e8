# mgcv's approximate significance of smooth terms (summary.gam's s.table: edf, Ref.df, the
# F or chi-squared statistic, the p-value; Wood 2013, Biometrika 100, 221-228) and the
# per-smooth alternative edf (sum of fit$edf1 over the smooth's coefficients) for
# tests/estimators/test_additive_significance.py, on the gamsim1 data
# (tests/data/gamsim1.csv, made by tests/reference/make_ref.R). Run from the
# repository root:
#     Rscript tests/reference/mgcv_smooth_tests.R tests/reference
# Needs R with mgcv and jsonlite (Debian: r-cran-mgcv r-cran-jsonlite).
suppressMessages({library(mgcv); library(jsonlite)})
args <- commandArgs(TRUE)
outdir <- args[1]
gs <- read.csv(file.path(dirname(outdir), "data", "gamsim1.csv"))
gs$fac <- factor(gs$fac)
tab <- function(fit) {
  st <- summary(fit)$s.table
  smooth <- grep("^s\\(x", rownames(st))
  edf1 <- sapply(fit$smooth[smooth], function(s) sum(fit$edf1[s$first.para:s$last.para]))
  list(formula = paste(deparse(formula(fit)), collapse = " "),
       family = fit$family$family,
       term = rownames(st)[smooth], edf = unname(st[smooth, "edf"]),
       ref_df = unname(st[smooth, "Ref.df"]), stat = unname(st[smooth, 3]),
       stat_name = colnames(st)[3], p_value = unname(st[smooth, 4]),
       edf1 = unname(edf1), residual_df = length(fit$y) - sum(fit$edf))
}
f_gau <- y ~ s(x0, bs = "ps") + s(x1, bs = "ps") + s(x2, bs = "ps") + s(x3, bs = "ps")
f_gau_re <- update(f_gau, . ~ . + s(fac, bs = "re"))
f_bin_re <- yb ~ s(x0, bs = "ps") + s(x1, bs = "ps") + s(x2, bs = "ps") + s(x3, bs = "ps") +
  s(fac, bs = "re")
out <- list(data = "gamsim1.csv", mgcv = as.character(packageVersion("mgcv")),
            gam_gau = tab(gam(f_gau, data = gs, method = "REML")),
            gam_gau_re = tab(gam(f_gau_re, data = gs, method = "REML")),
            bam_gau_re_disc = tab(bam(f_gau_re, data = gs, discrete = TRUE)),
            gam_bin_re = tab(gam(f_bin_re, data = gs, family = binomial, method = "REML")),
            bam_bin_re_disc = tab(bam(f_bin_re, data = gs, family = binomial,
                                      discrete = TRUE)))
write_json(out, file.path(outdir, "mgcv_smooth_tests.json"), digits = NA, auto_unbox = TRUE,
           pretty = TRUE)
