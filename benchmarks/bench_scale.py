"""Planning cost of a large trial and the fixed cost of one per-scan job.

    python benchmarks/bench_scale.py                       # 1,000 patients x 5 timepoints
    python benchmarks/bench_scale.py --patients 200 --profile 15

Builds a synthetic trial in a temp dir: subjects and scans sheets for ``--patients`` subjects with
``--timepoints`` scans each, with one empty DICOM folder per scan, so that the DAG holds every
real job. Prints

- the dry run (``snakemake -n`` in a child process): wall time and peak memory (max RSS);
- the fixed start-up cost of one per-scan job, measured two ways: (a) a fresh interpreter doing what Snakemake's
  script preamble, the per-scan script's imports and the measurement's own imports do; (b) what each SLURM job
  adds on top, a Snakemake process that parses the workflow and plans the job's targets (approximated by a dry
  run of one scan's outputs);
- against that, the job's own work: one demo scan (``--size``) through series choice and measurement.

Targets (issue 5): dry run under 15 s and 1 GB; per-job overhead under 1 s. ``--profile N`` reruns the dry run
under cProfile and prints its N most expensive functions (by own time), to find what makes planning slow.
"""

from __future__ import annotations

import argparse
import ast
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
# per-scan rule -> (its script, what the script imports later, when it runs: the modules of the measurement)
PER_SCAN_RULES = {"quantify_scan": ("quantify_scan.py", "from lungtrial.imaging.quantify import preload\npreload()\n")}
# What Snakemake's script preamble runs before a script's own code.
PREAMBLE = "import pickle\nfrom snakemake.logging import logger\nfrom snakemake.iocontainers import Snakemake\n"


def make_trial(outdir: Path, patients: int, timepoints: tuple[int, ...]) -> tuple[Path, int]:
    """Sheets of a ``patients``-subject trial and an empty DICOM folder per scan; returns (config path, scans).

    Planning reads only the subjects and scans sheets; the lab and adverse-event files just have to exist, so
    they hold one row per subject."""
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    arms = [config["stats"]["reference_arm"], config["stats"]["treatment_arm"]]
    ids = [f"S{i:05d}" for i in range(1, patients + 1)]
    day0 = pd.Timestamp("2021-01-04") + pd.to_timedelta(np.arange(patients) % 365, unit="D")
    rng = np.random.default_rng(0)
    iso = lambda dates: dates.strftime("%Y-%m-%d")  # noqa: E731
    pd.DataFrame(
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
    ).to_csv(outdir / "subjects.csv", index=False)
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


def snakemake_cmd(config: Path, workdir: Path, *args: str) -> list[str]:
    return [
        sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
        "--configfile", str(config), *args,
    ]  # fmt: skip


def run_measured(cmd: list[str], log: Path) -> tuple[float, float]:
    """Run ``cmd`` (output to ``log``); returns (wall seconds, its peak RSS in MB). Fails loudly on error."""
    with open(log, "w") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.exit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{log.read_text()[-3000:]}")
    return wall, usage.ru_maxrss / 1024


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


def median_seconds(code: str, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def job_work(size: str, workdir: Path) -> tuple[float, float]:
    """Seconds of (series choice, measurement) of one demo scan of ``size``, in this process."""
    from lungtrial.demo.design import design
    from lungtrial.demo.dicomwrite import write_scan
    from lungtrial.imaging.dicom import ingest
    from lungtrial.imaging.quantify import quantify_scan

    trial = design(n_per_arm=1, timepoints=(0,))
    scan_id = trial.scans["scan_id"].iloc[0]
    dicom = workdir / "dicom"
    write_scan(trial, scan_id, dicom, workdir / "truth", size=size)
    start = time.perf_counter()
    series = ingest(dicom, scan_id)
    ingested = time.perf_counter()
    quantify_scan(dicom, scan_id, workdir / "out", series=series)
    return ingested - start, time.perf_counter() - ingested


def profile_dry_run(config: Path, workdir: Path, top: int) -> None:
    import pstats

    prof = workdir / "dry_run.prof"
    cmd = [sys.executable, "-m", "cProfile", "-o", str(prof), *snakemake_cmd(config, workdir, "-n", "--quiet")[1:]]
    run_measured(cmd, workdir / "profile.log")
    print(f"\ndry run under cProfile, top {top} by own time:")
    pstats.Stats(str(prof)).sort_stats("tottime").print_stats(top)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=1000)
    parser.add_argument("--timepoints", type=int, nargs="+", default=[0, 7, 14, 21, 28])
    parser.add_argument("--size", default="small", help="demo scan size for the job's own work")
    parser.add_argument("--repeat", type=int, default=5, help="repeats of each start-up measurement")
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="print the dry run's top N functions")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="lungtrial-scale.") as tmp:
        tmp = Path(tmp)
        trial_dir, workdir = tmp / "trial", tmp / "run"
        trial_dir.mkdir()
        workdir.mkdir()
        start = time.perf_counter()
        config, n_scans = make_trial(trial_dir, args.patients, tuple(args.timepoints))
        print(f"trial: {args.patients} patients x {len(args.timepoints)} timepoints = {n_scans} scans "
              f"(sheets written in {time.perf_counter() - start:.1f} s)")  # fmt: skip

        # The DAG alone (what the target is about), then the same dry run printing its job table (Snakemake then
        # also works out a reason for each of the ~10,000 jobs: seconds more, none of it planning).
        wall, rss = run_measured(snakemake_cmd(config, workdir, "-n", "--quiet"), tmp / "dry_run_dag.log")
        verdict = "ok" if wall < 15 and rss < 1024 else "OVER TARGET"
        print(f"dry run (DAG): {wall:.1f} s, peak RSS {rss:.0f} MB (target < 15 s, < 1024 MB: {verdict})")
        wall, rss = run_measured(snakemake_cmd(config, workdir, "-n", "--quiet", "rules"), tmp / "dry_run.log")
        print(f"dry run printing the job table: {wall:.1f} s, peak RSS {rss:.0f} MB, "
              f"{job_count(tmp / 'dry_run.log')} jobs")  # fmt: skip

        base = median_seconds("pass", args.repeat)
        print(f"per-scan job start-up (median of {args.repeat}); bare interpreter {base:.2f} s")
        for rule, (name, later) in PER_SCAN_RULES.items():
            code = PREAMBLE + import_lines(REPO / "workflow" / "scripts" / name) + "\n" + later
            seconds = median_seconds(code, args.repeat)
            verdict = "ok" if seconds < 1 else "OVER TARGET"
            print(f"  {rule}: interpreter + preamble + all imports {seconds:.2f} s (target < 1 s: {verdict})")

        first = sorted(p.name for p in (trial_dir / "dicom").iterdir())[0]
        target = f"results/scans/{first}/metrics.csv"
        wall, rss = run_measured(snakemake_cmd(config, workdir, "-n", target), tmp / "one_job.log")
        print(f"  + per SLURM job: Snakemake parsing the workflow and planning one scan: {wall:.1f} s, "
              f"{rss:.0f} MB (paid once per job: per group of scans with profiles/slurm)")  # fmt: skip

        ingest_s, quantify_s = job_work(args.size, tmp / "work")
        print(f"job's own work, one {args.size} demo scan: series choice {ingest_s:.2f} s, "
              f"measurement {quantify_s:.2f} s")  # fmt: skip

        if args.profile:
            profile_dry_run(config, workdir, args.profile)


if __name__ == "__main__":
    main()
