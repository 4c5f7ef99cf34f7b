"""Kaplan-Meier curves of the analysis plan's time-to-event outcomes by arm, with log-rank p."""

import pandas as pd

from lungtrial import io, plots
from lungtrial.wfutil import setup_logging

log = setup_logging(snakemake.log[0])
p = snakemake.params.plots
subjects = pd.read_parquet(snakemake.input.subjects)
arms, colors = plots.arms_and_colors(subjects, p["reference_arm"], p["treatment_arm"])
endpoints = {name: tuple(spec) for name, spec in snakemake.params.time_to_event.items()} or None
fig = plots.plot_kaplan_meier(
    subjects, arms, colors, p["reference_arm"], p["treatment_arm"], p["min_per_arm"], p["confidence"], endpoints
)
io.write_figure(fig, snakemake.output.png, snakemake.output.svg)
