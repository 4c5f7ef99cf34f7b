"""Kaplan-Meier curves of time to symptom resolution and to discharge by arm, with log-rank p."""

import pandas as pd

from lungtrial import plots
from lungtrial.wfutil import setup_logging

log = setup_logging(snakemake.log[0])
p = snakemake.params.plots
subjects = pd.read_parquet(snakemake.input.subjects)
arms, colors = plots.arms_and_colors(subjects, p["reference_arm"], p["treatment_arm"])
fig = plots.plot_kaplan_meier(
    subjects, arms, colors, p["reference_arm"], p["treatment_arm"], p["min_per_arm"], p["confidence"]
)
plots.save_figure(fig, snakemake.output.png, snakemake.output.svg)
