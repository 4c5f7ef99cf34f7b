"""Clinical data: subjects, labs and adverse events from the sheets; then one row per scan with labs and visits."""


localrules:
    clinical_tables,
    clinical_scans,


rule clinical_tables:
    input:
        subjects=SUBJECTS_SHEET,
        labs=LAB_FILES,
        adverse_events=[AE_SHEET] if AE_SHEET else [],
        units=UNITS_TABLE,
        analytes=ANALYTES_TABLE,
    output:
        subjects="results/clinical/subjects.parquet",
        labs_csv=f"{CLINICAL_TABLES}/labs.csv",
        labs=f"{CLINICAL_TABLES}/labs.parquet",
        adverse_events_csv=report(
            f"{CLINICAL_TABLES}/adverse_events.csv",
            caption="../report/clinical_adverse_events.rst",
            category="Outcomes",
        ),
        adverse_events=f"{CLINICAL_TABLES}/adverse_events.parquet",
        dropped=report(
            f"{CLINICAL_TABLES}/dropped_labs.csv",
            caption="../report/clinical_dropped_labs.rst",
            category="Labs",
        ),
        coverage=report(
            f"{CLINICAL_TABLES}/lab_coverage.csv",
            caption="../report/clinical_lab_coverage.rst",
            category="Labs",
        ),
    log:
        "logs/clinical_tables/clinical_tables.log",
    conda:
        "../../envs/clinical.yaml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=10,
    params:
        on_unknown=CLINICAL["on_unknown"],
        tolerance_days=CLINICAL["date_tolerance_days"],
        visits=VISIT_WINDOWS,
        # from the analysis plan: the subjects-sheet columns it reads (with their kind) and the first dose
        subject_columns=PLAN.subject_columns(),
        first_dose_day=PLAN.first_dose_day,
    script:
        "../scripts/clinical_tables.py"


rule clinical_scans:
    input:
        metrics="results/imaging/metrics.csv",
        subjects="results/clinical/subjects.parquet",
        labs=f"{CLINICAL_TABLES}/labs.parquet",
        units=UNITS_TABLE,
        analytes=ANALYTES_TABLE,
    output:
        scans_csv=f"{CLINICAL_TABLES}/scans.csv",
        scans=f"{CLINICAL_TABLES}/scans.parquet",
        subjects_csv=f"{CLINICAL_TABLES}/subjects.csv",
        subjects=f"{CLINICAL_TABLES}/subjects.parquet",
        dictionary=report(
            f"{CLINICAL_TABLES}/data_dictionary.csv",
            caption="../report/clinical_data_dictionary.rst",
            category="Outcomes",
        ),
    log:
        "logs/clinical_scans/clinical_scans.log",
    conda:
        "../../envs/clinical.yaml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=10,
    params:
        visits=VISIT_WINDOWS,
        window_days=CLINICAL["lab_window_days"],
    script:
        "../scripts/clinical_scans.py"
