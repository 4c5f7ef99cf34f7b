"""The workflow at scale: planning cost, per-job overhead, every rule's run time and memory, the demo generator and
the folder fingerprints (prints figures).

``scale``
    Builds a synthetic trial (``--patients`` subjects x ``--timepoints`` scans, an empty DICOM folder per scan, so
    that the DAG holds every real job) and prints the dry run (``snakemake -n`` in a child process: wall time and
    peak memory; targets < 15 s and < 1 GB), the same dry run printing its job table, the fixed start-up cost of
    one per-scan job ((a) a fresh interpreter doing what Snakemake's script preamble, the script's imports and the
    measurement's own imports do, target < 1 s; (b) what each SLURM job adds: Snakemake parsing the workflow and
    planning one scan) and, against that, the job's own work on one demo scan of ``--size``. ``--profile N``
    reruns the dry run under cProfile and prints its N most expensive functions (own time).
``resources``
    Runs the demo workflow in a temporary folder one job at a time through a wrapper Snakefile that gives every
    rule a ``benchmark:`` file (Snakemake's own sampling of the job's process tree), then prints per rule: jobs,
    median and max wall seconds, max RSS (MB), for per-scan rules the scan's voxels and series size, and the
    resources the measurements suggest (mem_mb = 1.5 x max RSS rounded up to 100 MB, at least 200; runtime = 3 x
    max wall time in minutes, at least 2): the figures behind the rules' ``resources:``.
``demo``
    Times the demo generator in this process: ``design`` (run when the workflow is planned), ``write_clinical`` and
    ``write_scan`` on a spread of the default trial's scans at one ``--size``: wall and CPU seconds per scan, MB
    written, peak memory.
``fingerprint``
    What noticing a changed scan folder costs at every Snakemake invocation: the workflow passes
    :func:`lungtrial.imaging.dicom.folder_fingerprint` of each scan folder (relative paths, sizes, modification
    times; no file read) as a parameter of the scan's job. Prints one folder of ``--files`` files, ``--scans``
    such folders (first and second pass), and against that the SHA-256 of one folder's bytes (CT-sized files of
    ``--file-kb``) and what that would make of ``--scans`` folders.

``realtrial``
    The whole workflow on real scans: a trial built around DICOM folders given on the command line (one subject
    each, arms alternating, day 0; the first ``--follow-ups`` subjects also get a day-7 scan, a hard-linked copy of
    their folder, so that the change maps and, with ``--serial-prior``, the serial prior run), with the demo's
    analysis plan and the registration settings for real chest CT (``grid_mm`` 2.5, demons [50, 30]). Prints the
    run's exit status and time, each scan's status, lung volume, opacity and QC warnings, each pair's registration
    Dice and change, and how many of the folders' DICOM identifiers (PatientID, PatientName, AccessionNumber,
    PatientBirthDate; compared in memory, never printed) appear in any output or log (must be 0).

Run: ``python benchmarks/bench_workflow.py scale [--patients 1000] [--timepoints 0 7 14 21 28] [--profile N]``,
``... resources [--size small] [--n-per-arm 1] [--timepoints 0 7]``, ``... demo [--size small] [--scans 12]``,
``... fingerprint [--scans 1000] [--files 500]``, ``... realtrial FOLDER ... [--follow-ups 2] [--serial-prior]
[--keep DIR]``.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _harness as h

REPO = h.REPO
# per-scan rule -> (its script, what the script imports later, when it runs: the modules of the measurement)
PER_SCAN_RULES = {"quantify_scan": ("quantify_scan.py", "from lungtrial.imaging.quantify import preload\npreload()\n")}
# What Snakemake's script preamble runs before a script's own code.
PREAMBLE = "import pickle\nfrom snakemake.logging import logger\nfrom snakemake.iocontainers import Snakemake\n"


def snakemake_cmd(config: Path, workdir: Path, *args: str, snakefile: Path = REPO / "Snakefile") -> list[str]:
    """Snakemake in ``workdir`` with ``config``; ``args`` (targets, options) come first, as ``--configfile`` takes
    every word after it."""
    return [
        sys.executable, "-m", "snakemake", *args, "--snakefile", str(snakefile), "--directory", str(workdir),
        "--configfile", str(config),
    ]  # fmt: skip


# --------------------------------------------------------------------------------------------------------- scale


def make_trial(outdir: Path, patients: int, timepoints: tuple[int, ...]) -> tuple[Path, int]:
    """Sheets of a ``patients``-subject trial and an empty DICOM folder per scan; returns (config path, scans).

    Planning reads only the subjects and scans sheets; the lab and adverse-event files just have to exist, so
    they hold one row per subject."""
    import numpy as np
    import pandas as pd
    import yaml

    from lungtrial.stats import load_plan

    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    arms = [config["stats"]["reference_arm"], config["stats"]["treatment_arm"]]
    ids = [f"S{i:05d}" for i in range(1, patients + 1)]
    day0 = pd.Timestamp("2021-01-04") + pd.to_timedelta(np.arange(patients) % 365, unit="D")
    rng = np.random.default_rng(0)

    def iso(dates):
        return dates.strftime("%Y-%m-%d")

    subjects = pd.DataFrame(
        {
            "subject_id": ids,
            "arm": [arms[i % 2] for i in range(patients)],
            "admission_date": iso(day0 - pd.Timedelta(days=2)),
            "day0_date": iso(day0),
            "discharge_date": iso(day0 + pd.to_timedelta(rng.integers(10, 40, patients), unit="D")),
            "age": rng.integers(25, 80, patients),
            "sex": rng.choice(["F", "M"], patients),
            "severity": rng.choice(["moderate", "severe"], patients),
            "mechanical_ventilation": rng.random(patients) < 0.1,
            "oxygen_support": rng.random(patients) < 0.6,
            "fever": rng.random(patients) < 0.8,
            "cough": rng.random(patients) < 0.7,
            "dyspnoea": rng.random(patients) < 0.5,
            "days_to_symptom_resolution": rng.integers(3, 30, patients),
            "infusion_adverse_event": False,
        }
    )
    # every other column the analysis plan reads (the death column empty: alive at the last contact)
    plan = load_plan(config.get("analysis"), config["clinical"]["visits"])
    for column, kind in plan.subject_columns().items():
        if column == plan.death_column:
            subjects[column] = ""
        elif column not in subjects:
            subjects[column] = rng.random(patients) < 0.5 if kind == "bool" else rng.integers(1, 30, patients)
    subjects.to_csv(outdir / "subjects.csv", index=False)
    pd.DataFrame(
        {"subject_id": ids, "datetime": iso(day0) + "T08:00", "analyte": "CRP", "value": "12.5", "unit": "mg/L"}
    ).to_csv(outdir / "labs.csv", index=False)
    pd.DataFrame(
        {"subject_id": ids, "day": 1, "term": "fever", "grade": 1, "related_to_infusion": False}
    ).to_csv(outdir / "adverse_events.csv", index=False)
    scans = pd.DataFrame(
        [
            {
                "scan_id": f"{subject}-D{day:02d}",
                "subject_id": subject,
                "scan_date": (start + pd.Timedelta(days=day)).strftime("%Y-%m-%d"),
                "dicom_dir": f"dicom/{subject}-D{day:02d}",
            }
            for subject, start in zip(ids, day0)
            for day in timepoints
        ]
    )
    for folder in scans["dicom_dir"]:
        (outdir / folder).mkdir(parents=True)
    scans.to_csv(outdir / "scans.csv", index=False)

    config["demo"] = False
    config["sheets"] = {
        "subjects": str(outdir / "subjects.csv"),
        "scans": str(outdir / "scans.csv"),
        "labs": [str(outdir / "labs.csv")],
        "adverse_events": str(outdir / "adverse_events.csv"),
    }
    path = outdir / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path, len(scans)


def job_count(log: Path) -> str:
    """The 'total' line of a dry run's job stats."""
    for line in log.read_text().splitlines():
        if line.startswith("total"):
            return line.split()[1]
    return "?"


def import_lines(script: Path) -> str:
    """The module-level import statements of a script, as code."""
    tree = ast.parse(script.read_text())
    return "\n".join(ast.unparse(n) for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom)))


def job_work(size: str, workdir: Path) -> tuple[float, float]:
    """Seconds of (series choice, measurement) of one demo scan of ``size``, in this process."""
    from lungtrial.demo.design import design
    from lungtrial.demo.dicomwrite import write_scan
    from lungtrial.imaging.dicom import ingest

    trial = design(n_per_arm=1, timepoints=(0,))
    scan_id = trial.scans["scan_id"].iloc[0]
    dicom = workdir / "dicom"
    write_scan(trial, scan_id, dicom, workdir / "truth", size=size)
    ingest_s, series = h.timed(ingest, dicom, scan_id)
    quantify_s, _ = h.timed(h.quantify, dicom, scan_id, workdir / "out", series=series)
    return ingest_s, quantify_s


def scale(args: argparse.Namespace, tmp: Path) -> None:
    trial_dir, workdir = tmp / "trial", tmp / "run"
    trial_dir.mkdir()
    workdir.mkdir()
    seconds, (config, n_scans) = h.timed(make_trial, trial_dir, args.patients, tuple(args.timepoints))
    print(f"trial: {args.patients} patients x {len(args.timepoints)} timepoints = {n_scans} scans "
          f"(sheets written in {seconds:.1f} s)")  # fmt: skip

    # The DAG alone (what the target is about), then the same dry run printing its job table (Snakemake then also
    # works out a reason for each job: seconds more, none of it planning).
    run = h.run_child(snakemake_cmd(config, workdir, "-n", "--quiet"), log=tmp / "dry_run_dag.log")
    ok = run.wall < 15 and run.peak_mb < 1024
    print(f"dry run (DAG): {run.wall:.1f} s, peak RSS {run.peak_mb:.0f} MB "
          f"(target < 15 s, < 1024 MB: {'ok' if ok else 'OVER TARGET'})")  # fmt: skip
    run = h.run_child(snakemake_cmd(config, workdir, "-n", "--quiet", "rules"), log=tmp / "dry_run.log")
    print(f"dry run printing the job table: {run.wall:.1f} s, peak RSS {run.peak_mb:.0f} MB, "
          f"{job_count(tmp / 'dry_run.log')} jobs")  # fmt: skip

    base = h.interpreter_start("pass", args.repeat)
    print(f"per-scan job start-up (median of {args.repeat}); bare interpreter {base:.2f} s")
    for rule, (name, later) in PER_SCAN_RULES.items():
        code = PREAMBLE + import_lines(REPO / "workflow" / "scripts" / name) + "\n" + later
        seconds = h.interpreter_start(code, args.repeat)
        print(f"  {rule}: interpreter + preamble + all imports {seconds:.2f} s "
              f"(target < 1 s: {'ok' if seconds < 1 else 'OVER TARGET'})")  # fmt: skip

    first = sorted(p.name for p in (trial_dir / "dicom").iterdir())[0]
    run = h.run_child(snakemake_cmd(config, workdir, "-n", f"results/scans/{first}/metrics.csv"), log=tmp / "one.log")
    print(f"  + per SLURM job: Snakemake parsing the workflow and planning one scan: {run.wall:.1f} s, "
          f"{run.peak_mb:.0f} MB (paid once per job: per group of scans with profiles/slurm)")  # fmt: skip

    ingest_s, quantify_s = job_work(args.size, tmp / "work")
    print(f"job's own work, one {args.size} demo scan: series choice {ingest_s:.2f} s, "
          f"measurement {quantify_s:.2f} s")  # fmt: skip

    if args.profile:
        import pstats

        prof = tmp / "dry_run.prof"
        cmd = snakemake_cmd(config, workdir, "-n", "--quiet")
        h.run_child([sys.executable, "-m", "cProfile", "-o", str(prof), *cmd[1:]], log=tmp / "profile.log")
        print(f"\ndry run under cProfile, top {args.profile} by own time:")
        pstats.Stats(str(prof)).sort_stats("tottime").print_stats(args.profile)


# ----------------------------------------------------------------------------------------------------- resources

WRAPPER = """\
include: {snakefile!r}


for _rule in workflow.rules:
    if _rule.name != "all":
        _stem = "-".join("{{" + w + "}}" for w in sorted(_rule.wildcard_names)) or "job"
        _rule.benchmark_modifier = workflow.modifier.path_modifier
        _rule.benchmark = f"benchmarks/{{_rule.name}}/{{_stem}}.tsv"
"""


def run_demo(workdir: Path, size: str, n_per_arm: int, timepoints: list[int], targets: list[str]) -> None:
    import yaml

    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["demo"] = True
    config["demo_options"].update(size=size, n_per_arm=n_per_arm, timepoints=timepoints)
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    (workdir / "Snakefile").write_text(WRAPPER.format(snakefile=str(REPO / "Snakefile")))
    # The wrapper is the main Snakefile, so the workflow looks for its shipped resources/ beside it.
    (workdir / "resources").symlink_to(REPO / "resources")
    cmd = snakemake_cmd(
        workdir / "config.yaml", workdir, *(targets or ["all"]), "--cores", "1", "--quiet", "rules",
        snakefile=workdir / "Snakefile",
    )  # fmt: skip
    h.run_child(cmd, log=workdir / "snakemake.log")


def scan_sizes(workdir: Path):
    """Per scan: voxels of the chosen series (from series.json) and MB of DICOM files in its folder."""
    import pandas as pd

    rows = []
    for series in sorted(workdir.glob("results/scans/*/series.json")):
        info = json.loads(series.read_text())
        shape = (info.get("geometry") or {}).get("shape")
        scan = series.parent.name
        folder = next(workdir.glob(f"**/dicom/{scan}"), None)
        rows.append(
            {
                "scan": scan,
                "mvoxels": math.prod(shape) / 1e6 if shape else math.nan,
                "series_mb": h.folder_mb(folder) if folder else math.nan,
            }
        )
    return pd.DataFrame(rows, columns=["scan", "mvoxels", "series_mb"])


def rule_benchmarks(workdir: Path):
    import pandas as pd

    rows = []
    for tsv in sorted(workdir.glob("benchmarks/*/*.tsv")):
        bench = pd.read_csv(tsv, sep="\t")
        rows.append({"rule": tsv.parent.name, "job": tsv.stem, "s": bench["s"].max(), "rss_mb": bench["max_rss"].max()})
    return pd.DataFrame(rows)


def resources(args: argparse.Namespace, tmp: Path) -> None:
    import pandas as pd

    workdir = args.keep or tmp
    workdir.mkdir(parents=True, exist_ok=True)
    run_demo(workdir, args.size, args.n_per_arm, args.timepoints, args.targets)
    jobs = rule_benchmarks(workdir)
    sizes = scan_sizes(workdir).set_index("scan")
    summary = jobs.groupby("rule").agg(
        jobs=("s", "size"), median_s=("s", "median"), max_s=("s", "max"), max_rss_mb=("rss_mb", "max")
    )
    summary["suggest_mem_mb"] = (summary["max_rss_mb"] * 1.5 / 100).apply(math.ceil).mul(100).clip(lower=200)
    summary["suggest_runtime_min"] = (summary["max_s"] * 3 / 60).apply(math.ceil).clip(lower=2)
    per_scan = jobs[jobs["job"].isin(sizes.index)].join(sizes, on="job")
    if not per_scan.empty:
        per_scan = per_scan.assign(mb_per_mvoxel=per_scan["rss_mb"] / per_scan["mvoxels"])
        summary = summary.join(
            per_scan.groupby("rule").agg(
                max_mvoxels=("mvoxels", "max"),
                max_series_mb=("series_mb", "max"),
                mb_per_mvoxel=("mb_per_mvoxel", "max"),
            )
        )
    print(f"demo size {args.size}: {args.n_per_arm} per arm, timepoints {args.timepoints}, one job at a time")
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.precision", 1):
        print(summary)


# ---------------------------------------------------------------------------------------------------------- demo


def demo(args: argparse.Namespace, tmp: Path) -> None:
    with h.clock() as imported:
        from lungtrial.demo import design, write_clinical, write_scan

        trial = design()
    workdir = args.workdir or tmp
    t_clinical, _ = h.timed(write_clinical, trial, workdir)
    scans = trial.scans["scan_id"].tolist()
    chosen = scans[:: max(1, len(scans) // args.scans)][: args.scans]
    walls, cpus, sizes = [], [], []
    for scan_id in chosen:
        folder = workdir / "dicom" / scan_id
        if folder.exists():
            shutil.rmtree(folder)
        with h.clock() as c:
            truth = write_scan(trial, scan_id, folder, workdir / "truth", size=args.size)
        walls.append(c.wall)
        cpus.append(c.cpu)
        sizes.append(h.folder_mb(folder))
        shape = " x ".join(str(n) for n in truth["shape"])
        print(f"{scan_id}: {c.wall:.2f} s wall, {c.cpu:.2f} s CPU, {sizes[-1]:.1f} MB, {shape} at "
              f"{truth['slice_thickness_mm']:g} mm, {truth['series']} series", flush=True)  # fmt: skip
    n = len(chosen)
    print(f"design(): {imported.wall:.2f} s (including imports); write_clinical: {t_clinical:.2f} s")
    print(f"write_scan size={args.size}: {n} scans, mean {sum(walls) / n:.2f} s wall, {sum(cpus) / n:.2f} s CPU, "
          f"max {max(walls):.2f} s wall per scan; {sum(sizes) / n:.1f} MB per scan; "
          f"peak RSS {h.peak_rss_mb():.0f} MB")  # fmt: skip


# --------------------------------------------------------------------------------------------------- fingerprint


def make_folders(root: Path, scans: int, files: int, size: int = 0) -> list[Path]:
    """``scans`` folders of ``files`` files of ``size`` random bytes each, named as PACS exports often are."""
    folders = []
    for s in range(scans):
        folder = root / f"S{s:05d}"
        folder.mkdir(parents=True)
        for f in range(files):
            with open(folder / f"IM{f:05d}.dcm", "wb") as out:
                if size:
                    out.write(os.urandom(size))
        folders.append(folder)
    return folders


def content_hash(folder: Path) -> str:
    """SHA-256 of every file's bytes, in name order (the alternative that reads the pixels)."""
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            with open(path, "rb") as fp:
                digest.update(hashlib.file_digest(fp, "sha256").digest())
    return digest.hexdigest()


def fingerprint(args: argparse.Namespace, tmp: Path) -> None:
    from lungtrial.imaging.dicom import folder_fingerprint

    seconds, folders = h.timed(make_folders, tmp / "empty", args.scans, args.files)
    print(f"{args.scans} folders x {args.files} files written in {seconds:.1f} s")
    one = statistics.median(h.repeat_seconds(lambda: folder_fingerprint(folders[0]), args.repeat * 4))
    print(f"fingerprint of one folder of {args.files} files: {one * 1e3:.2f} ms")
    for label in ("first pass", "second pass"):
        seconds, _ = h.timed(lambda: [folder_fingerprint(f) for f in folders])
        print(f"fingerprints of {args.scans} folders ({label}): {seconds:.2f} s "
              f"({seconds / args.scans * 1e3:.2f} ms per folder)")  # fmt: skip

    (real,) = make_folders(tmp / "real", 1, args.files, args.file_kb * 1024)
    megabytes = args.files * args.file_kb / 1024
    content_hash(real)  # into the page cache
    hashed = statistics.median(h.repeat_seconds(lambda: content_hash(real), args.repeat))
    print(f"content hash of one folder ({args.files} files, {megabytes:.0f} MB, page cache warm): {hashed:.2f} s "
          f"({megabytes / hashed:.0f} MB/s); for {args.scans} folders: ~{hashed * args.scans / 60:.0f} min, "
          f"{megabytes * args.scans / 1024:.0f} GB read at every run")  # fmt: skip
    fingerprinted = statistics.median(h.repeat_seconds(lambda: folder_fingerprint(real), args.repeat * 4))
    print(f"fingerprint of the same folder: {fingerprinted * 1e3:.2f} ms ({hashed / fingerprinted:.0f} x less)")


# ----------------------------------------------------------------------------------------------------- realtrial


def _identifiers(folder: Path) -> set[str]:
    """The patient identifiers in the first DICOM file of ``folder`` (kept in memory only)."""
    import pydicom

    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")):
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except Exception:  # not DICOM: the next file
            continue
        values = {str(ds.get(tag, "") or "").strip() for tag in ("PatientID", "PatientName", "AccessionNumber",
                                                                   "PatientBirthDate")}
        return {v for v in values if len(v) >= 4}
    return set()


def _found_in(values: set[str], roots: list[Path]) -> int:
    """How many of ``values`` occur in any file under ``roots``, as whole tokens: not inside a longer word or number
    (a four-digit accession number is in the digits of many a measured float)."""
    import re

    patterns = {
        v: re.compile(rb"(?<![0-9A-Za-z])(?<![0-9]\.)" + re.escape(v.encode()) + rb"(?![0-9A-Za-z]|\.[0-9])")
        for v in values
    }
    found = set()
    for root in roots:
        for path in (p for p in root.rglob("*") if p.is_file()):
            data = path.read_bytes()
            found |= {v for v, pattern in patterns.items() if v not in found and pattern.search(data)}
    return len(found)


def realtrial(args: argparse.Namespace, tmp: Path) -> None:
    import pandas as pd
    import yaml

    folders = [Path(f).resolve() for f in args.folders]
    missing = [str(f) for f in folders if not f.is_dir()]
    if missing:
        sys.exit(f"not a folder: {', '.join(missing)}")
    workdir = args.keep or tmp
    workdir.mkdir(parents=True, exist_ok=True)
    config_path, _ = make_trial(workdir, len(folders), (0, 7))
    scans = pd.read_csv(workdir / "scans.csv")
    for folder in scans["dicom_dir"]:
        shutil.rmtree(workdir / folder)
    rows = []
    for i, folder in enumerate(folders):
        subject = f"S{i + 1:05d}"
        day0 = scans.loc[scans["scan_id"] == f"{subject}-D00"].iloc[0]
        rows.append(day0.to_dict() | {"dicom_dir": str(folder)})
        if i < args.follow_ups:  # a copy of the folder as the day-7 scan (one folder per scan)
            copy = workdir / "dicom" / f"{subject}-D07"
            shutil.copytree(folder, copy, copy_function=os.link)
            day7 = scans.loc[scans["scan_id"] == f"{subject}-D07"].iloc[0]
            rows.append(day7.to_dict() | {"dicom_dir": str(copy)})
    pd.DataFrame(rows).to_csv(workdir / "scans.csv", index=False)
    config = yaml.safe_load(config_path.read_text())
    config["registration"] |= {"grid_mm": 2.5, "demons_iterations": [50, 30]}
    config["imaging"]["serial_prior"] = bool(args.serial_prior)
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))

    log = workdir / "snakemake.log"
    with h.clock() as run, log.open("w") as out:
        status = subprocess.run(
            snakemake_cmd(config_path, workdir, "--cores", str(args.cores)), stdout=out, stderr=subprocess.STDOUT
        ).returncode
    print(f"{len(folders)} folders, {len(rows)} scans: snakemake exit status {status} in {run.wall:.0f} s "
          f"(log: {log})")
    results = workdir / "results"
    qc_path = results / "imaging" / "qc.csv"
    if qc_path.exists():
        qc = pd.read_csv(qc_path, keep_default_na=False)
        metrics = pd.read_csv(results / "imaging" / "metrics.csv", keep_default_na=False).set_index("scan_id")
        table = h.Table(
            "scans",
            [("scan", 10, ""), ("status", 8, ""), ("lung_ml", 8, ".0f"), ("opacity_%", 9, ".1f"),
             ("warnings or reason", 18, "")],
        )
        for row in qc.itertuples():
            m = metrics.loc[row.scan_id]
            note = m["exclusion_reason"] if row.status != "ok" else row.warnings
            lung = float(m["lung_volume_ml"]) if row.status == "ok" else math.nan
            pct = float(m["pct_opacity"]) if row.status == "ok" else math.nan
            table.add(row.scan_id, row.status, lung, pct, str(note)[:90])
        table.print()
    change_path = results / "imaging" / "change.csv"
    if change_path.exists():
        change = pd.read_csv(change_path, keep_default_na=False)
        table = h.Table(
            "change pairs",
            [("follow-up", 10, ""), ("status", 8, ""), ("dice", 6, ".3f"), ("resolved_ml", 11, ".1f"),
             ("new_ml", 8, ".1f"), ("not_compared_ml", 15, ".1f"), ("reason", 6, "")],
        )
        for row in change.itertuples():
            cells = [float(v) if v != "" else math.nan for v in (row.dice, row.resolved_ml, row.new_ml,
                                                                    row.not_compared_ml)]
            table.add(row.followup_scan, row.status, *cells, str(row.reason)[:60])
        table.print()
    identifiers = set().union(*(_identifiers(f) for f in folders))
    roots = [p for p in (results, workdir / "logs", workdir / ".snakemake" / "log") if p.exists()]
    leaked = _found_in(identifiers, roots)
    print(f"patient identifiers of the folders: {len(identifiers)} values; found in outputs and logs: {leaked} "
          f"({'ok' if leaked == 0 else 'LEAK'})")


# ---------------------------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> None:
    parser, add_tool = h.tool_parser(__doc__)

    tool = add_tool("scale", "planning cost of a large synthetic trial and the fixed cost of one per-scan job")
    tool.add_argument("--patients", type=int, default=1000)
    tool.add_argument("--timepoints", type=int, nargs="+", default=[0, 7, 14, 21, 28])
    tool.add_argument("--size", default="small", help="demo scan size for the job's own work")
    tool.add_argument("--repeat", type=int, default=5, help="repeats of each start-up measurement")
    tool.add_argument("--profile", type=int, default=0, metavar="N", help="print the dry run's top N functions")

    text = "peak memory and run time of every rule on demo scans (the figures behind the rules' resources)"
    tool = add_tool("resources", text)
    tool.add_argument("--size", default="small", help="demo scan size: tiny, small or full")
    tool.add_argument("--n-per-arm", type=int, default=1)
    tool.add_argument("--timepoints", type=int, nargs="+", default=[0, 7])
    tool.add_argument("--keep", type=Path, help="run in this folder and keep it (default: a temp dir)")
    tool.add_argument("targets", nargs="*", help="Snakemake targets (default: rule all)")

    tool = add_tool("demo", "speed, memory and disk use of the demo-trial generator")
    tool.add_argument("--size", default="small", choices=["tiny", "small", "full"])
    tool.add_argument("--scans", type=int, default=12)
    tool.add_argument("--workdir", type=Path, help="write the scans here and keep them (default: temporary)")

    tool = add_tool("fingerprint", "cost of the scan folders' fingerprints that Snakemake computes at every invocation")
    tool.add_argument("--scans", type=int, default=1000)
    tool.add_argument("--files", type=int, default=500, help="files per scan folder")
    tool.add_argument("--file-kb", type=int, default=512, help="size of each file for the content hash (KiB)")
    tool.add_argument("--repeat", type=int, default=5)

    tool = add_tool("realtrial", "the whole workflow on a trial built around real DICOM folders")
    tool.add_argument("folders", nargs="+", help="DICOM folders, one subject each")
    tool.add_argument("--follow-ups", type=int, default=2, help="subjects that also get a day-7 copy (default 2)")
    tool.add_argument("--serial-prior", action="store_true", help="imaging.serial_prior: true")
    tool.add_argument("--cores", type=int, default=2)
    tool.add_argument("--keep", type=Path, help="build and run the trial in this folder and keep it")

    args = parser.parse_args(argv)
    run = {"scale": scale, "resources": resources, "demo": demo, "fingerprint": fingerprint,
           "realtrial": realtrial}[args.tool]
    with tempfile.TemporaryDirectory(prefix=f"bench_{args.tool}.") as tmp:
        start = time.perf_counter()
        run(args, Path(tmp))
    print(f"({args.tool}: {time.perf_counter() - start:.0f} s in all)")


if __name__ == "__main__":
    main()
