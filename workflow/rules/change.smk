"""Change maps: each follow-up CT registered onto its subject's baseline CT (the earliest measured scan), the
change labelled per voxel; one table of all pairs, a picture per patient and the endpoints per arm.

Uses SUBJECT_SCANS, FOLLOW_UPS, FOLLOW_UP_INFO, CHANGE_SUBJECTS, REGISTRATION and the change_* input functions of
common.smk.
"""


localrules:
    change_tables,


wildcard_constraints:
    followup="[A-Za-z0-9][A-Za-z0-9._-]*",


rule change_pair:
    input:
        unpack(change_inputs),
    output:
        transform=directory("results/change/{followup}/transform"),
        map=directory("results/change/{followup}/map"),
        volumes="results/change/{followup}/volumes.csv",
        qc="results/change/{followup}/qc.json",
        preview="results/change/{followup}/preview.npz",
    log:
        "logs/change_pair/{followup}.log",
    conda:
        "../../envs/imaging.yaml"
    # one thread: only the demons stage runs in parallel, so a 2-thread pair keeps its second core busy a small
    # part of the time (docs/registration.md); pairs side by side use the cores (the result is the same on any
    # number of threads). --set-threads change_pair=2 for a lone large pair.
    threads: 1
    resources:
        mem_mb=change_mem_mb,
        runtime=10,
    params:
        scans=change_scans,
        registration=REGISTRATION,
        same_patient=SAME_PATIENT_CHECK,
        preset=config["imaging"]["preset"],
    script:
        "../scripts/change_pair.py"


rule change_tables:
    input:
        volumes=expand("results/change/{followup}/volumes.csv", followup=FOLLOW_UPS),
        qc=expand("results/change/{followup}/qc.json", followup=FOLLOW_UPS),
    output:
        change=report(
            "results/imaging/change.csv",
            caption="../report/change_table.rst",
            category="Change maps",
            subcategory="Change table",
        ),
        regions="results/imaging/change_regions.csv",
    log:
        "logs/change_tables.log",
    conda:
        "../../envs/imaging.yaml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    params:
        follow_ups=FOLLOW_UP_INFO,
        arms=SUBJECTS["arm"].astype(str).to_dict(),
        visits=VISIT_WINDOWS,
    script:
        "../scripts/change_tables.py"


rule change_picture:
    input:
        preview=lambda w: expand(
            "results/change/{followup}/preview.npz",
            followup=SUBJECT_SCANS[w.subject][1:],
        ),
        qc=lambda w: expand(
            "results/change/{followup}/qc.json", followup=SUBJECT_SCANS[w.subject][1:]
        ),
    output:
        report(
            "results/change/{subject}.png",
            caption="../report/change_picture.rst",
            category="Change maps",
            subcategory="Per patient",
            labels=lambda w: {"subject": w.subject},
        ),
    log:
        "logs/change_picture/{subject}.log",
    wildcard_constraints:
        subject="[A-Za-z0-9][A-Za-z0-9._-]*",
    conda:
        "../../envs/imaging.yaml"
    threads: 1
    resources:
        mem_mb=800,
        runtime=5,
    params:
        follow_ups=lambda w: [SCAN_INFO[s] for s in SUBJECT_SCANS[w.subject][1:]],
    script:
        "../scripts/change_picture.py"


rule plot_change_endpoints:
    input:
        change="results/imaging/change.csv",
    output:
        png=report(
            "results/plots/change_endpoints.png",
            caption="../report/change_endpoints.rst",
            category="Change maps",
            subcategory="Endpoints by arm",
        ),
        svg="results/plots/change_endpoints.svg",
    log:
        "logs/plot_change_endpoints/all.log",
    conda:
        "../../envs/stats.yaml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    params:
        plots=PLOT_PARAMS,
    script:
        "../scripts/change_endpoints.py"
