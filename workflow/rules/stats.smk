"""Statistics by the trial's analysis plan (config analysis, PLAN of common.smk): the primary endpoint, then
secondary and exploratory comparisons with multiplicity adjusted within families; Table 1; mixed models and their
sensitivity to the censoring rule. Parameters (STATS_PARAMS, PLAN_PARAMS, PLAN_LONGITUDINAL, PLAN_COVARIANCE,
MODEL_SETTINGS, HU_CLASSES) are defined in common.smk."""

# With a death column in the plan: the cumulative incidence with death as a competing event.
COMPETING_RISK = (
    {
        "competing_risk": report(
            "results/stats/competing_risk.csv",
            caption="../report/stats_competing_risk.rst",
            category="Statistics 3: comparisons by outcome type",
            labels={"table": "time to event, death competing"},
        )
    }
    if PLAN.death_column
    else {}
)

# With change-map endpoints in the plan (source: change), the change maps' table is an input of the statistics.
CHANGE_ENDPOINTS = PLAN.change_endpoints()
if CHANGE_ENDPOINTS and not CHANGE_ENABLED:
    stop(
        f"config {CHANGE_ENDPOINTS[0].key} ({CHANGE_ENDPOINTS[0].name}): a change-map endpoint (source: change) "
        "needs the change maps; expected registration.enabled: true"
    )
CHANGE_TABLE = {"change": "results/imaging/change.csv"} if CHANGE_ENDPOINTS else {}


rule stats_tables:
    input:
        **TABLES,
        **CHANGE_TABLE,
    output:
        **COMPETING_RISK,
        primary=report(
            "results/stats/primary_endpoint.csv",
            caption="../report/stats_primary.rst",
            category="Statistics 1: primary endpoint",
            labels={"table": "primary endpoint"},
        ),
        outcomes=report(
            "results/stats/outcomes.csv",
            caption="../report/stats_outcomes.rst",
            category="Statistics 2: all comparisons by the analysis plan",
            labels={"table": "primary, secondary, exploratory"},
        ),
        imaging_change=report(
            "results/stats/imaging_change.csv",
            caption="../report/stats_imaging_change.rst",
            category="Statistics 3: comparisons by outcome type",
            labels={"table": "imaging change from baseline"},
        ),
        survival=report(
            "results/stats/survival.csv",
            caption="../report/stats_survival.rst",
            category="Statistics 3: comparisons by outcome type",
            labels={"table": "time to event"},
        ),
        binary=report(
            "results/stats/binary_outcomes.csv",
            caption="../report/stats_binary.rst",
            category="Statistics 3: comparisons by outcome type",
            labels={"table": "binary outcomes"},
        ),
        continuous=report(
            "results/stats/continuous_outcomes.csv",
            caption="../report/stats_continuous.rst",
            category="Statistics 3: comparisons by outcome type",
            labels={"table": "continuous outcomes"},
        ),
        table1=report(
            "results/stats/table1.csv",
            caption="../report/stats_table1.rst",
            category="Statistics 4: baseline characteristics",
            labels={"table": "Table 1: baseline by arm"},
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
        plan=PLAN_PARAMS,
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
            category="Statistics 5: exploratory longitudinal models",
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
        plan=PLAN_LONGITUDINAL,
        covariance=PLAN_COVARIANCE,
        models=MODEL_SETTINGS,
    script:
        "../scripts/stats_mixed_models.py"


rule stats_censoring_sensitivity:
    input:
        labs=TABLES["labs"],
    output:
        report(
            "results/stats/censoring_sensitivity.csv",
            caption="../report/stats_censoring_sensitivity.rst",
            category="Statistics 5: exploratory longitudinal models",
            labels={"table": "censoring sensitivity"},
        ),
    log:
        "logs/stats_censoring_sensitivity/all.log",
    conda:
        "../../envs/stats.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        stats=STATS_PARAMS,
        plan=PLAN_LONGITUDINAL,
        covariance=PLAN_COVARIANCE,
        models=MODEL_SETTINGS,
    script:
        "../scripts/stats_censoring_sensitivity.py"
