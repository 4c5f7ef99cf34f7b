"""The serial prior (config imaging.serial_prior): every scan measured again with the lungs of its subject's least
affected measured scan registered onto it (docs/segmentation.md, "Serial prior"). The imaging tables and the
change maps then take these measurements; the per-scan ones stay beside them."""


rule serial_scan:
    input:
        unpack(serial_inputs),
    output:
        series="results/scans/{scan}/serial/series.json",
        metrics="results/scans/{scan}/serial/metrics.csv",
        regions="results/scans/{scan}/serial/regions.csv",
        masks=directory("results/scans/{scan}/serial/masks"),
        qc=report(
            "results/scans/{scan}/serial/qc.png",
            caption="../report/qc_picture_serial.rst",
            category="Imaging QC",
            subcategory="QC pictures with the serial prior",
            labels=qc_labels,
        ),
        prior="results/scans/{scan}/serial/prior.json",
    log:
        "logs/serial_scan/{scan}.log",
    conda:
        "../../envs/imaging.yaml"
    threads: 1
    resources:
        mem_mb=serial_mem_mb,
        runtime=15,
    params:
        **IMAGING_PARAMS,
        scans=serial_scans,
        content=dicom_content,
        lesion_mask=lesion_mask_content,
        registration=SERIAL_REGISTRATION,
        same_patient=SAME_PATIENT_CHECK,
    script:
        "../scripts/serial_scan.py"
