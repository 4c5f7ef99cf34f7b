"""Exploratory statistics: Table 1, outcomes and imaging change by arm, mixed models, time to event."""

from lungtrial.metrics import PRESETS

VISIT_WINDOWS = config["clinical"]["visits"]
# Arms, test threshold and nominal visits (baseline first), shared by the statistics and plot rules.
STATS_PARAMS = {
    "reference_arm": config["stats"]["reference_arm"],
    "treatment_arm": config["stats"]["treatment_arm"],
    "min_per_arm": config["stats"]["min_per_arm"],
    "confidence": 1 - config["stats"]["alpha"],
    "visits": sorted(VISIT_WINDOWS, key=lambda name: VISIT_WINDOWS[name][0]),
    "has_adverse_events": bool(AE_SHEET),
    "subjects_per_arm": {
        arm: int(n) for arm, n in SUBJECTS["arm"].value_counts().sort_index().items()
    },
}
# The imaging preset's HU classes as text for captions, e.g. "ground glass (-700, -300] HU".
HU_CLASSES = f"{config['imaging']['preset']} preset: " + "; ".join(
    c.name.replace("_", " ")
    + (
        f" <= {c.upper:g} HU"
        if c.lower is None
        else (
            f" > {c.lower:g} HU"
            if c.upper is None
            else f" ({c.lower:g}, {c.upper:g}] HU"
        )
    )
    for c in PRESETS[config["imaging"]["preset"]]
)


TABLES = {
    name: f"results/tables/{name}.parquet"
    for name in ("subjects", "labs", "scans", "adverse_events")
}


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
