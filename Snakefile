"""lungtrial: serial chest CT opacity, labs and outcomes of a clinical trial, compared between arms."""

import os
import sys

from snakemake.utils import min_version

# lungtrial.runlog reads the records of Snakemake's console logger as 9.27 makes them (pyproject.toml pins it)
min_version("9.27")


configfile: "config/config.yaml"


# The lungtrial library of this checkout, for the workflow itself and for its jobs (also in conda envs and on
# cluster nodes).
_src = os.path.join(workflow.basedir, "src")
sys.path.insert(0, _src)
os.environ.update(
    PYTHONPATH=os.pathsep.join(filter(None, [_src, os.getenv("PYTHONPATH")]))
)

# Lock files left by a run that was killed are removed when no other Snakemake process of this workflow is alive in
# the folder, so that the plain `snakemake --cores N` resumes it (lungtrial.runlock, docs/reruns.md).
# A job that stops on bad input is printed as its one line (rule, where and what, log), not as Snakemake's failure
# block (lungtrial.runlog, docs/errors.md).
if workflow.is_main_process:
    from lungtrial.runlock import release_stale_locks
    from lungtrial.runlog import report_input_errors_briefly

    report_input_errors_briefly()

    if release_stale_locks(unlocking="--unlock" in sys.argv):
        print(
            "lungtrial: removed the locks left by an interrupted run", file=sys.stderr
        )


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/demo.smk"
include: "workflow/rules/imaging.smk"
include: "workflow/rules/serial.smk"
include: "workflow/rules/clinical.smk"
include: "workflow/rules/stats.smk"
include: "workflow/rules/plots.smk"
include: "workflow/rules/change.smk"


rule all:
    default_target: True
    input:
        imaging_targets(),
        clinical_targets(),
        stats_targets(),
        plots_targets(),
