"""Change from baseline of opacity and consolidation by visit and arm (box + points)."""

import pandas as pd

from lungtrial import plots, stats
from lungtrial.wfutil import setup_logging

log = setup_logging(snakemake.log[0])
p = snakemake.params.plots
scans = pd.read_parquet(snakemake.input.scans)
arms, colors = plots.arms_and_colors(scans, p["reference_arm"], p["treatment_arm"])
metrics = [m for m in stats.IMAGING_ENDPOINTS if m in scans.columns]
change = stats.change_from_baseline(scans, metrics, p["visits"])
fig = plots.plot_change_by_visit(change, p["visits"][1:], arms, colors, stats.IMAGING_ENDPOINTS)
plots.save_figure(fig, snakemake.output.png, snakemake.output.svg)
log.info("%d changes from baseline plotted", len(change))
