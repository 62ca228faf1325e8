# R's model.matrix for the formula front end's transforms and codings, for
# tests/test_formula.py: orthogonal and raw poly(), scale(), log(), I(x^2), treatment
# contrasts with a chosen reference level, and an interaction of a numeric column with a
# factor with and without its margin. Run from the repository root:
#     Rscript tests/reference/r_formula_design.R tests/reference
# Needs R with jsonlite (Debian: r-cran-jsonlite).
suppressMessages(library(jsonlite))
outdir <- commandArgs(TRUE)[1]
d <- data.frame(x = c(1, 2, 4, 3, 5, 7, 7, 10.5, 0.5, 6),
                f = c("a", "b", "c", "a", "b", "c", "a", "c", "b", "b"))
mm <- function(formula) {
  m <- model.matrix(as.formula(formula), d)
  list(formula = formula, columns = colnames(m), matrix = unname(m))
}
out <- list(
  R = paste(R.version$major, R.version$minor, sep = "."), data = d,
  transforms = mm("~ poly(x, 3) + scale(x) + log(x) + I(x^2) + log1p(x) + sqrt(x) + exp(x)"),
  raw_poly = mm("~ 0 + poly(x, 2, raw = TRUE)"),
  reference = mm("~ relevel(factor(f), 'b')"),
  slope_by_level = mm("~ x:f"),
  with_margin = mm("~ f * x"))
write_json(out, file.path(outdir, "r_formula_design.json"), digits = NA, auto_unbox = TRUE,
           matrix = "rowmajor")
