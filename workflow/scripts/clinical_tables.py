"""Subjects, labs (harmonised, validated, with study days and visits) and adverse events from the sheets.

The subjects sheet keeps the columns the analysis plan (config ``analysis``) reads, checked by their kind; the
baseline visit of a lab is the last value before the plan's first dose on day 0 (both given by the rule's params).
"""

from lungtrial import clinical, io
from lungtrial.wfutil import setup_logging

log = setup_logging(snakemake.log[0])
inp, out, params = snakemake.input, snakemake.output, snakemake.params

catalog = clinical.load_catalog(inp.units, inp.analytes)
subjects = clinical.read_subjects(inp.subjects, params.subject_columns)
labs, dropped = clinical.read_labs(
    list(inp.labs),
    subjects,
    catalog,
    visits=params.visits,
    on_unknown=params.on_unknown,
    tolerance_days=params.tolerance_days,
    first_dose_day=params.first_dose_day,
)
adverse_events = clinical.read_adverse_events(next(iter(inp.adverse_events), None), subjects)

io.write_table(clinical.subject_table(subjects, labs), out.subjects)
io.write_table(labs, out.labs_csv, out.labs)
io.write_table(adverse_events, out.adverse_events_csv, out.adverse_events)
io.write_table(dropped, out.dropped)
io.write_table(clinical.lab_coverage(labs), out.coverage)
log.info(
    "%d subjects, %d lab values (%d dropped), %d adverse events",
    len(subjects),
    len(labs),
    len(dropped),
    len(adverse_events),
)
