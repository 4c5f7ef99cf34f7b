"""Write one demo scan: a study folder of DICOM files and its truth."""

from pathlib import Path

from lungtrial.demo import design, write_scan
from lungtrial.wfutil import setup_logging

log = setup_logging(snakemake.log[0])
opts = snakemake.params
trial = design(n_per_arm=opts.n_per_arm, seed=opts.seed, timepoints=tuple(opts.timepoints))
scan = snakemake.wildcards.scan
write_scan(trial, scan, snakemake.output.dicom, Path(snakemake.output.truth).parent, size=opts.size)
log.info("demo scan %s written", scan)
