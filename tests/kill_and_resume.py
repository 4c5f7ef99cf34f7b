"""Kill a run of the workflow with SIGKILL at several moments, resume it with the plain command, and compare
every output with an uninterrupted run.

    .venv/bin/python tests/kill_and_resume.py /tmp/resume                    # reduced demo (.test/config)
    .venv/bin/python tests/kill_and_resume.py /tmp/resume results/imaging/qc.csv --main-only --at scan jobs=3

WORKDIR/clean gets one uninterrupted ``snakemake --cores N``. WORKDIR/killed gets the same command, killed
(``kill -9``) at each moment of ``--at``, each time started again with the same plain command, until a last run
completes. A moment is ``t=S`` (S seconds after the start: while Snakemake plans, or just after it locked),
``scan`` (while a scan's job is in its temporary folder) or ``jobs=N`` (once the run has finished N jobs). By
default the whole process group is killed (a closed terminal, a lost node); ``--main-only`` kills only the main
Snakemake process, so that the jobs it started run on, orphaned, beside the resumed run.

Checked: every resumed run starts (no lock error, no incomplete-files error), the last one exits 0, a dry run
then has nothing to do, no temporary files or folders are left, and every file under results/ is present in both
runs and equal: byte for byte, or (reported apart) in content: tables cell by cell, pictures pixel by pixel,
NIfTI masks voxel by voxel with the same affine, JSON by value. Exits 1 on any failure.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile")]
#: What Snakemake prints when a run cannot start because of an earlier one's leftovers.
REFUSALS = re.compile(r"LockException|cannot be locked|IncompleteFilesException|--rerun-incomplete|--unlock")
LEFTOVER = re.compile(r"^\.quantify\.|^\..+\.tmp(\.|$)")


def command(workdir: Path, cores: int, targets: list[str]) -> list[str]:
    """The README's command, run in ``workdir`` with that folder's config.yaml."""
    return [*SNAKEMAKE, "--directory", str(workdir), "--configfile", str(workdir / "config.yaml"),
            "--cores", str(cores), *targets]  # fmt: skip


def start(cmd: list[str], log: Path) -> subprocess.Popen:
    out = log.open("w")
    return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def workspaces(workdir: Path) -> set[Path]:
    """Scan jobs' temporary folders with something in them."""
    return {p.parent for p in (workdir / "results" / "scans").glob("*/.quantify.*/*")}


def reached(moment: str, workdir: Path, log: Path, elapsed: float, before: set[Path]) -> bool:
    """Whether a run started ``elapsed`` seconds ago, logging to ``log``, is at ``moment`` (``before``: the
    temporary folders left by earlier runs)."""
    kind, _, value = moment.partition("=")
    if kind == "t":
        return elapsed >= float(value)
    if kind == "scan":
        return bool(workspaces(workdir) - before)
    if kind == "jobs":
        done = re.findall(r"^(\d+) of \d+ steps", log.read_text(errors="replace"), flags=re.MULTILINE)
        return bool(done) and int(done[-1]) >= int(value)
    raise ValueError(f"kill moment {moment!r}: expected t=SECONDS, scan or jobs=N")


def kill(proc: subprocess.Popen, main_only: bool) -> None:
    if main_only:
        os.kill(proc.pid, signal.SIGKILL)
    else:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def leftovers(workdir: Path) -> list[str]:
    """Temporary files and folders under results/, and Snakemake lock files and incomplete markers."""
    found = [str(p.relative_to(workdir)) for p in (workdir / "results").rglob("*") if LEFTOVER.match(p.name)]
    for state in ("locks", "incomplete"):
        folder = workdir / ".snakemake" / state
        if folder.is_dir():
            found += [str(p.relative_to(workdir)) for p in folder.rglob("*") if p.is_file()]
    return found


def content_equal(a: Path, b: Path) -> bool:
    """Whether two files of one kind hold the same content though their bytes differ."""
    name = a.name
    try:
        if name.endswith((".csv", ".parquet")):
            import pandas as pd

            read = pd.read_parquet if name.endswith(".parquet") else pd.read_csv
            pd.testing.assert_frame_equal(read(a), read(b), check_exact=False, rtol=1e-12, atol=0.0)
            return True
        if name.endswith(".png"):
            import numpy as np
            from PIL import Image

            return np.array_equal(np.asarray(Image.open(a)), np.asarray(Image.open(b)))
        if name.endswith((".nii", ".nii.gz")):
            import nibabel as nib
            import numpy as np

            x, y = nib.load(a), nib.load(b)
            return np.array_equal(x.affine, y.affine) and np.array_equal(np.asarray(x.dataobj), np.asarray(y.dataobj))
        if name.endswith(".json"):
            return json.loads(a.read_text()) == json.loads(b.read_text())
    except (AssertionError, ValueError, OSError):
        return False
    return False


def compare(a: Path, b: Path) -> tuple[int, dict[str, list[str]], list[str]]:
    """Number of byte-identical files, content-equal files by suffix, and differences, between two trees."""
    files_a = {p.relative_to(a) for p in a.rglob("*") if p.is_file()}
    files_b = {p.relative_to(b) for p in b.rglob("*") if p.is_file()}
    problems = [f"only in the clean run: {p}" for p in sorted(files_a - files_b)]
    problems += [f"only in the resumed run: {p}" for p in sorted(files_b - files_a)]
    identical = 0
    equal: dict[str, list[str]] = {}
    for rel in sorted(files_a & files_b):
        if (a / rel).read_bytes() == (b / rel).read_bytes():
            identical += 1
        elif content_equal(a / rel, b / rel):
            equal.setdefault("".join(rel.suffixes[-2:]) if rel.name.endswith(".gz") else rel.suffix, []).append(
                str(rel)
            )
        else:
            problems.append(f"differs: {rel}")
    return identical, equal, problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workdir", type=Path, help="scratch folder (created; its clean/ and killed/ are replaced)")
    parser.add_argument("targets", nargs="*", help="snakemake targets (default: the whole workflow)")
    parser.add_argument("--config", type=Path, default=REPO / ".test" / "config" / "config.yaml")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument(
        "--at", nargs="+", default=["t=3", "scan", "jobs=2", "scan", "jobs=4", "t=8"], metavar="MOMENT",
        help="kill moments, one run each: t=SECONDS, scan, jobs=N (default: %(default)s)",
    )  # fmt: skip
    parser.add_argument("--main-only", action="store_true", help="kill only the main Snakemake process")
    parser.add_argument(
        "--with", dest="extra", type=Path, action="append", default=[], metavar="FOLDER",
        help="copy FOLDER (e.g. a trial's sheets and DICOM folders, times kept) into each run's folder",
    )  # fmt: skip
    args = parser.parse_args(argv)

    runs = {}
    for name in ("clean", "killed"):
        runs[name] = args.workdir / name
        shutil.rmtree(runs[name], ignore_errors=True)
        runs[name].mkdir(parents=True)
        shutil.copy(args.config, runs[name] / "config.yaml")
        for folder in args.extra:
            shutil.copytree(folder, runs[name] / folder.name, symlinks=True)
    clean, killed = runs["clean"], runs["killed"]

    t0 = time.monotonic()
    proc = start(command(clean, args.cores, args.targets), clean / "run.log")
    if proc.wait() != 0:
        print(f"the clean run failed; see {clean / 'run.log'}", file=sys.stderr)
        return 1
    duration = time.monotonic() - t0
    print(f"clean run: {duration:.0f} s")

    problems = []
    for i, moment in enumerate(args.at, start=1):
        log = killed / f"run{i}.log"
        before = workspaces(killed)
        proc = start(command(killed, args.cores, args.targets), log)
        t0 = time.monotonic()
        while proc.poll() is None:
            elapsed = time.monotonic() - t0
            if reached(moment, killed, log, elapsed, before):
                kill(proc, args.main_only)
                print(f"run {i}: killed at {moment} ({elapsed:.1f} s in)")
                break
            time.sleep(0.02)
        else:
            print(f"run {i}: ended before the kill at {moment} (exit {proc.returncode})")
        text = log.read_text(errors="replace")
        if REFUSALS.search(text):
            problems.append(f"run {i} refused to start: {REFUSALS.search(text).group(0)} (see {log})")
    log = killed / "final.log"
    t0 = time.monotonic()
    proc = start(command(killed, args.cores, args.targets), log)
    code = proc.wait()
    text = log.read_text(errors="replace")
    print(f"resumed run: exit {code}, {time.monotonic() - t0:.0f} s")
    if code != 0 or REFUSALS.search(text):
        problems.append(f"the resumed run did not complete (exit {code}); see {log}")
    dry = subprocess.run([*command(killed, 1, args.targets), "-n"], capture_output=True, text=True, check=False)
    if "Nothing to be done" not in dry.stdout + dry.stderr:
        problems.append("a dry run after the resumed run still has jobs to do")
    problems += [f"left over: {p}" for p in leftovers(killed)]

    identical, equal, differences = compare(clean / "results", killed / "results")
    problems += differences
    n_equal = sum(map(len, equal.values()))
    print(f"results: {identical} files byte-identical, {n_equal} equal in content only, {len(differences)} differ")
    for suffix, names in sorted(equal.items()):
        print(f"  equal in content, not in bytes: {len(names)} {suffix} (e.g. {names[0]})")
    for problem in problems:
        print(f"FAIL: {problem}", file=sys.stderr)
    print("resume: ok" if not problems else "resume: FAILED")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
