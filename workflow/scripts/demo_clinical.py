"""Write the demo trial's clinical sheets (subjects, labs, adverse events)."""

from pathlib import Path

from lungtrial.demo import design, write_clinical
from lungtrial.wfutil import setup_logging

log = setup_logging(snakemake.log[0])
opts = snakemake.params
trial = design(n_per_arm=opts.n_per_arm, seed=opts.seed, timepoints=tuple(opts.timepoints))
outdir = Path(snakemake.output.subjects).parent
write_clinical(trial, outdir)
log.info("demo clinical sheets written for %d subjects", len(trial.subjects))
