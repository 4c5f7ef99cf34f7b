"""Set-up shared by the tests that run Snakemake: on a small trial given by sheets (``demo: false``), or as a dry
run whose jobs and their inputs a test reads (:func:`dry_run`, :func:`jobs`).

pytest puts the tests folder on ``sys.path`` (see conftest.py), so a test imports these helpers with
``from workflow_setup import sheets_trial, snakemake_cmd``. Each test module builds its own trial (in a module-scoped
fixture), so that a run in one module never changes another module's files.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile")]
# The reduced configuration of the workflow tests (registration on a coarse grid, tiny demo).
TEST_CONFIG = REPO / ".test" / "config" / "config.yaml"


def snakemake_cmd(workdir: Path, *args: str) -> list[str]:
    """The README's command in ``workdir`` with that folder's ``config.yaml``, and ``args``; nothing else is added
    (the default profile applies)."""
    return [*SNAKEMAKE, "--directory", str(workdir), "--configfile", str(workdir / "config.yaml"), *args]


def run_snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    """Run :func:`snakemake_cmd` to the end; stdout and stderr are captured as text, the exit status is not checked."""
    return subprocess.run(snakemake_cmd(workdir, *args), capture_output=True, text=True, check=False)


def dry_run(workdir: Path, config: dict) -> str:
    """Write ``config`` to ``workdir/config.yaml`` and dry-run the workflow there (``-n``, no job runs).

    Returns
    -------
    The run's stdout and stderr; the test fails when Snakemake exits with an error.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    proc = run_snakemake(workdir, "-n")
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc.stdout + proc.stderr


def jobs(output: str) -> dict[str, list[str]]:
    """Per rule, the 'input:' line of each of its jobs in a dry run's output."""
    found: dict[str, list[str]] = {}
    rule = None
    for line in output.splitlines():
        m = re.match(r"^(?:local)?rule (\w+):", line)
        if m:
            rule = m.group(1)
            found.setdefault(rule, [])
        elif rule and line.strip().startswith("input:"):
            found[rule].append(line.strip())
    return found


def sheets_trial(
    workdir: Path,
    *,
    n_per_arm: int = 1,
    timepoints: tuple[int, ...] = (0, 7),
    scans: int | None = None,
    scans_sheet: str = "trial/scans.csv",
    edit: Callable[[dict], None] | None = None,
) -> Path:
    """A tiny demo trial written as sheets under ``workdir/trial`` and ``workdir/config.yaml`` analysing it.

    Parameters
    ----------
    workdir : folder of the run (created when missing); the trial goes to ``workdir/trial``.
    n_per_arm, timepoints : design of the demo trial (:func:`lungtrial.demo.generate_trial`, size ``tiny``).
    scans : keep only the first ``scans`` rows of the scans sheet (default: all).
    scans_sheet : the scans sheet the config names, relative to ``workdir``: another file (e.g. a subset the test
        writes) lets a test add rows later by pointing the config at ``trial/scans.csv``.
    edit : called with the configuration (the reduced test config, ``demo: false``, the trial's sheets) before it
        is written, to change settings.

    Returns
    -------
    ``workdir``.
    """
    from lungtrial.demo import generate_trial

    workdir.mkdir(parents=True, exist_ok=True)
    trial = workdir / "trial"
    generate_trial(trial, size="tiny", n_per_arm=n_per_arm, timepoints=tuple(timepoints))
    if scans is not None:
        table = pd.read_csv(trial / "scans.csv", dtype=str)
        table.iloc[:scans].to_csv(trial / "scans.csv", index=False)
    config = yaml.safe_load(TEST_CONFIG.read_text())
    config["demo"] = False
    config["sheets"] = {
        "subjects": "trial/subjects.csv",
        "scans": scans_sheet,
        "labs": ["trial/labs.csv"],
        "adverse_events": "trial/adverse_events.csv",
    }
    if edit is not None:
        edit(config)
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    return workdir
