"""Peak memory and run time of every rule on demo scans: the figures behind the rules' `resources:`.

    python benchmarks/bench_resources.py --size small
    python benchmarks/bench_resources.py --size full --n-per-arm 1 --timepoints 0

Runs the demo workflow in a temp dir, one job at a time (so that jobs do not disturb each other's timings),
through a wrapper Snakefile that gives every rule a `benchmark:` file (Snakemake's own psutil sampling of the
job's process tree). Prints, per rule: jobs, median and max wall seconds, max RSS (MB) and, for per-scan rules,
the scan's voxel count and series size, then the resources the measurements suggest (mem_mb = 1.5 x max RSS
rounded up to 100 MB, at least 200; runtime = 3 x max wall time in minutes, at least 2 minutes). Memory of the
per-scan rules grows with the series: compare the MB per million voxels across --size tiny/small/full.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]

WRAPPER = """\
include: {snakefile!r}


for _rule in workflow.rules:
    if _rule.name != "all":
        _stem = "-".join("{{" + w + "}}" for w in sorted(_rule.wildcard_names)) or "job"
        _rule.benchmark_modifier = workflow.modifier.path_modifier
        _rule.benchmark = f"benchmarks/{{_rule.name}}/{{_stem}}.tsv"
"""


def run_demo(workdir: Path, size: str, n_per_arm: int, timepoints: list[int], targets: list[str]) -> None:
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["demo"] = True
    config["demo_options"].update(size=size, n_per_arm=n_per_arm, timepoints=timepoints)
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    (workdir / "Snakefile").write_text(WRAPPER.format(snakefile=str(REPO / "Snakefile")))
    # The wrapper is the main Snakefile, so the workflow looks for its shipped resources/ beside it.
    (workdir / "resources").symlink_to(REPO / "resources")
    cmd = [
        sys.executable, "-m", "snakemake", *(targets or ["all"]), "--snakefile", "Snakefile",
        "--configfile", "config.yaml", "--cores", "1", "--quiet", "rules",
    ]  # fmt: skip
    subprocess.run(cmd, cwd=workdir, check=True)


def scan_sizes(workdir: Path) -> pd.DataFrame:
    """Per scan: voxels of the chosen series (from series.json) and MB of DICOM files in its folder."""
    rows = []
    for series in sorted(workdir.glob("results/scans/*/series.json")):
        info = json.loads(series.read_text())
        shape = (info.get("geometry") or {}).get("shape")
        scan = series.parent.name
        folder = next(workdir.glob(f"**/dicom/{scan}"), None)
        mb = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 1e6 if folder else math.nan
        rows.append({"scan": scan, "mvoxels": math.prod(shape) / 1e6 if shape else math.nan, "series_mb": mb})
    return pd.DataFrame(rows, columns=["scan", "mvoxels", "series_mb"])


def collect(workdir: Path) -> pd.DataFrame:
    rows = []
    for tsv in sorted(workdir.glob("benchmarks/*/*.tsv")):
        bench = pd.read_csv(tsv, sep="\t")
        rows.append(
            {"rule": tsv.parent.name, "job": tsv.stem, "s": bench["s"].max(), "rss_mb": bench["max_rss"].max()}
        )
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="small", help="demo scan size: tiny, small or full")
    parser.add_argument("--n-per-arm", type=int, default=1)
    parser.add_argument("--timepoints", type=int, nargs="+", default=[0, 7])
    parser.add_argument("--keep", type=Path, help="run in this folder and keep it (default: a temp dir)")
    parser.add_argument("targets", nargs="*", help="Snakemake targets (default: rule all)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="lungtrial-resources.") as tmp:
        workdir = args.keep or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        run_demo(workdir, args.size, args.n_per_arm, args.timepoints, args.targets)
        jobs = collect(workdir)
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


if __name__ == "__main__":
    main()
