"""Sheet loading, validation, the rules' shared parameters and input functions used by every stage."""

import hashlib
import os
import sys

import pandas as pd
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from lungtrial.demo.design import INFUSION_DAYS as DEMO_INFUSION_DAYS
from lungtrial.errors import InputError
from lungtrial.imaging.metrics import PRESETS
from lungtrial.imaging.registration import registration_kwargs


def stop(message):
    """End the run with ``message`` alone: no traceback, no Snakemake frames (exit status 1).

    Bad input is found here, while the workflow is read and before any job starts, so that no output of an
    earlier run is removed (Snakemake deletes a job's outputs before running it).
    """
    sys.exit(
        f"{message}\nNothing was run; fix the input and run the same command again "
        "(docs/errors.md)."
    )


try:
    validate(config, "../schemas/config.schema.yaml")
except WorkflowError as e:
    _cause = e.__context__
    _key = ".".join(map(str, getattr(_cause, "absolute_path", []))) or "(top level)"
    stop(
        f"Error validating config file: {_key}: {getattr(_cause, 'message', e)} "
        "(expected as described in config/README.md)"
    )


def shipped(path):
    """A resource named in the config: as given when it exists from the working directory, else from the
    workflow's own folder (so that runs with --directory elsewhere still find resources/).
    """
    if os.path.isabs(path) or os.path.exists(path):
        return path
    return os.path.join(workflow.basedir, path)


UNITS_TABLE = shipped(config["clinical"]["units"])
ANALYTES_TABLE = shipped(config["clinical"]["analytes"])


def _demo_sheets():
    """Subjects and scans of the demo trial, from its design (the sheets themselves are made by a rule)."""
    from lungtrial.demo.design import design

    d = design(
        n_per_arm=DEMO["n_per_arm"],
        seed=DEMO["seed"],
        timepoints=tuple(DEMO["timepoints"]),
    )
    scans = d.scans[["scan_id", "subject_id", "scan_date"]].copy()
    day0_dates = d.subjects.set_index("subject_id")["day0_date"]
    day0 = pd.to_datetime(scans["subject_id"].map(day0_dates))
    scans["study_day"] = (pd.to_datetime(scans["scan_date"]) - day0).dt.days.astype(int)
    scans["dicom_dir"] = [f"{DEMO_DIR}/dicom/{s}" for s in scans["scan_id"]]
    return d.subjects.assign(source_file="demo design"), scans


def _trial_sheets(plan):
    """Read and check every sheet and lab file of a trial given by sheets, as the jobs will read them.

    The subjects and scans sheets are returned; the labs, adverse events and unit tables are only checked here
    (their jobs read them again), so that a bad value stops the run before the clinical tables are touched.
    Messages from the library are kept out of the console (the jobs log them).
    """
    from lungtrial import clinical
    from lungtrial.wfutil import quiet_logs

    subjects = clinical.read_subjects(SUBJECTS_SHEET, plan.subject_columns())
    scans = clinical.read_scans(config["sheets"]["scans"], subjects)
    scans["scan_date"] = scans["scan_date"].dt.strftime("%Y-%m-%d")
    # a job on a cluster node reads the sheets too: the run was checked when it started
    if not workflow.is_main_process:
        return subjects, scans
    with quiet_logs():
        catalog = clinical.load_catalog(UNITS_TABLE, ANALYTES_TABLE)
        clinical.read_labs(
            LAB_FILES,
            subjects,
            catalog,
            visits=config["clinical"]["visits"],
            on_unknown=config["clinical"]["on_unknown"],
            tolerance_days=config["clinical"]["date_tolerance_days"],
        )
        clinical.read_adverse_events(AE_SHEET or None, subjects)
    return subjects, scans


if config["demo"]:
    DEMO = config["demo_options"]
    DEMO_DIR = DEMO["outdir"]
    SUBJECTS_SHEET = f"{DEMO_DIR}/subjects.csv"
    LAB_FILES = [f"{DEMO_DIR}/labs.csv"]
    AE_SHEET = f"{DEMO_DIR}/adverse_events.csv"
else:
    SUBJECTS_SHEET = config["sheets"]["subjects"]
    LAB_FILES = list(config["sheets"].get("labs", []))
    AE_SHEET = config["sheets"].get("adverse_events", "")
try:
    from lungtrial.clinical import visit_windows

    visit_windows(config["clinical"]["visits"])
except ValueError as e:  # windows that are not [first_day, last_day], or overlap
    stop(e)
try:
    from lungtrial.clinical import check_arms
    from lungtrial.stats import load_plan

    # the trial's analysis plan (config analysis), read by the clinical, statistics and plot rules
    PLAN = load_plan(config.get("analysis"), config["clinical"]["visits"])
    _subjects, _scans = _demo_sheets() if config["demo"] else _trial_sheets(PLAN)
    check_arms(
        _subjects,
        {
            "stats.reference_arm": config["stats"]["reference_arm"],
            "stats.treatment_arm": config["stats"]["treatment_arm"],
        },
    )
except InputError as e:
    stop(e)
SUBJECTS = _subjects.set_index("subject_id", drop=False)
SCANS = _scans.set_index("scan_id", drop=False)
# Per-scan lookups built once: input functions run once per job, thousands of times in a large trial.
DICOM_DIRS = SCANS["dicom_dir"].to_dict()
SCAN_INFO = SCANS[["scan_id", "subject_id", "scan_date", "study_day"]].to_dict("index")


# Parameters of the rules, defined once for every stage.
CLINICAL = config["clinical"]
CLINICAL_TABLES = "results/tables"
# The analysis tables of the clinical stage, read by the statistics and plot rules.
TABLES = {
    name: f"{CLINICAL_TABLES}/{name}.parquet"
    for name in ("subjects", "labs", "scans", "adverse_events")
}
VISIT_WINDOWS = CLINICAL["visits"]
# How a scan is measured (config imaging), alone (quantify_scan) and with its serial prior (serial_scan).
IMAGING_PARAMS = {
    "series": config["imaging"]["series"],
    "preset": config["imaging"]["preset"],
    "classes": config["imaging"]["classes"],
    "measure_implausible": config["imaging"]["measure_implausible"],
}
# Whether a scan that cannot be measured fails its quantify_scan job instead of being excluded (config imaging.strict;
# kept out of IMAGING_PARAMS: serial_scan has no such parameter, and a new parameter would rerun its jobs).
IMAGING_STRICT = config["imaging"]["strict"]
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
# Arms, visits and infusion days of the plots (arm colours follow the arm order: reference, treatment, others);
# the infusion days are config stats.infusion_days, by default the demo trial's schedule.
PLOT_PARAMS = {
    **STATS_PARAMS,
    "infusion_days": list(config["stats"].get("infusion_days", DEMO_INFUSION_DAYS)),
}
# The plan as the statistics jobs and the report captions read it (a change of the plan reruns them).
PLAN_PARAMS = {
    "config": config["analysis"],
    "visit_windows": VISIT_WINDOWS,
    "primary": (
        {
            "label": PLAN.primary.label,
            "unit": PLAN.primary.unit,
            "analysis": PLAN.primary.analysis,
            "visit": (PLAN.primary.visits or (PLAN.primary.at,))[0],
            "scale": PLAN.primary.scale,
        }
        if PLAN.primary
        else None
    ),
    "roles": {
        role: [o.label for o in PLAN.outcomes if o.role == role]
        for role in ("primary", "secondary", "exploratory")
    },
    "families": {
        family: PLAN.method(family)
        for family in dict.fromkeys(o.family for o in PLAN.outcomes)
    },
    "baseline_visit": PLAN.visits[0] if PLAN.visits else "",
    "death_column": PLAN.death_column or "",
}
# What the longitudinal models and the plots take from the plan: censoring rule, analysed visits (baseline first),
# prespecified scales and the imaging metrics of its outcomes.
PLAN_LONGITUDINAL = {
    "censoring": PLAN.censoring,
    "visits": list(PLAN.visits),
    "scales": PLAN.model_scales(),
    "imaging": PLAN.imaging_metrics(),
}
# Covariance of the visit-factor mixed models, per metric or analyte (config analysis.covariance).
PLAN_COVARIANCE = PLAN.model_covariance()
# The other settings of the mixed models and of their censoring sensitivity: the degrees of freedom of every model,
# and a random slope on study day in the models of study day as a line (time = continuous).
MODEL_SETTINGS = {"df_method": "satterthwaite", "random_slope": True}
# Time-to-event outcomes: name -> [label, duration column, event column].
PLAN_TIME_TO_EVENT = {name: list(spec) for name, spec in PLAN.time_to_event().items()}


wildcard_constraints:
    scan="[A-Za-z0-9][A-Za-z0-9._-]*",


def dicom_dir(wildcards):
    """The DICOM folder of one scan as an input of its job: only the demo trial's (made by demo_scan, named by the
    scan ID). A folder named in the scans sheet is not an input: its path (folder names are often patient IDs or
    UIDs) stays out of Snakemake's records, locks, logs and report: it reaches the job through
    lungtrial.imaging.hand_over_folders. A folder not there yet fails that scan's job only; its content is followed
    by dicom_content.
    """
    return DICOM_DIRS[wildcards.scan] if config["demo"] else []


def dicom_content(wildcards):
    """A parameter of the scan's job that changes with the content of its DICOM folder (named in the scans sheet),
    so that Snakemake's params trigger re-measures the scan when files are added, removed or rewritten: a hash of
    the files' names, sizes and modification times (lungtrial.imaging.dicom.folder_fingerprint; no file is read), or
    "missing", which reruns a measured scan whose folder went away into a clear error. Empty for the demo trial,
    whose folders are outputs of demo_scan and followed by Snakemake itself.
    """
    if config["demo"]:
        return ""
    from lungtrial.imaging.dicom import folder_fingerprint

    return folder_fingerprint(DICOM_DIRS[wildcards.scan]) or "missing"


# Lesion masks of config imaging.lesion_masks ({scan_id: path}), absolute. Like the DICOM folders of a sheet they
# are not inputs of the jobs (file names may identify the patient): they are handed over below and followed by
# lesion_mask_content.
LESION_MASKS = {
    str(scan): os.path.abspath(path)
    for scan, path in config["imaging"]["lesion_masks"].items()
    if path
}
# a mask keyed by a scan_id the scans sheet does not have (a typo) would be ignored silently
_unknown_masks = sorted(
    set(map(str, config["imaging"]["lesion_masks"])) - set(map(str, SCANS.index))
)
if _unknown_masks:
    stop(
        "\n".join(
            f"config imaging.lesion_masks: scan_id {scan!r} (expected a scan_id of the scans sheet)"
            for scan in _unknown_masks
        )
    )
# The jobs' DICOM folders and lesion masks, handed over outside Snakemake's records (see dicom_dir).
from lungtrial.imaging import hand_over_folders

_where = SCANS.reindex(columns=["dicom_dir", "source_file", "source_row", "subject_id"])
hand_over_folders(
    {
        scan: {
            "folder": folder,
            "sheet": sheet,
            "row": None if pd.isna(row) else int(row),
            "subject": subject,
            **({"lesion_mask": LESION_MASKS[scan]} if scan in LESION_MASKS else {}),
        }
        for scan, folder, sheet, row, subject in _where.itertuples()
    },
    workflow.snakemake_tmp_dir,
)


def scan_info(wildcards):
    """Per-scan facts from the scans sheet (never anything from the DICOM headers): report labels and the change
    maps. Not a parameter of the scan's own job: the imaging tables join them (a changed day0_date reruns no scan).
    """
    return SCAN_INFO[wildcards.scan]


def quantify_threads(wildcards):
    """Threads of one scan's job: 2 (the segmentation's slab-parallel stages use them on a full-size series), but 1
    for the small and tiny demo trials, whose scans (7 million voxels or fewer) are measured in under a second:
    there start-up dominates, and two jobs side by side keep both cores busy where one 2-thread job would not.
    """
    if config["demo"] and config["demo_options"]["size"] in ("tiny", "small"):
        return 1
    return 2


def quantify_mem_mb(wildcards, attempt):
    """Memory of one scan's job, sized for a 600-slice 512 x 512 series (measured peak: ~500 MB + 10 MB per
    million voxels, 12 MB for a sharp kernel's scan, measured on smoothed HU). The series is only chosen inside the
    job, so the request cannot follow its size: a job that runs out of memory is resubmitted with twice as much
    (``retries`` in the SLURM profile).
    """
    return 2500 * attempt


def lesion_mask_content(wildcards):
    """A parameter of the scan's job that changes with its lesion mask (config imaging.lesion_masks): a hash of the
    file's size and modification time, "missing" when the file is not there (the job then fails with one line),
    "" when the scan has none (HU thresholds). The path itself is handed over (hand_over_folders), never recorded.
    """
    path = LESION_MASKS.get(wildcards.scan)
    if not path:
        return ""
    try:
        st = os.stat(path)
    except OSError:
        return "missing"
    return hashlib.sha256(f"{st.st_size}\0{st.st_mtime_ns}".encode()).hexdigest()[:32]


def per_scan(pattern):
    """``pattern`` expanded over every scan of the trial."""
    return expand(pattern, scan=SCANS.index)


def qc_labels(wildcards):
    """Report labels of a scan's QC picture: subject, scan and date."""
    info = scan_info(wildcards)
    return {
        "subject": info["subject_id"],
        "scan": info["scan_id"],
        "study day": info["study_day"],
    }


# Change maps: each subject's scans in time order; one pair job per scan after the subject's first.
_ordered = SCANS.reset_index(drop=True).sort_values(
    ["subject_id", "study_day", "scan_date", "scan_id"]
)
SUBJECT_SCANS = {
    subject: list(group["scan_id"])
    for subject, group in _ordered.groupby("subject_id", sort=False)
}
CHANGE_ENABLED = bool(config.get("registration", {}).get("enabled", True))
FOLLOW_UPS = [scan for scans in SUBJECT_SCANS.values() for scan in scans[1:]]
CHANGE_SUBJECTS = [
    subject for subject, scans in SUBJECT_SCANS.items() if len(scans) > 1
]
# Per follow-up scan: subject, study day and date (what the change table and the pictures are labelled with).
FOLLOW_UP_INFO = {scan: SCAN_INFO[scan] for scan in FOLLOW_UPS}
# register()'s keyword arguments from config registration (a change of them reruns every pair), and whether a pair
# of scans with different DICOM PatientIDs is an error.
REGISTRATION = registration_kwargs(config.get("registration", {}))
SAME_PATIENT_CHECK = config["registration"]["same_patient_check"]


def change_candidates(wildcards):
    """The scans of a follow-up's subject up to and including it, in time order: its baseline is the earliest of
    them that was measured (status ok), which only their per-scan jobs tell, so the pair job takes them all and
    chooses (lungtrial.imaging.change.choose_baseline). Every earlier scan being an input, a re-measured or added
    earlier scan (a changed baseline) reruns the subject's later pairs; a scan added after them adds one pair. A
    rewritten DICOM folder reruns its scan's job (dicom_content), whose new outputs rerun the pairs.
    """
    scans = SUBJECT_SCANS[SCAN_INFO[wildcards.followup]["subject_id"]]
    return scans[: scans.index(wildcards.followup) + 1]


def change_inputs(wildcards):
    """Inputs of a pair job: series.json and masks of every candidate scan (change_candidates) and, for the demo
    trial only, their DICOM folders (see dicom_dir: a sheet's folders are handed over outside Snakemake). With the
    serial prior on, the masks measured with it (the ones the imaging tables take): the change maps then see the
    consolidation that the scan alone cuts out.
    """
    scans = change_candidates(wildcards)
    folder = "results/scans/{scan}/serial" if SERIAL else "results/scans/{scan}"
    return {
        "series": expand(f"{folder}/series.json", scan=scans),
        "masks": expand(f"{folder}/masks", scan=scans),
        "dicom": [DICOM_DIRS[scan] for scan in scans] if config["demo"] else [],
    }


def change_scans(wildcards):
    """Scan and subject of a pair job's candidate scans, in time order. Not their dates or study days: the pair
    does not use them (the change tables and pictures do), so a changed day0_date reruns no registration.
    """
    return [
        {key: SCAN_INFO[scan][key] for key in ("scan_id", "subject_id")}
        for scan in change_candidates(wildcards)
    ]


# The serial prior (config imaging.serial_prior): the imaging tables and the change maps take each scan's
# measurement with its subject's least-affected scan as prior (workflow/rules/serial.smk) instead of the scan's own.
SERIAL = bool(config["imaging"].get("serial_prior", False))
# the registration settings of the change maps (REGISTRATION), lists as lists (job parameters)
SERIAL_REGISTRATION = {
    key: list(value) if isinstance(value, tuple) else value
    for key, value in REGISTRATION.items()
}


def measured(name):
    """Every scan's file ``name``: of its own measurement, or with the serial prior of the one in ``serial/``."""
    folder = "results/scans/{scan}/serial" if SERIAL else "results/scans/{scan}"
    return per_scan(f"{folder}/{name}")


def serial_scans(wildcards):
    """The scans of a scan's subject, in time order (their per-scan results choose the reference)."""
    return SUBJECT_SCANS[SCAN_INFO[wildcards.scan]["subject_id"]]


def serial_inputs(wildcards):
    """Inputs of a serial_scan job: series.json, metrics and masks of every scan of its subject and, for the demo
    trial only, their DICOM folders. A re-measured or added scan of the subject reruns the subject's jobs (it may
    be the new reference)."""
    scans = serial_scans(wildcards)
    return {
        "series": expand("results/scans/{scan}/series.json", scan=scans),
        "metrics": expand("results/scans/{scan}/metrics.csv", scan=scans),
        "masks": expand("results/scans/{scan}/masks", scan=scans),
        "dicom": [DICOM_DIRS[scan] for scan in scans] if config["demo"] else [],
    }


def serial_mem_mb(wildcards, attempt):
    """Memory of a serial_scan job: two scans' volumes and the registration's working images, as a change pair."""
    return change_mem_mb(wildcards, attempt)


def change_mem_mb(wildcards, attempt):
    """Memory of one pair job: both scans' HU and labels, the warped follow-up and the change labels (peak 1.4 GB
    for a 261-slice 512 x 512 pair, docs/registration.md); doubled on each retry."""
    return 2500 * attempt


def change_targets():
    """Final outputs of the change maps (none when registration.enabled is false)."""
    if not CHANGE_ENABLED:
        return []
    return [
        "results/imaging/change.csv",
        "results/plots/change_endpoints.png",
        *expand("results/change/{subject}.png", subject=CHANGE_SUBJECTS),
    ]


def imaging_targets():
    return (
        [
            "results/imaging/metrics.csv",
            "results/imaging/regions.csv",
            "results/imaging/qc.csv",
        ]
        + per_scan("results/scans/{scan}/qc.png")
        + change_targets()
    )


def clinical_targets():
    """Final outputs of the clinical stage."""
    return [
        *rules.clinical_tables.output,
        *rules.clinical_scans.output,
    ]


def stats_targets():
    """Final outputs of the statistics stage."""
    return [
        *rules.stats_tables.output,
        *rules.stats_mixed_models.output,
        *rules.stats_censoring_sensitivity.output,
    ]


def plots_targets():
    """Final outputs of the plots stage: PNG and SVG of every figure."""
    plot_rules = (
        rules.plot_trajectories_imaging,
        rules.plot_trajectories_labs,
        rules.plot_change,
        rules.plot_opacity_pf,
        rules.plot_swimmer,
        rules.plot_kaplan_meier,
    )
    return [path for rule in plot_rules for path in rule.output]
