# mgcv's thin-plate regression spline ("tp", the default of s()) for
# tests/model/test_thin_plate.py: on simulated data (written to tests/data/tp_sim.csv.gz,
# every value rounded to 6 decimals so that R and Python read the same doubles),
#   * smoothCon(absorb.cons = TRUE, scale.penalty = FALSE): the constrained basis (first
#     rows), its penalty, the generalized eigenvalues of the penalty against X'X, and a
#     penalized least-squares fit [1, X] at a fixed lambda (fitted values, predictions at new
#     points through PredictMat, edf);
#   * the knots mgcv drew (data rows) when there are more than 2,000 distinct points, and
#     R's set.seed(1); sample(n, 2000) for several n;
#   * gam(y ~ s(...), method = "REML"): fitted values, edf, REML score, sp, scale.
# Cases: d = 1 with 500 and 5,000 distinct values (the second uses the 2,000-knot draw);
# d = 2, isotropic s(x, z), with 600 and 2,500 points (the second draws knots too); d = 3,
# s(x, z, w) (penalty order 3, 10 polynomials), with 400 points.
# Run from the repository root:
#     Rscript tests/reference/mgcv_tp.R tests/reference
# Needs R with mgcv and jsonlite (Debian: r-cran-mgcv r-cran-jsonlite).
suppressMessages({library(mgcv); library(jsonlite)})
args <- commandArgs(TRUE)
outdir <- args[1]
datafile <- file.path(dirname(outdir), "data", "tp_sim.csv.gz")

# --- data: gamSim(1)'s f2 in one covariate, a bump in two; distinct 6-decimal values
f2 <- function(x) 0.2 * x^11 * (10 * (1 - x))^6 + 10 * (10 * x)^3 * (1 - x)^10
fxz <- function(x, z) 4 * exp(-((x - 0.3)^2 + (z - 0.6)^2) / 0.08) + 2 * sin(3 * x * z)
set.seed(18)
one_d <- function(set, n) {
  x <- sample(0:1000000, n) / 1e6
  data.frame(set = set, x = x, z = NA, w = NA, y = round(f2(x) + rnorm(n, sd = 2), 6))
}
two_d <- function(set, n) {
  x <- round(runif(n), 6); z <- round(runif(n), 6)
  data.frame(set = set, x = x, z = z, w = NA, y = round(fxz(x, z) + rnorm(n, sd = 0.5), 6))
}
three_d <- function(set, n) {
  x <- round(runif(n), 6); z <- round(runif(n), 6); w <- round(runif(n), 6)
  data.frame(set = set, x = x, z = z, w = w,
             y = round(fxz(x, z) + sin(4 * w) + rnorm(n, sd = 0.5), 6))
}
sim <- rbind(one_d("d1_500", 500), one_d("d1_5000", 5000), two_d("d2_600", 600),
             two_d("d2_2500", 2500), three_d("d3_400", 400))
con <- gzfile(datafile, "w"); write.csv(sim, con, row.names = FALSE); close(con)
sim <- read.csv(datafile)  # exactly what the test reads

stride <- function(n) unique(c(seq(1, n, by = max(1, n %/% 250)), n))
new_points <- function(d) {
  g <- seq(-0.05, 1.05, length.out = 23)
  data.frame(x = g, z = rev(g)^2, w = sin(3 * g))[, 1:d, drop = FALSE]
}

case <- function(set, k, lambda) {
  data <- sim[sim$set == set, ]
  d <- sum(!is.na(data[1, c("x", "z", "w")]))
  covariates <- paste(c("x", "z", "w")[1:d], collapse = ", ")
  spec <- eval(parse(text = sprintf("s(%s, bs = \"tp\", k = %d)", covariates, k)))
  sm <- smoothCon(spec, data = data, absorb.cons = TRUE, scale.penalty = FALSE)[[1]]
  X <- sm$X; S <- sm$S[[1]]; n <- nrow(X)
  X1 <- cbind(1, X); S1 <- rbind(0, cbind(0, S))
  A <- crossprod(X1) + lambda * S1
  beta <- solve(A, crossprod(X1, data$y))
  newd <- new_points(d)
  P1 <- cbind(1, PredictMat(sm, newd))
  # eigenvalues of S against X'X (basis-free): S v = mu X'X v
  Ri <- backsolve(chol(crossprod(X)), diag(ncol(X)))  # X'X = R'R, Ri = R^-1
  mu <- sort(eigen(t(Ri) %*% S %*% Ri, symmetric = TRUE, only.values = TRUE)$values,
             decreasing = TRUE)
  # the knots: mgcv's draw when there are more than 2,000 distinct points
  xs <- as.matrix(data[, c("x", "z", "w")[1:d]])
  xc <- sweep(xs, 2, sm$shift)
  xu <- uniquecombs(xc, TRUE)
  knot_rows <- NULL
  if (nrow(xu) > 2000) {
    set.seed(1); ind <- sample(nrow(xu), 2000)
    knots <- as.matrix(xu)[ind, , drop = FALSE]
    stopifnot(max(abs(knots[do.call(order, as.data.frame(knots)), ] -
                      sm$Xu[do.call(order, as.data.frame(sm$Xu)), ])) == 0)
    knot_rows <- match(ind, attr(xu, "index"))  # a data row at each drawn point
  }
  form <- as.formula(sprintf("y ~ s(%s, k = %d)", covariates, k))
  t0 <- system.time(g <- gam(form, data = data, method = "REML"))
  rows <- stride(n)
  list(set = set, d = d, k = k, n = n, rows = 30, lambda = lambda, shift = sm$shift,
       n_knots = nrow(sm$Xu), knot_rows = knot_rows,
       X = unname(X[1:30, ]), S = unname(S), penalty_eigenvalues = mu,
       pls_rows = rows, pls_fitted = as.numeric(X1 %*% beta)[rows],
       pls_edf = sum(diag(solve(A, crossprod(X1)))),
       new_points = newd, pls_predicted = as.numeric(P1 %*% beta),
       gam = list(fitted = as.numeric(fitted(g))[rows], edf = sum(g$edf),
                  edf_smooth = sum(g$edf[-1]), reml_score = as.numeric(g$gcv.ubre),
                  sp = unname(g$sp), scale = g$sig2, sp_unscaled = unname(g$sp) /
                    g$smooth[[1]]$S.scale, seconds = unname(t0["elapsed"])))
}

draws <- lapply(c(2001, 5000, 65537, 123457), function(n) {
  set.seed(1); list(n = n, draws = sample(n, 2000))
})
out <- list(data = "tp_sim.csv.gz", mgcv = as.character(packageVersion("mgcv")),
            R = paste(R.version$major, R.version$minor, sep = "."),
            cases = list(d1_500 = case("d1_500", 10, 4e-3),
                         d1_5000 = case("d1_5000", 10, 4e-3),
                         d1_500_k20 = case("d1_500", 20, 4e-3),
                         d2_600 = case("d2_600", 30, 2e-2),
                         d2_2500 = case("d2_2500", 30, 2e-2),
                         d3_400 = case("d3_400", 20, 2e-2)),
            sample = draws)
write_json(out, file.path(outdir, "mgcv_tp.json"), digits = NA, auto_unbox = TRUE)
