# mgcv's p-values of a smooth under the null, for the fast uniformity check in
# tests/estimators/test_additive_significance.py: 2,000 data sets of 200 rows with
# x ~ N(0, 1), z ~ U(0, 1) and y = 0.5 x + N(0, 1) (z has no effect), each fitted by
# gam(y ~ x + s(z, bs = "ps"), method = "REML"); summary.gam's p-value of s(z) (Wood 2013).
# Wood's test is approximate: over many data sets its null p-values are close to uniform in
# the lower tail but measurably not uniform overall (fewer near 1), so the Python test
# compares AdditiveMixed's null p-values with this sample rather than with U(0, 1).
# Run from the repository root:
#     Rscript tests/reference/mgcv_null_p_values.R tests/reference
# Needs R with mgcv and jsonlite (Debian: r-cran-mgcv r-cran-jsonlite).
suppressMessages({library(mgcv); library(jsonlite)})
outdir <- commandArgs(TRUE)[1]
set.seed(20261202)
n <- 200
p <- replicate(2000, {
  x <- rnorm(n); z <- runif(n); y <- 0.5 * x + rnorm(n)
  summary(gam(y ~ x + s(z, bs = "ps"), method = "REML"))$s.table[1, "p-value"]
})
out <- list(formula = "y ~ x + s(z, bs = \"ps\"), method = \"REML\"", n = n,
            design = "x ~ N(0, 1), z ~ U(0, 1), y = 0.5 x + N(0, 1); set.seed(20261202)",
            p_value = p, ks_uniform = unname(ks.test(p, "punif")$p.value),
            mgcv = as.character(packageVersion("mgcv")), R = R.version.string)
write_json(out, file.path(outdir, "mgcv_null_p_values.json"), digits = NA, auto_unbox = TRUE)
