"""Per scan, in one job: choose and validate the CT series, segment the lungs, measure opacity; then one table of
all scans, joined with the scans sheet (subject, study day, date).

The per-scan job takes nothing from the sheets but its DICOM folder: a changed day0_date or scan_date reruns the
tables, never the measurement."""


localrules:
    imaging_tables,


rule quantify_scan:
    input:
        dicom=dicom_dir,
    output:
        series="results/scans/{scan}/series.json",
        metrics="results/scans/{scan}/metrics.csv",
        regions="results/scans/{scan}/regions.csv",
        masks=directory("results/scans/{scan}/masks"),
        qc=report(
            "results/scans/{scan}/qc.png",
            caption="../report/qc_picture.rst",
            category="Imaging QC",
            subcategory="QC pictures",
            labels=qc_labels,
        ),
    log:
        "logs/quantify_scan/{scan}.log",
    conda:
        "../../envs/imaging.yaml"
    threads: quantify_threads
    resources:
        mem_mb=quantify_mem_mb,
        runtime=15,
    params:
        **IMAGING_PARAMS,
        content=dicom_content,
        lesion_mask=lesion_mask_content,
        strict=IMAGING_STRICT,
    script:
        "../scripts/quantify_scan.py"


rule imaging_tables:
    input:
        # each scan's own measurement, or with config imaging.serial_prior the one with its serial prior
        metrics=measured("metrics.csv"),
        regions=measured("regions.csv"),
        series=measured("series.json"),
        priors=per_scan("results/scans/{scan}/serial/prior.json") if SERIAL else [],
    output:
        metrics=report(
            "results/imaging/metrics.csv",
            caption="../report/imaging_metrics.rst",
            category="Imaging metrics",
        ),
        regions=report(
            "results/imaging/regions.csv",
            caption="../report/imaging_regions.rst",
            category="Imaging metrics",
        ),
        qc=report(
            "results/imaging/qc.csv",
            caption="../report/imaging_qc.rst",
            category="Imaging QC",
            subcategory="QC table",
        ),
    log:
        "logs/imaging_tables.log",
    conda:
        "../../envs/imaging.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        scans=SCAN_INFO,
    script:
        "../scripts/imaging_tables.py"
