"""Figure names, declared once: ``etc report`` draws these (etc.report.build) and the workflow
declares them as outputs (workflow/rules/common.smk, report.smk), each with the caption
``workflow/report/<name>.rst`` and the report category given here. Kept free of heavy imports:
the Snakefile reads it."""

REPORT_FIGURES = {
    "miou_vs_tc": "Results",
    "class_iou": "Accuracy",
    "tc_per_clip": "Consistency",
    "training_curves": "Training",
    "miou_vs_latency": "Keyframe",
    "tc_vs_latency": "Keyframe",
    "latency_trace": "Keyframe",
}

# `etc bench` draws the wall time of every rule beside its CSV (etc.bench.bench_rules).
BENCH_FIGURE = "bench_rules"
