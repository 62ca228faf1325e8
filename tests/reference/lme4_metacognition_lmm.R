# lme4's REML fit of confidence ~ visibility + (1 | id) on the Metacognition data, summarized by
# make_ref.R's summ() (the same fields as the other lme4_*.json). Written after the JSON,
# whose script was not kept: it reproduces its REML criterion, and θ to 5e-8 (README.md).
# Run in this folder (it reads make_ref.R's helpers):
#     Rscript lme4_metacognition_lmm.R ../data/metacognition.csv lme4_metacognition_lmm.json
suppressMessages({library(lme4); library(jsonlite)})
src <- readLines("make_ref.R"); eval(parse(text = src[grep("^re_list", src):grep("^fitlmm", src)]))
a <- commandArgs(TRUE)
d <- read.csv(a[1]); d$id <- factor(d$id)
out <- list(lmm_visibility = fitlmm(confidence ~ visibility + (1 | id), d))
write_json(out, a[2], digits = NA, auto_unbox = TRUE, pretty = TRUE, na = "null")
cat("ok\n")
