"""lungtrial: serial chest CT opacity, labs and outcomes of a clinical trial, compared between arms."""

from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/demo.smk"
include: "workflow/rules/imaging.smk"
include: "workflow/rules/clinical.smk"
include: "workflow/rules/stats.smk"
include: "workflow/rules/plots.smk"


rule all:
    default_target: True
    input:
        imaging_targets(),
        clinical_targets(),
        stats_targets(),
        plots_targets(),
