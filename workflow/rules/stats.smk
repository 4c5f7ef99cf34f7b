"""Exploratory statistics: Table 1, outcomes and imaging change by arm, mixed models, time to event."""


rule stats_tables:
    input:
        **TABLES,
    output:
        table1=report(
            "results/stats/table1.csv",
            caption="../report/stats_table1.rst",
            category="Statistics (exploratory)",
            labels={"table": "Table 1: baseline by arm"},
        ),
        binary=report(
            "results/stats/binary_outcomes.csv",
            caption="../report/stats_binary.rst",
            category="Outcomes",
            labels={"table": "binary outcomes"},
        ),
        continuous=report(
            "results/stats/continuous_outcomes.csv",
            caption="../report/stats_continuous.rst",
            category="Outcomes",
            labels={"table": "continuous outcomes"},
        ),
        imaging_change=report(
            "results/stats/imaging_change.csv",
            caption="../report/stats_imaging_change.rst",
            category="Statistics (exploratory)",
            labels={"table": "imaging change from baseline"},
        ),
        survival=report(
            "results/stats/survival.csv",
            caption="../report/stats_survival.rst",
            category="Outcomes",
            labels={"table": "time to event"},
        ),
    log:
        "logs/stats_tables/all.log",
    conda:
        "../../envs/stats.yaml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=10,
    params:
        stats=STATS_PARAMS,
        hu_classes=HU_CLASSES,
    script:
        "../scripts/stats_tables.py"


rule stats_mixed_models:
    input:
        scans=TABLES["scans"],
        labs=TABLES["labs"],
    output:
        report(
            "results/stats/mixed_models.csv",
            caption="../report/stats_mixed_models.rst",
            category="Statistics (exploratory)",
            labels={"table": "mixed models"},
        ),
    log:
        "logs/stats_mixed_models/all.log",
    conda:
        "../../envs/stats.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        stats=STATS_PARAMS,
    script:
        "../scripts/stats_mixed_models.py"
