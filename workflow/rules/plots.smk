"""Per-arm plots (PNG + SVG): trajectories, change from baseline, opacity vs PaO2/FiO2, swimmer, Kaplan-Meier.

Parameters come from common.smk: TABLES, PLOT_PARAMS, HU_CLASSES and what is taken from the analysis plan
(PLAN_LONGITUDINAL: censoring rule, visits, imaging metrics; PLAN_TIME_TO_EVENT).
"""


rule plot_trajectories_imaging:
    input:
        scans=TABLES["scans"],
    output:
        png=report(
            "results/plots/trajectories_imaging.png",
            caption="../report/plot_trajectories_imaging.rst",
            category="Statistics (exploratory)",
            labels={"figure": "trajectories imaging"},
        ),
        svg="results/plots/trajectories_imaging.svg",
    log:
        "logs/plot_trajectories_imaging/all.log",
    conda:
        "../../envs/stats.yaml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    params:
        plots=PLOT_PARAMS,
        hu_classes=HU_CLASSES,
        imaging=PLAN_LONGITUDINAL["imaging"],
        scales=PLAN_LONGITUDINAL["scales"],
    script:
        "../scripts/plot_trajectories_imaging.py"


rule plot_trajectories_labs:
    input:
        labs=TABLES["labs"],
    output:
        png=report(
            "results/plots/trajectories_labs.png",
            caption="../report/plot_trajectories_labs.rst",
            category="Labs",
            labels={"figure": "trajectories labs"},
        ),
        svg="results/plots/trajectories_labs.svg",
    log:
        "logs/plot_trajectories_labs/all.log",
    conda:
        "../../envs/stats.yaml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    params:
        plots=PLOT_PARAMS,
        censoring=PLAN_LONGITUDINAL["censoring"],
        scales=PLAN_LONGITUDINAL["scales"],
    script:
        "../scripts/plot_trajectories_labs.py"


rule plot_change:
    input:
        scans=TABLES["scans"],
    output:
        png=report(
            "results/plots/change_from_baseline.png",
            caption="../report/plot_change.rst",
            category="Statistics (exploratory)",
            labels={"figure": "change from baseline"},
        ),
        svg="results/plots/change_from_baseline.svg",
    log:
        "logs/plot_change/all.log",
    conda:
        "../../envs/stats.yaml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    params:
        plots=PLOT_PARAMS,
        imaging=PLAN_LONGITUDINAL["imaging"],
        visits=PLAN_LONGITUDINAL["visits"],
        lookback_days=PLAN.baseline_lookback_days,
    script:
        "../scripts/plot_change.py"


rule plot_opacity_pf:
    input:
        scans=TABLES["scans"],
    output:
        png=report(
            "results/plots/opacity_vs_pao2_fio2.png",
            caption="../report/plot_opacity_pf.rst",
            category="Statistics (exploratory)",
            labels={"figure": "opacity vs pao2 fio2"},
        ),
        svg="results/plots/opacity_vs_pao2_fio2.svg",
    log:
        "logs/plot_opacity_pf/all.log",
    conda:
        "../../envs/stats.yaml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    params:
        plots=PLOT_PARAMS,
        censoring=PLAN_LONGITUDINAL["censoring"],
    script:
        "../scripts/plot_opacity_pf.py"


rule plot_swimmer:
    input:
        subjects=TABLES["subjects"],
        scans=TABLES["scans"],
    output:
        png=report(
            "results/plots/swimmer.png",
            caption="../report/plot_swimmer.rst",
            category="Outcomes",
            labels={"figure": "swimmer"},
        ),
        svg="results/plots/swimmer.svg",
    log:
        "logs/plot_swimmer/all.log",
    conda:
        "../../envs/stats.yaml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    params:
        plots=PLOT_PARAMS,
    script:
        "../scripts/plot_swimmer.py"


rule plot_kaplan_meier:
    input:
        subjects=TABLES["subjects"],
    output:
        png=report(
            "results/plots/kaplan_meier.png",
            caption="../report/plot_kaplan_meier.rst",
            category="Outcomes",
            labels={"figure": "kaplan meier"},
        ),
        svg="results/plots/kaplan_meier.svg",
    log:
        "logs/plot_kaplan_meier/all.log",
    conda:
        "../../envs/stats.yaml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    params:
        plots=PLOT_PARAMS,
        time_to_event=PLAN_TIME_TO_EVENT,
    script:
        "../scripts/plot_kaplan_meier.py"
