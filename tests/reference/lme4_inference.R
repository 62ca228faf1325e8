# Inference references from lme4 / lmerTest / pbkrtest: t-tests with Satterthwaite and
# Kenward-Roger denominator df, profile / Wald / parametric-bootstrap confidence intervals,
# and likelihood-ratio tests (anova of nested fits).
#  * data: tests/data/sleepstudy.csv, tests/data/cbpp.csv (read.csv, Subject / herd / period
#    as factors: the same level order as lme4's own data sets), and
#    tests/data/sleepstudy_unbalanced.csv, written here from sleepstudy.csv: with the subjects
#    in factor-level order, the k-th (k = 1..18) loses its rows with Days >= 10 - (k %% 5)
#    (it keeps 6..10 days) and, when k %% 3 == 0, also its row with Days == 3. The fits use
#    the CSV as read back, i.e. the numbers the Python side sees.
#  * per data set (sleepstudy, sleepstudy_unbalanced) and model (slope:
#    Reaction ~ Days + (Days | Subject); intercept: Reaction ~ Days + (1 | Subject)), REML, lmer's
#    default control; entry "<data>_<model>_reml" (and "sleepstudy_slope_ml", ML):
#      fit            fixef, theta (names), sigma, REMLcrit (REML) or deviance (ML), logLik, se
#      satterthwaite  lmerTest summary(ddf = "Satterthwaite")$coefficients
#      kenward_roger  lmerTest summary(ddf = "Kenward-Roger")$coefficients (REML only)
#      contest_days_* lmerTest::contest(m, L = c(0, 1), ddf = ...) (the F test of Days)
#      confint_profile_95, confint_profile_80, confint_wald_95: confint(m, method = ...)
#      confint_profile_fine_95  confint(profile(m, delta = 0.02, maxpts = 400), level = 0.95):
#                     lme4's default profile steps by delta = qnorm(0.995) / 8 ~ 0.32 on the
#                     zeta scale and interpolates; this one steps by 0.02
#    Note: lme4's profile (devfun2) starts with refitML(fm), so the profile intervals of a REML
#    fit are those of the ML deviance (they equal the ML fit's up to interpolation); the Wald
#    intervals use the fit's own vcov (NA for the variance parameters).
#  * anova_*: anova(m0, m1) on sleepstudy (lme4's refit = TRUE refits REML fits by ML) and on
#    cbpp (glmer binomial, Laplace); cbpp_period: confint of g1 (profile, Wald, fine profile).
#  * bootstrap_sleepstudy_slope_reml: set.seed(2026); bootMer(m1, FUN, nsim = 2000,
#    use.u = FALSE, type = "parametric") with FUN = c(fixef, sigma, sd of (Intercept), Days):
#    quantiles (type 7) at 0.025 / 0.975, mean, sd, and the replicates (signif(, 8)); then
#    set.seed(2026); confint(m1, method = "boot", nsim = 2000, boot.type = "perc").
#  * "_tight" entries (section 7): the same references at the exact optimum, refitted with
#    lmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-12, maxfun = 1e5)):
#    "<data>_<model>_reml_tight", "sleepstudy_slope_ml_tight" (fit, satterthwaite,
#    kenward_roger (REML), confint_profile_95, max_abs_grad), "anova_*_tight" (both models fitted
#    by ML directly), "anova_cbpp_tight" / "cbpp_period_tight" (best logLik over several glmer
#    controls, recorded with the entry; includes tolPwrss = 1e-12, as lme4's default PIRLS
#    tolerance leaves the Laplace deviance ~6e-4 above its minimum).
#  * section 8: anova_intercept_vs_days_tight (a fixed-effect LRT), residuals of the
#    sleepstudy slope fit and of the tight cbpp fit.
#  * section 9: several grouping factors (Penicillin crossed, Pastes nested, an unbalanced
#    Penicillin with a covariate): Satterthwaite, Kenward-Roger, profile intervals.
#  * section 10: profile intervals of a crossed binomial GLMM (glmm_slopes.csv).
# Layout: every table is column-major with its row names, e.g.
#   {"rows": ["(Intercept)", "Days"], "estimate": {"(Intercept)": .., "Days": ..}, ...};
#   confidence intervals as {"level", "columns" (R's, e.g. "2.5 %"), "rows", "lower", "upper"};
#   anova tables keep R's column names (npar, AIC, BIC, logLik, deviance, Chisq, Df,
#   Pr(>Chisq)); NA is null. Each part records its seconds and the warnings and messages R
#   raised in it ("timing" and "warnings" at the top level).
# Run from the repository root:
#     Rscript tests/reference/lme4_inference.R
# Needs R with lme4, lmerTest, pbkrtest, jsonlite
# (Debian: r-cran-lme4 r-cran-lmertest r-cran-pbkrtest r-cran-jsonlite).
suppressMessages({library(lme4); library(lmerTest); library(pbkrtest); library(jsonlite)})
args <- commandArgs(TRUE)
outdir <- if (length(args) >= 1) args[1] else file.path("tests", "reference")
datadir <- if (length(args) >= 2) args[2] else file.path("tests", "data")
SEED <- 2026
NSIM <- 2000

timing <- list(); warns <- list()
# run expr, record its elapsed seconds and the warnings / messages it raised (still shown)
part <- function(name, expr) {
  got <- character(0)
  t <- system.time(val <- withCallingHandlers(expr,
    warning = function(w) { got <<- c(got, paste("warning:", conditionMessage(w))) },
    message = function(m) { got <<- c(got, paste("message:", trimws(conditionMessage(m)))) }))
  timing[[name]] <<- unname(t["elapsed"])
  if (length(got)) { warns[[name]] <<- as.list(unique(got)); cat(paste0(name, ": ", unique(got), "\n"), sep = "") }
  cat(sprintf("%-45s %7.2f s\n", name, t["elapsed"]))
  val
}
named <- function(x, nm) as.list(setNames(as.numeric(x), nm))
# a matrix / data frame as {"rows": [...], <col>: {row: value}} with the columns renamed
table_of <- function(x, cols = colnames(x), keys = cols) {
  x <- as.data.frame(x, check.names = FALSE); rn <- rownames(x)
  c(list(rows = rn), setNames(lapply(cols, function(cl) named(x[[cl]], rn)), keys))
}
coef_table <- function(s) table_of(s$coefficients,
  c("Estimate", "Std. Error", "df", "t value", "Pr(>|t|)"),
  c("estimate", "std_error", "df", "t_value", "p_value"))
ci_table <- function(ci, level) list(level = level, columns = colnames(ci), rows = rownames(ci),
  lower = named(ci[, 1], rownames(ci)), upper = named(ci[, 2], rownames(ci)))
contest_of <- function(m, ddf) {
  ct <- as.data.frame(contest(m, L = c(0, 1), ddf = ddf), check.names = FALSE)
  list(L = c(0, 1), ddf = ddf, sum_sq = ct[["Sum Sq"]], mean_sq = ct[["Mean Sq"]],
       num_df = ct[["NumDF"]], den_df = ct[["DenDF"]], F_value = ct[["F value"]],
       p_value = ct[["Pr(>F)"]])
}
fit_of <- function(m) {
  th <- getME(m, "theta")
  out <- list(nobs = nobs(m), fixef = as.list(fixef(m)),
              se = as.list(sqrt(diag(as.matrix(vcov(m))))),
              vcov = unname(as.matrix(vcov(m))), theta = as.list(unname(th)), theta_names = as.list(names(th)),
              logLik = as.numeric(logLik(m)))
  if (isLMM(m)) {
    out$sigma <- sigma(m); out$REML <- isREML(m)
    if (isREML(m)) out$REMLcrit <- REMLcrit(m) else out$deviance <- deviance(m)
  } else out$deviance <- deviance(m)
  vc <- VarCorr(m)
  out$re_sd <- lapply(vc, function(v) as.list(attr(v, "stddev")))
  out$re_cor <- lapply(vc, function(v) if (ncol(v) > 1) attr(v, "correlation")[2, 1] else NULL)
  out$singular <- isSingular(m)
  out$optinfo_messages <- paste(m@optinfo$conv$lme4$messages, collapse = "; ")
  out
}
anova_of <- function(a) {
  a <- as.data.frame(a, check.names = FALSE)
  c(table_of(a), list(models = attr(a, "heading")))
}

# ---- data ---------------------------------------------------------------------------------
ss <- read.csv(file.path(datadir, "sleepstudy.csv")); ss$Subject <- factor(ss$Subject)
cbpp <- read.csv(file.path(datadir, "cbpp.csv"))
cbpp$herd <- factor(cbpp$herd); cbpp$period <- factor(cbpp$period)
k <- match(ss$Subject, levels(ss$Subject))
keep <- ss$Days < 10 - (k %% 5) & !(k %% 3 == 0 & ss$Days == 3)
# Subject kept as text so that write.csv quotes it, as in sleepstudy.csv
raw <- read.csv(file.path(datadir, "sleepstudy.csv"), colClasses = c(Subject = "character"))
write.csv(raw[keep, ], file.path(datadir, "sleepstudy_unbalanced.csv"), row.names = FALSE)
su <- read.csv(file.path(datadir, "sleepstudy_unbalanced.csv")); su$Subject <- factor(su$Subject)
stopifnot(identical(levels(su$Subject), levels(ss$Subject)), nrow(su) == sum(keep))
datasets <- list(sleepstudy = ss, sleepstudy_unbalanced = su)

out <- list(
  R = R.version.string, lme4 = as.character(packageVersion("lme4")),
  lmerTest = as.character(packageVersion("lmerTest")),
  pbkrtest = as.character(packageVersion("pbkrtest")),
  jsonlite = as.character(packageVersion("jsonlite")),
  script = "tests/reference/lme4_inference.R", seed = SEED,
  profile_note = paste("lme4's profile() refits a REML fit by ML first (devfun2 calls refitML),",
                       "so profile intervals of REML and ML fits are of the ML deviance"),
  data = list(
    sleepstudy = list(file = "tests/data/sleepstudy.csv", nobs = nrow(ss)),
    sleepstudy_unbalanced = list(
      file = "tests/data/sleepstudy_unbalanced.csv", nobs = nrow(su),
      rule = paste("subjects in factor-level order, k = 1..18: drop Days >= 10 - (k %% 5);",
                   "also drop Days == 3 when k %% 3 == 0"),
      n_per_subject = as.list(table(su$Subject))),
    cbpp = list(file = "tests/data/cbpp.csv", nobs = nrow(cbpp))))

formulas <- list(slope = Reaction ~ Days + (Days | Subject),
                 intercept = Reaction ~ Days + (1 | Subject))

# ---- 2, 3: per data set and model -----------------------------------------------------------
infer <- function(dname, mname, REML) {
  key <- paste(dname, mname, if (REML) "reml" else "ml", sep = "_")
  d <- datasets[[dname]]; f <- formulas[[mname]]
  e <- list(data = dname, formula = paste(deparse(f), collapse = " "), REML = REML)
  m <- part(paste0(key, "/fit"), lme4::lmer(f, d, REML = REML))
  mt <- part(paste0(key, "/fit_lmerTest"), lmerTest::lmer(f, d, REML = REML))
  e$fit <- fit_of(m)
  e$satterthwaite <- part(paste0(key, "/satterthwaite"),
                          coef_table(summary(mt, ddf = "Satterthwaite")))
  e$contest_days_satterthwaite <- part(paste0(key, "/contest_satterthwaite"),
                                       contest_of(mt, "Satterthwaite"))
  if (REML) {
    e$kenward_roger <- part(paste0(key, "/kenward_roger"),
                            coef_table(summary(mt, ddf = "Kenward-Roger")))
    e$contest_days_kenward_roger <- part(paste0(key, "/contest_kenward_roger"),
                                         contest_of(mt, "Kenward-Roger"))
  }
  e$confint_profile_95 <- part(paste0(key, "/confint_profile_95"),
                               ci_table(confint(m, method = "profile", level = 0.95), 0.95))
  e$confint_profile_80 <- part(paste0(key, "/confint_profile_80"),
                               ci_table(confint(m, method = "profile", level = 0.8), 0.8))
  e$confint_wald_95 <- part(paste0(key, "/confint_wald_95"),
                            ci_table(confint(m, method = "Wald", level = 0.95), 0.95))
  e$confint_profile_fine_95 <- part(paste0(key, "/confint_profile_fine_95"), {
    pr <- profile(m, delta = 0.02, maxpts = 400)
    c(ci_table(confint(pr, level = 0.95), 0.95),
      list(profile_call = "profile(m, delta = 0.02, maxpts = 400)",
           points_per_parameter = as.list(table(pr$.par))))
  })
  out[[key]] <<- e
  invisible(m)
}
for (dname in names(datasets)) for (mname in names(formulas)) infer(dname, mname, TRUE)
infer("sleepstudy", "slope", FALSE)

# ---- 4: likelihood-ratio tests --------------------------------------------------------------
m0 <- lme4::lmer(Reaction ~ Days + (1 | Subject), ss)
m1 <- lme4::lmer(Reaction ~ Days + (Days | Subject), ss)
out$anova_intercept_vs_slope <- part("anova_intercept_vs_slope", c(
  list(call = "anova(m0, m1)", m0 = "Reaction ~ Days + (1 | Subject)",
       m1 = "Reaction ~ Days + (Days | Subject)", fits = "REML", refit = TRUE),
  anova_of(anova(m0, m1))))
m0 <- lme4::lmer(Reaction ~ 1 + (Days | Subject), ss)
out$anova_no_days_vs_days <- part("anova_no_days_vs_days", c(
  list(call = "anova(m0, m1)", m0 = "Reaction ~ 1 + (Days | Subject)",
       m1 = "Reaction ~ Days + (Days | Subject)", fits = "REML", refit = TRUE),
  anova_of(anova(m0, m1))))
m0 <- lme4::lmer(Reaction ~ Days + (1 | Subject), ss)
out$anova_intercept_vs_slope_norefit <- part("anova_intercept_vs_slope_norefit", c(
  list(call = "anova(m0, m1, refit = FALSE)", m0 = "Reaction ~ Days + (1 | Subject)",
       m1 = "Reaction ~ Days + (Days | Subject)", fits = "REML", refit = FALSE),
  anova_of(anova(m0, m1, refit = FALSE))))
g0 <- part("cbpp_g0_fit", glmer(cbind(incidence, size - incidence) ~ 1 + (1 | herd), cbpp,
                                family = binomial))
g1 <- part("cbpp_g1_fit", glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp,
                                family = binomial))
out$anova_cbpp <- part("anova_cbpp", c(
  list(call = "anova(g0, g1)", g0 = "cbind(incidence, size - incidence) ~ 1 + (1 | herd)",
       g1 = "cbind(incidence, size - incidence) ~ period + (1 | herd)",
       family = "binomial", nAGQ = 1),
  anova_of(anova(g0, g1))))

# ---- 5: cbpp confidence intervals -----------------------------------------------------------
out$cbpp_period <- list(
  formula = "cbind(incidence, size - incidence) ~ period + (1 | herd)", family = "binomial",
  nAGQ = 1, fit = fit_of(g1),
  confint_profile_95 = part("cbpp_period/confint_profile_95",
                            ci_table(confint(g1, method = "profile", level = 0.95), 0.95)),
  confint_wald_95 = part("cbpp_period/confint_wald_95",
                         ci_table(confint(g1, method = "Wald", level = 0.95), 0.95)),
  confint_profile_fine_95 = part("cbpp_period/confint_profile_fine_95", {
    pr <- profile(g1, delta = 0.02, maxpts = 400)
    c(ci_table(confint(pr, level = 0.95), 0.95),
      list(profile_call = "profile(g1, delta = 0.02, maxpts = 400)",
           points_per_parameter = as.list(table(pr$.par))))
  }))

# ---- 6: parametric bootstrap ----------------------------------------------------------------
boot_stat <- function(m) c(fixef(m), sigma = sigma(m), sd = attr(VarCorr(m)$Subject, "stddev"))
set.seed(SEED)
b <- part("bootstrap/bootMer", bootMer(m1, boot_stat, nsim = NSIM, use.u = FALSE,
                                       type = "parametric"))
bt <- b$t; st <- colnames(bt)
q <- apply(bt, 2, quantile, probs = c(0.025, 0.975), type = 7, na.rm = TRUE)
msgs <- attr(b, "boot.all.msgs")
set.seed(SEED)
ci_boot <- part("bootstrap/confint_boot", confint(m1, method = "boot", nsim = NSIM,
                                                  boot.type = "perc"))
out$bootstrap_sleepstudy_slope_reml <- list(
  formula = "Reaction ~ Days + (Days | Subject)", REML = TRUE, seed = SEED, nsim = NSIM,
  call = paste("set.seed(2026); bootMer(m1, function(m) c(fixef(m), sigma = sigma(m),",
               "sd = attr(VarCorr(m)$Subject, 'stddev')), nsim = 2000, use.u = FALSE,",
               "type = 'parametric')"),
  statistics = st, t0 = named(b$t0, st),
  n_failed = attr(b, "bootFail"), n_na = as.list(setNames(colSums(is.na(bt)), st)),
  messages = lapply(msgs, function(x) if (length(x)) as.list(x) else NULL),
  q025 = named(q[1, ], st), q975 = named(q[2, ], st),
  mean = named(colMeans(bt, na.rm = TRUE), st), sd = named(apply(bt, 2, sd, na.rm = TRUE), st),
  replicates = setNames(lapply(seq_along(st), function(j) signif(unname(bt[, j]), 8)), st),
  seconds_bootMer = timing[["bootstrap/bootMer"]],
  confint_boot_perc = c(ci_table(ci_boot, 0.95),
                        list(call = paste("set.seed(2026); confint(m1, method = 'boot',",
                                          "nsim = 2000, boot.type = 'perc')"),
                             seconds = timing[["bootstrap/confint_boot"]])))

# ---- 7: references at the exact optimum ("_tight") -------------------------------------------
# lme4's default optimizers stop slightly short of the optimum. The "_tight" entries refit with
#   TIGHT_LMER = lmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-12, maxfun = 1e5))
# (every other setting as before; new objects, the fits above are not touched). For cbpp the
# shortfall is mostly lme4's PIRLS tolerance (tolPwrss = 1e-7: the conditional modes u of the
# Laplace approximation are not fully converged), so several controls (with and without
# tolPwrss = 1e-12, each also restarted from its own optimum) are tried and the best logLik kept.
TIGHT_OPT <- list(rhoend = 1e-12, maxfun = 1e5)
TIGHT_LMER <- lmerControl(optimizer = "bobyqa", optCtrl = TIGHT_OPT)
TIGHT_LMER_TEXT <- paste('lmerControl(optimizer = "bobyqa",',
                         'optCtrl = list(rhoend = 1e-12, maxfun = 1e5))')
max_abs_grad <- function(m) {
  g <- m@optinfo$derivs$gradient
  if (is.null(g)) NULL else max(abs(g))
}
infer_tight <- function(dname, mname, REML) {
  base <- paste(dname, mname, if (REML) "reml" else "ml", sep = "_")
  key <- paste0(base, "_tight")
  d <- datasets[[dname]]; f <- formulas[[mname]]
  e <- list(data = dname, formula = paste(deparse(f), collapse = " "), REML = REML,
            control = TIGHT_LMER_TEXT, default_entry = base)
  m <- part(paste0(key, "/fit"), lme4::lmer(f, d, REML = REML, control = TIGHT_LMER))
  mt <- part(paste0(key, "/fit_lmerTest"),
             lmerTest::lmer(f, d, REML = REML, control = TIGHT_LMER))
  e$fit <- fit_of(m)
  e$max_abs_grad <- max_abs_grad(m)
  e$max_abs_grad_lmerTest <- max_abs_grad(mt)
  e$satterthwaite <- part(paste0(key, "/satterthwaite"),
                          coef_table(summary(mt, ddf = "Satterthwaite")))
  if (REML) e$kenward_roger <- part(paste0(key, "/kenward_roger"),
                                    coef_table(summary(mt, ddf = "Kenward-Roger")))
  e$confint_profile_95 <- part(paste0(key, "/confint_profile_95"),
                               ci_table(confint(m, method = "profile", level = 0.95), 0.95))
  out[[key]] <<- e
  invisible(m)
}
for (dname in names(datasets)) for (mname in names(formulas)) infer_tight(dname, mname, TRUE)
infer_tight("sleepstudy", "slope", FALSE)

anova_tight <- function(key, f0, f1) {
  mt0 <- part(paste0(key, "/fit_m0"), lme4::lmer(f0, ss, REML = FALSE, control = TIGHT_LMER))
  mt1 <- part(paste0(key, "/fit_m1"), lme4::lmer(f1, ss, REML = FALSE, control = TIGHT_LMER))
  out[[key]] <<- part(key, c(
    list(call = "anova(m0, m1)", m0 = paste(deparse(f0), collapse = " "),
         m1 = paste(deparse(f1), collapse = " "), fits = "ML", refit = FALSE,
         control = TIGHT_LMER_TEXT,
         max_abs_grad = list(m0 = max_abs_grad(mt0), m1 = max_abs_grad(mt1))),
    anova_of(anova(mt0, mt1))))
}
anova_tight("anova_intercept_vs_slope_tight", Reaction ~ Days + (1 | Subject),
            Reaction ~ Days + (Days | Subject))
anova_tight("anova_no_days_vs_days_tight", Reaction ~ 1 + (Days | Subject),
            Reaction ~ Days + (Days | Subject))

# cbpp: the glmer call is built with its control (and start) inlined, so that the refits made
# by profile() (update(fit, devFunOnly = TRUE)) use the same settings
NLOPT_OPT <- list(algorithm = "NLOPT_LN_BOBYQA", xtol_abs = 1e-14, ftol_abs = 1e-14,
                  maxeval = 1e5)
glmm_controls <- list(
  bobyqa = list(ctrl = glmerControl(optimizer = "bobyqa", optCtrl = TIGHT_OPT),
                text = paste('glmerControl(optimizer = "bobyqa",',
                             'optCtrl = list(rhoend = 1e-12, maxfun = 1e5))')),
  nloptwrap = list(ctrl = glmerControl(optimizer = "nloptwrap", optCtrl = NLOPT_OPT),
                   text = paste('glmerControl(optimizer = "nloptwrap", optCtrl = list(algorithm =',
                                '"NLOPT_LN_BOBYQA", xtol_abs = 1e-14, ftol_abs = 1e-14,',
                                'maxeval = 1e5))')),
  bobyqa_tolPwrss = list(
    ctrl = glmerControl(optimizer = "bobyqa", optCtrl = TIGHT_OPT, tolPwrss = 1e-12),
    text = paste('glmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-12,',
                 'maxfun = 1e5), tolPwrss = 1e-12)')),
  nloptwrap_tolPwrss = list(
    ctrl = glmerControl(optimizer = "nloptwrap", optCtrl = NLOPT_OPT, tolPwrss = 1e-12),
    text = paste('glmerControl(optimizer = "nloptwrap", optCtrl = list(algorithm =',
                 '"NLOPT_LN_BOBYQA", xtol_abs = 1e-14, ftol_abs = 1e-14, maxeval = 1e5),',
                 'tolPwrss = 1e-12)')))
glmer_tight <- function(f, ctrl, start = NULL) {
  cl <- if (is.null(start))
    bquote(glmer(.(f), data = cbpp, family = binomial, control = .(ctrl)))
  else bquote(glmer(.(f), data = cbpp, family = binomial, control = .(ctrl), start = .(start)))
  eval(cl)
}
# every control, then a restart from its optimum; keep the highest logLik
best_glmer <- function(name, f) {
  best <- NULL; tried <- list()
  for (cn in names(glmm_controls)) {
    g <- part(paste0(name, "/", cn), glmer_tight(f, glmm_controls[[cn]]$ctrl))
    st <- list(theta = unname(getME(g, "theta")), fixef = fixef(g))
    g2 <- part(paste0(name, "/", cn, "_restart"), glmer_tight(f, glmm_controls[[cn]]$ctrl, st))
    for (cand in list(list(g = g, label = cn, restart = FALSE),
                      list(g = g2, label = paste0(cn, "_restart"), restart = TRUE))) {
      ll <- as.numeric(logLik(cand$g))
      tried[[cand$label]] <- list(logLik = ll, max_abs_grad = max_abs_grad(cand$g))
      if (is.null(best) || ll > best$logLik)
        best <- list(g = cand$g, logLik = ll, control_name = cn,
                     control = glmm_controls[[cn]]$text, restart = cand$restart)
    }
  }
  best$candidates <- tried
  best
}
f_g0 <- cbind(incidence, size - incidence) ~ 1 + (1 | herd)
f_g1 <- cbind(incidence, size - incidence) ~ period + (1 | herd)
bt0 <- best_glmer("cbpp_g0_tight", f_g0)
bt1 <- best_glmer("cbpp_g1_tight", f_g1)
stopifnot(bt1$logLik > as.numeric(logLik(g1)), bt0$logLik >= as.numeric(logLik(g0)))
gt0 <- bt0$g; gt1 <- bt1$g
choice_of <- function(b, gdef) list(
  control = b$control, control_name = b$control_name,
  restart_from_previous_optimum = b$restart, logLik = b$logLik,
  logLik_default = as.numeric(logLik(gdef)), logLik_gain = b$logLik - as.numeric(logLik(gdef)),
  max_abs_grad = max_abs_grad(b$g), candidates = b$candidates)
out$anova_cbpp_tight <- part("anova_cbpp_tight", c(
  list(call = "anova(g0, g1)", g0 = "cbind(incidence, size - incidence) ~ 1 + (1 | herd)",
       g1 = "cbind(incidence, size - incidence) ~ period + (1 | herd)",
       family = "binomial", nAGQ = 1,
       tight = list(g0 = choice_of(bt0, g0), g1 = choice_of(bt1, g1))),
  anova_of(anova(gt0, gt1))))
out$cbpp_period_tight <- c(
  list(formula = "cbind(incidence, size - incidence) ~ period + (1 | herd)",
       family = "binomial", nAGQ = 1, tight = choice_of(bt1, g1), fit = fit_of(gt1)),
  list(confint_profile_95 = part("cbpp_period_tight/confint_profile_95",
         ci_table(confint(gt1, method = "profile", level = 0.95), 0.95)),
       confint_wald_95 = part("cbpp_period_tight/confint_wald_95",
         ci_table(confint(gt1, method = "Wald", level = 0.95), 0.95))))

# ---- 8: a fixed-effect likelihood-ratio test and residuals --------------------------------
#  * anova_intercept_vs_days_tight: Reaction ~ 1 + (1 | Subject) vs Reaction ~ Days +
#    (1 | Subject), both ML with TIGHT_LMER (as section 7's anova_*_tight).
#  * residuals_sleepstudy_slope: residuals(m1, type = "response" / "pearson"),
#    residuals(m1, scaled = TRUE), of the default REML fit; residuals_cbpp_g1_tight: of the
#    tight cbpp fit, type = "response" / "pearson" / "deviance" (lme4's default for glmer).
anova_tight("anova_intercept_vs_days_tight", Reaction ~ 1 + (1 | Subject),
            Reaction ~ Days + (1 | Subject))
m_res <- lme4::lmer(Reaction ~ Days + (Days | Subject), ss)
out$residuals_sleepstudy_slope <- list(
  formula = "Reaction ~ Days + (Days | Subject)", REML = TRUE,
  response = as.numeric(residuals(m_res, type = "response")),
  pearson = as.numeric(residuals(m_res, type = "pearson")),
  scaled = as.numeric(residuals(m_res, scaled = TRUE)),
  fitted = as.numeric(fitted(m_res)))
out$residuals_cbpp_g1_tight <- list(
  formula = "cbind(incidence, size - incidence) ~ period + (1 | herd)",
  control = bt1$control,
  response = as.numeric(residuals(gt1, type = "response")),
  pearson = as.numeric(residuals(gt1, type = "pearson")),
  deviance = as.numeric(residuals(gt1, type = "deviance")),
  fitted = as.numeric(fitted(gt1)))

# ---- 9: several grouping factors ------------------------------------------------------------
#  * penicillin_tight: diameter ~ 1 + (1 | plate) + (1 | sample) (crossed), pastes_tight:
#    strength ~ 1 + (1 | batch/cask) (nested), penicillin_unbalanced_tight: Penicillin without
#    the rows of plates a..f for samples A, B (an unbalanced crossed design: 132 rows) and
#    with a covariate x = (row number mod 7) / 7, diameter ~ x + (1 | plate) + (1 | sample);
#    REML, TIGHT_LMER: fit, lmerTest Satterthwaite and Kenward-Roger coefficients,
#    confint profile 0.95.
pen <- read.csv(file.path(datadir, "Penicillin.csv"))
pen$plate <- factor(pen$plate); pen$sample <- factor(pen$sample)
pas <- read.csv(file.path(datadir, "Pastes.csv"))
pas$batch <- factor(pas$batch); pas$cask <- factor(pas$cask)
penu <- pen[!(pen$plate %in% c("a", "b", "c", "d", "e", "f") & pen$sample %in% c("A", "B")), ]
penu$x <- (as.integer(rownames(penu)) %% 7) / 7
multi_tight <- function(key, f, d) {
  m <- part(paste0(key, "/fit"), lme4::lmer(f, d, control = TIGHT_LMER))
  mt <- part(paste0(key, "/fit_lmerTest"), lmerTest::lmer(f, d, control = TIGHT_LMER))
  out[[key]] <<- list(
    formula = paste(deparse(f), collapse = " "), REML = TRUE, control = TIGHT_LMER_TEXT,
    rows_used = nrow(d), fit = fit_of(m), max_abs_grad = max_abs_grad(m),
    satterthwaite = part(paste0(key, "/satterthwaite"),
                         coef_table(summary(mt, ddf = "Satterthwaite"))),
    kenward_roger = part(paste0(key, "/kenward_roger"),
                         coef_table(summary(mt, ddf = "Kenward-Roger"))),
    confint_profile_95 = part(paste0(key, "/confint_profile_95"),
                              ci_table(confint(m, method = "profile", level = 0.95), 0.95)))
}
multi_tight("penicillin_tight", diameter ~ 1 + (1 | plate) + (1 | sample), pen)
multi_tight("pastes_tight", strength ~ 1 + (1 | batch/cask), pas)
multi_tight("penicillin_unbalanced_tight", diameter ~ x + (1 | plate) + (1 | sample), penu)

# ---- 10: a GLMM with crossed factors --------------------------------------------------------
#  * glmm_crossed_binomial_tight: glmm_slopes.csv (3,000 simulated rows, 60 x 30 crossed
#    levels), y ~ x + (1 | g1) + (1 | g2), binomial Laplace, glmer with bobyqa rhoend = 1e-12
#    and tolPwrss = 1e-12: fit, confint profile 0.95 and a finer profile (delta = 0.05).
gs <- read.csv(file.path(datadir, "glmm_slopes.csv"))
gs$g1 <- factor(gs$g1); gs$g2 <- factor(gs$g2)
gctl <- glmerControl(optimizer = "bobyqa", optCtrl = TIGHT_OPT, tolPwrss = 1e-12)
gx <- part("glmm_crossed_binomial_tight/fit",
           eval(bquote(glmer(y ~ x + (1 | g1) + (1 | g2), data = gs, family = binomial,
                             control = .(gctl)))))
out$glmm_crossed_binomial_tight <- list(
  formula = "y ~ x + (1 | g1) + (1 | g2)", family = "binomial", nAGQ = 1,
  control = paste('glmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-12,',
                  'maxfun = 1e5), tolPwrss = 1e-12)'),
  fit = fit_of(gx), max_abs_grad = max_abs_grad(gx),
  confint_profile_95 = part("glmm_crossed_binomial_tight/confint_profile_95",
                            ci_table(confint(gx, method = "profile", level = 0.95), 0.95)),
  confint_profile_fine_95 = part("glmm_crossed_binomial_tight/confint_profile_fine_95",
                                 ci_table(confint(profile(gx, delta = 0.05, maxpts = 200),
                                                  level = 0.95), 0.95)))

out$timing <- timing
out$warnings <- warns
out$total_seconds <- sum(unlist(timing))
write_json(out, file.path(outdir, "lme4_inference.json"), digits = NA, auto_unbox = TRUE,
           pretty = TRUE, null = "null", na = "null")
cat("ok\n")
