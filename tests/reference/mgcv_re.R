# Several random-effect factors in mgcv (crossed and nested s(g, bs = "re") terms, random
# slopes on each) for tests/estimators/test_additive_re.py (issue 18):
# * tests/data/crossed_re.csv, written here (set.seed(18)): n = 4,000 rows, g1 with 60 levels
#   and g2 with 15 levels drawn independently (crossed), x ~ N(0, 1), z ~ U(0, 1);
#   y = 1 + 0.5 x + sin(2 pi z) + a[g1] + b[g2] + c[g2] x + N(0, 1) with SDs 0.6, 0.4, 0.3,
#   and a 0/1 yb with logit 0.5 x + sin(2 pi z) + a[g1] + b[g2]; values rounded to 8 decimals
#   and read back before fitting;
# * fits of y ~ x + s(z) + s(g1, bs = "re") + s(g2, bs = "re") (tp), of the same with
#   bs = "cr" and random slopes s(g1, x, bs = "re") + s(g2, x, bs = "re"), of the binomial
#   yb ~ x + s(z, bs = "cr") + s(g1, bs = "re") + s(g2, bs = "re") and of a cyclic s(z) (no
#   null space: mgcv tests it by reTest, the random effects part of the error), by
#   gam(method = "REML")
#   run to its exact optimum (gam.control: epsilon = 1e-12, conv.tol = 1e-12) and by
#   bam(discrete = TRUE); and on real data (metacognition.csv) the nested
#   confidence ~ sex + s(visibility) + s(id, bs = "re") + s(idblock, bs = "re") with
#   idblock = interaction(id, block) (lme4's (1 | id/block)); fitted values (every 4th row),
#   edf per smooth, REML score, scale, the random effects' SDs (gam.vcomp, also with
#   rescale = TRUE: a random slope's on x's scale), parametric
#   coefficients, the summary's smooth table and predictions at new rows (a seen level of
#   each factor, an unseen one excluded from the terms); and correlated random slopes by gamm
#   (nlme's lme, REML): y ~ x + s(z, bs = "cr") with random = list(g2 = ~ 1 + x).
# Run from the repository root:
#     Rscript tests/reference/mgcv_re.R tests/reference
# Needs R with mgcv and jsonlite (Debian: r-cran-mgcv r-cran-jsonlite).
suppressMessages({library(mgcv); library(jsonlite)})
args <- commandArgs(TRUE)
outdir <- args[1]
datadir <- file.path(dirname(outdir), "data")

set.seed(18)
n <- 4000
g1 <- sample(60, n, replace = TRUE)
g2 <- sample(15, n, replace = TRUE)
x <- rnorm(n)
z <- runif(n)
a <- rnorm(60, 0, 0.6)
b <- rnorm(15, 0, 0.4)
cc <- rnorm(15, 0, 0.3)
eta <- 0.5 * x + sin(2 * pi * z) + a[g1] + b[g2]
d <- data.frame(y = 1 + eta + cc[g2] * x + rnorm(n), yb = rbinom(n, 1, plogis(eta)),
                x = x, z = z, g1 = sprintf("a%02d", g1), g2 = sprintf("b%02d", g2))
for (v in c("y", "x", "z")) d[[v]] <- round(d[[v]], 8)
write.csv(d, file.path(datadir, "crossed_re.csv"), row.names = FALSE)
d <- read.csv(file.path(datadir, "crossed_re.csv"))
d$g1 <- factor(d$g1)
d$g2 <- factor(d$g2)
meta <- read.csv(file.path(datadir, "metacognition.csv"))
meta$sex <- factor(meta$sex)
meta$id <- factor(meta$id)
meta$idblock <- interaction(meta$id, meta$block)

summ <- function(m, nd) {
  st <- summary(m)$s.table
  # population level: every random-effect term excluded (bam names a slope s(x,g1))
  exclude <- unlist(lapply(m$smooth, function(s)
    if (inherits(s, "random.effect")) s$label))
  rows <- seq(1, length(m$y), by = 4)  # every 4th row (1-based)
  capture.output(vcomp <- gam.vcomp(m, rescale = FALSE))  # it prints
  # a random slope's SD on x's own scale (rescale = FALSE: on mgcv's rescaled penalty's)
  capture.output(vcomp_x <- gam.vcomp(m, rescale = TRUE))
  edf <- sapply(m$smooth, function(s) sum(m$edf[s$first.para:s$last.para]))
  list(formula = paste(deparse(formula(m)), collapse = ""), method = m$method,
       coef_parametric = as.list(coef(m)[!grepl("^s\\(", names(coef(m)))]),
       edf = as.list(setNames(edf, sapply(m$smooth, function(s) s$label))),
       edf_total = sum(m$edf), sp = as.list(m$sp), scale = m$sig2,
       reml_score = as.numeric(m$gcv.ubre),
       vcomp_sd = as.list(setNames(vcomp[, 1], rownames(vcomp))),
       vcomp_sd_rescaled = as.list(setNames(vcomp_x[, 1], rownames(vcomp_x))),
       s_table = list(term = rownames(st), edf = unname(st[, "edf"]),
                      ref_df = unname(st[, "Ref.df"]), stat = unname(st[, 3]),
                      p_value = unname(st[, 4])),
       fitted_rows = rows, fitted = as.numeric(fitted(m))[rows],
       new_data = nd, predicted = as.numeric(predict(m, nd, type = "response")),
       predicted_population = as.numeric(predict(m, nd, type = "response",
                                                 exclude = exclude)),
       mgcv = as.character(packageVersion("mgcv")))
}

tight <- gam.control(epsilon = 1e-12, newton = list(conv.tol = 1e-12, maxHalf = 60),
                     outerPIsteps = 0)
nd <- data.frame(x = c(-1, 0.3, 1.2), z = c(0.1, 0.5, 0.85),
                 g1 = factor(c("a01", "a17", "a60"), levels(d$g1)),
                 g2 = factor(c("b03", "b15", "b07"), levels(d$g2)))
f_tp <- y ~ x + s(z) + s(g1, bs = "re") + s(g2, bs = "re")
f_sl <- y ~ x + s(z, bs = "cr") + s(g1, bs = "re") + s(g2, bs = "re") + s(g1, x, bs = "re") +
  s(g2, x, bs = "re")
f_bin <- yb ~ x + s(z, bs = "cr") + s(g1, bs = "re") + s(g2, bs = "re")
f_meta <- confidence ~ sex + s(visibility) + s(id, bs = "re") + s(idblock, bs = "re")
nm <- data.frame(visibility = c(10, 40, 80), sex = factor(c("female", "male", "male"),
                                                          levels(meta$sex)),
                 id = factor(c("1", "7", "20"), levels(meta$id)),
                 idblock = factor(c("1.1", "7.5", "20.9"), levels(meta$idblock)))
out <- list(
  data = "crossed_re.csv", mgcv = as.character(packageVersion("mgcv")),
  gam_crossed_tp = summ(gam(f_tp, data = d, method = "REML", control = tight), nd),
  bam_crossed_tp = summ(bam(f_tp, data = d, discrete = TRUE, method = "fREML"), nd),
  gam_slopes_cr = summ(gam(f_sl, data = d, method = "REML", control = tight), nd),
  bam_slopes_cr = summ(bam(f_sl, data = d, discrete = TRUE, method = "fREML"), nd),
  gam_cc_crossed = summ(gam(y ~ x + s(z, bs = "cc") + s(g1, bs = "re") + s(g2, bs = "re"),
                            data = d, method = "REML", knots = list(z = c(0, 1)),
                            control = tight), nd),
  gam_binomial = summ(gam(f_bin, data = d, family = binomial, method = "REML",
                          control = tight), nd),
  bam_binomial = summ(bam(f_bin, data = d, family = binomial, discrete = TRUE,
                          method = "fREML"), nd),
  gam_meta_nested = summ(gam(f_meta, data = meta, method = "REML", control = tight), nm),
  bam_meta_nested = summ(bam(f_meta, data = meta, discrete = TRUE, method = "fREML"), nm))
# correlated random slopes: gamm (nlme's lme, REML) with random = list(g2 = ~ 1 + x), lme4's
# (1 + x | g2), to nlme's tight tolerances (fitted values: the lme's, in the data's row order)
gm <- gamm(y ~ x + s(z, bs = "cr"), random = list(g2 = ~ 1 + x), data = d, method = "REML",
           control = nlme::lmeControl(opt = "optim", rel.tol = 1e-12, msMaxIter = 500,
                                      msTol = 1e-12, tolerance = 1e-10))
# g2's covariance matrix (VarCorr prints the correlation rounded to 2 digits)
vc <- as.matrix(gm$lme$modelStruct$reStruct$g2) * gm$lme$sigma^2
rows <- seq(1, nrow(d), by = 4)
out$gamm_correlated_cr <- list(
  formula = "y ~ x + s(z, bs = 'cr'), random = list(g2 = ~ 1 + x)",
  edf = unname(summary(gm$gam)$edf), coef_parametric = as.list(coef(gm$gam)[1:2]),
  sd_intercept = sqrt(vc[1, 1]), sd_x = sqrt(vc[2, 2]),
  corr = vc[1, 2] / sqrt(vc[1, 1] * vc[2, 2]),
  sigma = gm$lme$sigma, fitted_rows = rows,
  fitted = as.numeric(fitted(gm$lme))[rows],
  fitted_population = as.numeric(predict(gm$gam, d))[rows],
  logLik_reml = as.numeric(logLik(gm$lme)), mgcv = as.character(packageVersion("mgcv")))
write_json(out, file.path(outdir, "mgcv_re.json"), digits = NA, auto_unbox = TRUE)
