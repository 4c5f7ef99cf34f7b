"""Resolved fraction and new-lesion volume by visit and arm (lungtrial.plots.plot_change_endpoints)."""

import pandas as pd

from lungtrial import io, plots
from lungtrial.wfutil import setup_logging

log = setup_logging(snakemake.log[0])
p = snakemake.params.plots
change = pd.read_csv(snakemake.input.change, dtype={"visit": str}, keep_default_na=False, na_values=[""])
arms, colors = plots.arms_and_colors(change, p["reference_arm"], p["treatment_arm"])
fig = plots.plot_change_endpoints(change, p["visits"][1:], arms, colors)
io.write_figure(fig, snakemake.output.png, snakemake.output.svg)
log.info("%d pairs plotted", int((change["status"] == "ok").sum()))
