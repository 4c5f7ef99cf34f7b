"""Opacity vs the PaO2/FiO2 value joined to each scan, by arm, with Spearman correlation; censored values where the
plan's censoring rule puts them."""

import pandas as pd

from lungtrial import io, plots
from lungtrial.wfutil import setup_logging

log = setup_logging(snakemake.log[0])
p = snakemake.params.plots
scans = pd.read_parquet(snakemake.input.scans)
arms, colors = plots.arms_and_colors(scans, p["reference_arm"], p["treatment_arm"])
fig = plots.plot_opacity_vs_lab(scans, arms, colors, censor_rule=snakemake.params.censoring)
io.write_figure(fig, snakemake.output.png, snakemake.output.svg)
