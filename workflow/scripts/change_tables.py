"""All pairs' change volumes in one table (results/imaging/change.csv) and per region
(lungtrial.imaging.change.change_table)."""

import json
from pathlib import Path

import pandas as pd

from lungtrial.imaging.change import change_table
from lungtrial.io import write_csv
from lungtrial.wfutil import setup_logging

log = setup_logging(snakemake.log[0])
info = snakemake.params.follow_ups
pairs = []
for volumes, qc in zip(snakemake.input.volumes, snakemake.input.qc, strict=True):
    content = json.loads(Path(qc).read_text())
    pairs.append((info[content["follow_up"]], content, pd.read_csv(volumes)))
change, regions = change_table(pairs, snakemake.params.arms, snakemake.params.visits)
write_csv(change, snakemake.output.change)
write_csv(regions, snakemake.output.regions)
counts = change["status"].value_counts().to_dict() if len(change) else {}
log.info("%d pairs: %s", len(change), counts)
