"""Sheet loading, validation, the rules' shared parameters and input functions used by every stage."""

import os

import pandas as pd
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from lungtrial.metrics import PRESETS

validate(config, "../schemas/config.schema.yaml")


def _read_sheet(path, schema, key):
    """Read a CSV/TSV sheet (IDs and dates as text) and validate each row against its JSON schema."""
    if not os.path.exists(path):
        raise WorkflowError(
            f"sheet {path} ({key}) does not exist; see config/README.md"
        )
    sheet = pd.read_csv(
        path,
        sep=None,
        engine="python",
        dtype=str,
        keep_default_na=False,
        na_values=[""],
        comment="#",
    )
    return _validated(sheet, schema, path)


def _validated(sheet, schema, source):
    if "study_day" in sheet.columns:
        sheet["study_day"] = pd.to_numeric(sheet["study_day"], errors="raise")
    try:
        validate(sheet, schema)
    except WorkflowError as e:
        raise WorkflowError(f"{source}: {e}") from e
    return sheet


def shipped(path):
    """A resource named in the config: as given when it exists from the working directory, else from the
    workflow's own folder (so that runs with --directory elsewhere still find resources/).
    """
    if os.path.isabs(path) or os.path.exists(path):
        return path
    return os.path.join(workflow.basedir, path)


def _resolve(folder, base):
    return (
        folder
        if os.path.isabs(folder)
        else os.path.normpath(os.path.join(base, folder))
    )


def _check_ids(subjects, scans, scans_source):
    dup = subjects["subject_id"][subjects["subject_id"].duplicated()]
    if len(dup):
        raise WorkflowError(f"subjects sheet: duplicate subject_id {', '.join(dup)}")
    dup = scans["scan_id"][scans["scan_id"].duplicated()]
    if len(dup):
        raise WorkflowError(f"{scans_source}: duplicate scan_id {', '.join(dup)}")
    unknown = sorted(set(scans["subject_id"]) - set(subjects["subject_id"]))
    if unknown:
        raise WorkflowError(
            f"{scans_source}: subject_id {', '.join(unknown)} not in the subjects sheet"
        )


def _scan_dates(scans, subjects, scans_source):
    """Every scan gets an ISO scan_date; a study_day column is turned into a date from day 0."""
    if "scan_date" not in scans.columns:
        scans["scan_date"] = pd.NA
    missing = scans["scan_date"].isna()
    if missing.any():
        if (
            "study_day" not in scans.columns
            or scans.loc[missing, "study_day"].isna().any()
        ):
            rows = ", ".join(scans.loc[missing, "scan_id"])
            raise WorkflowError(
                f"{scans_source}: scans {rows} have neither scan_date nor study_day"
            )
        day0 = pd.to_datetime(
            scans.loc[missing, "subject_id"].map(
                subjects.set_index("subject_id")["day0_date"]
            )
        )
        days = pd.to_timedelta(scans.loc[missing, "study_day"], unit="D")
        scans.loc[missing, "scan_date"] = (day0 + days).dt.strftime("%Y-%m-%d")
    return scans


if config["demo"]:
    from lungtrial.demo.design import design as _demo_design

    DEMO = config["demo_options"]
    DEMO_DIR = DEMO["outdir"]
    _design = _demo_design(
        n_per_arm=DEMO["n_per_arm"],
        seed=DEMO["seed"],
        timepoints=tuple(DEMO["timepoints"]),
    )
    SUBJECTS_SHEET = f"{DEMO_DIR}/subjects.csv"
    LAB_FILES = [f"{DEMO_DIR}/labs.csv"]
    AE_SHEET = f"{DEMO_DIR}/adverse_events.csv"
    _subjects = _validated(
        _design.subjects.astype(str), "../schemas/subjects.schema.yaml", "demo design"
    )
    _scans = _design.scans[["scan_id", "subject_id", "scan_date"]].copy()
    _scans["dicom_dir"] = [f"{DEMO_DIR}/dicom/{s}" for s in _scans["scan_id"]]
    _scans = _validated(_scans, "../schemas/scans.schema.yaml", "demo design")
    _scans_source = "demo design"
else:
    SUBJECTS_SHEET = config["sheets"]["subjects"]
    LAB_FILES = list(config["sheets"].get("labs", []))
    AE_SHEET = config["sheets"].get("adverse_events", "")
    _subjects = _read_sheet(
        SUBJECTS_SHEET, "../schemas/subjects.schema.yaml", "subjects"
    )
    _scans_source = config["sheets"]["scans"]
    _scans = _read_sheet(_scans_source, "../schemas/scans.schema.yaml", "scans")
    _base = os.path.dirname(_scans_source)
    _scans["dicom_dir"] = [_resolve(d, _base) for d in _scans["dicom_dir"]]

_check_ids(_subjects, _scans, _scans_source)
UNITS_TABLE = shipped(config["clinical"]["units"])
ANALYTES_TABLE = shipped(config["clinical"]["analytes"])
SUBJECTS = _subjects.set_index("subject_id", drop=False)
SCANS = _scan_dates(_scans, _subjects, _scans_source).set_index("scan_id", drop=False)
# Per-scan lookups built once: input functions run once per job, thousands of times in a large trial.
DICOM_DIRS = SCANS["dicom_dir"].to_dict()
_day0 = pd.to_datetime(SCANS["subject_id"].map(SUBJECTS["day0_date"]))
SCAN_INFO = (
    SCANS[["scan_id", "subject_id", "scan_date"]]
    .assign(study_day=(pd.to_datetime(SCANS["scan_date"]) - _day0).dt.days.astype(int))
    .to_dict("index")
)


# Parameters of the rules, defined once for every stage.
CLINICAL = config["clinical"]
CLINICAL_TABLES = "results/tables"
# The analysis tables of the clinical stage, read by the statistics and plot rules.
TABLES = {
    name: f"{CLINICAL_TABLES}/{name}.parquet"
    for name in ("subjects", "labs", "scans", "adverse_events")
}
VISIT_WINDOWS = CLINICAL["visits"]
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
# Arms, visits and infusion days of the plots (arm colours follow the arm order: reference, treatment, others).
PLOT_PARAMS = {
    **STATS_PARAMS,
    "infusion_days": list(config["stats"].get("infusion_days", [0, 3, 6])),
}


wildcard_constraints:
    scan="[A-Za-z0-9][A-Za-z0-9._-]*",


def dicom_dir(wildcards):
    """The DICOM folder of one scan."""
    return DICOM_DIRS[wildcards.scan]


def scan_info(wildcards):
    """Per-scan facts that go into its outputs (never anything from the DICOM headers)."""
    return SCAN_INFO[wildcards.scan]


def quantify_mem_mb(wildcards, attempt):
    """Memory of one scan's job, sized for a 600-slice 512 x 512 series (measured peak: ~500 MB + 10 MB per
    million voxels). The series is only chosen inside the job, so the request cannot follow its size: a job that
    runs out of memory is resubmitted with twice as much (``retries`` in the SLURM profile).
    """
    return 2100 * attempt


def lesion_mask(wildcards):
    """Optional user-supplied lesion mask (NIfTI) of one scan, [] when thresholds are used."""
    path = config["imaging"]["lesion_masks"].get(wildcards.scan)
    return [path] if path else []


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


def imaging_targets():
    return [
        "results/imaging/metrics.csv",
        "results/imaging/regions.csv",
        "results/imaging/qc.csv",
    ] + per_scan("results/scans/{scan}/qc.png")


def clinical_targets():
    """Final outputs of the clinical stage."""
    return [
        *rules.clinical_tables.output,
        *rules.clinical_scans.output,
    ]


def stats_targets():
    """Final outputs of the statistics stage."""
    return [*rules.stats_tables.output, *rules.stats_mixed_models.output]


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
