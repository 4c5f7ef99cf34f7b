"""Swimmer plot: each subject's stay with infusions, scans, ventilation and discharge."""

import pandas as pd

from lungtrial import io, plots
from lungtrial.wfutil import setup_logging

log = setup_logging(snakemake.log[0])
p = snakemake.params.plots
subjects = pd.read_parquet(snakemake.input.subjects)
scans = pd.read_parquet(snakemake.input.scans)
arms, colors = plots.arms_and_colors(subjects, p["reference_arm"], p["treatment_arm"])
fig = plots.plot_swimmer(subjects, scans, arms, colors, p["treatment_arm"], p["infusion_days"])
io.write_figure(fig, snakemake.output.png, snakemake.output.svg)
