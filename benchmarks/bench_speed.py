"""Speed and peak memory of one full-size scan from DICOM folder to metrics, masks and QC picture (prints figures).

A 512 x 512 x 300 chest CT (1 mm slices, uncompressed Explicit VR Little Endian, one file per slice) is rendered by
the demo phantom and written once. Then, in the same run and with the files in the page cache:

- SimpleITK alone reads the series (``sitk.ImageSeriesReader``; best of two reads) as the reference,
- :func:`lungtrial.imaging.quantify.quantify_scan` runs in a child process (ingest + read, segment, measure, write), and
  its peak memory is the child's own max RSS (``resource.getrusage(RUSAGE_SELF)`` in the child, so that helper
  processes of the scan generator do not count).

Targets: total <= 3 x the SimpleITK read time, peak <= 1.5 GB. The ratio is also printed without the segmentation
stage (``lungtrial.imaging.segmentation``: lungs, vessels, opacity exclusion), which dominates the total.

Run: ``python benchmarks/bench_speed.py [--workdir DIR] [--repeat N]`` (the scan is kept in DIR and reused when
present; the reference and the pipeline run N times each (default 5) and the fastest run is printed, with the
median ratio: the machine may be shared).

Transparent huge pages: numpy asks for them on large arrays (``madvise``) unless ``NUMPY_MADVISE_HUGEPAGE=0`` is
set before it is imported. On a virtual machine where faulting in a huge page is slow (memory compaction), that
cost a fresh volume-sized array up to a few tenths of a second, at random; the pipeline therefore allocates its
volumes in ordinary pages (:func:`lungtrial.memory.new_volume`). The setting in force is printed, and the child
inherits the environment, so ``NUMPY_MADVISE_HUGEPAGE=0 python benchmarks/bench_speed.py`` measures the other case.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHAPE = (300, 512, 512)
SPACING = (1.0, 0.78125, 0.78125)
TARGET_RATIO = 3.0
TARGET_PEAK_GB = 1.5


def write_scan(folder: Path) -> None:
    """Render the phantom (moderate COVID-19-like opacities) and write it as one uncompressed DICOM series."""
    import numpy as np

    from lungtrial.demo.dicomwrite import write_series
    from lungtrial.demo.phantom import Lesions, PhantomParams, make_chest

    hu, _ = make_chest(PhantomParams(), SPACING, SHAPE, Lesions(ground_glass_pct=15.0, consolidation_pct=5.0), seed=1)
    write_series(np.rint(hu).astype(np.int16), SPACING, folder, thickness_mm=SPACING[0], uid_seed="bench_speed")


def sitk_read(folder: Path) -> float:
    """Seconds for SimpleITK to read the series (best of two)."""
    import SimpleITK as sitk

    best = float("inf")
    for _ in range(2):
        t0 = time.perf_counter()
        reader = sitk.ImageSeriesReader()
        reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
        image = reader.Execute()
        best = min(best, time.perf_counter() - t0)
        assert image.GetSize() == SHAPE[::-1], image.GetSize()
        del image
    return best


def _thp() -> str:
    """The kernel's transparent huge page mode (the bracketed word), or "unknown"."""
    try:
        text = Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text()
    except OSError:
        return "unknown"
    return text[text.find("[") + 1 : text.find("]")] if "[" in text else text.strip()


def child(folder: str, outdir: str) -> None:
    """Run the pipeline on the scan and print its result (timings) as JSON."""
    from lungtrial.imaging.quantify import quantify_scan

    t0 = time.perf_counter()
    result = quantify_scan(folder, "BENCH", outdir, title="speed benchmark")
    result["timings"]["process"] = time.perf_counter() - t0
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # ru_maxrss is in KiB
    print(json.dumps({"status": result["status"], "timings": result["timings"], "peak_gb": peak_gb}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, help="folder for the generated scan and outputs (default: temporary)")
    parser.add_argument(
        "--repeat", type=int, default=5, help="runs of the reference and the pipeline (best shown; default 5)"
    )
    parser.add_argument("--child", nargs=2, metavar=("DICOM", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return

    with tempfile.TemporaryDirectory() as tmp:
        work = args.workdir or Path(tmp)
        folder = work / "dicom"
        if not folder.is_dir() or len(list(folder.iterdir())) != SHAPE[0]:
            t0 = time.perf_counter()
            write_scan(folder)
            print(f"generated {SHAPE[0]} slices of {SHAPE[1]} x {SHAPE[2]} in {time.perf_counter() - t0:.0f} s")
        size_mb = sum(p.stat().st_size for p in folder.iterdir()) / 1e6
        for p in folder.iterdir():  # warm the page cache for both readers
            p.read_bytes()

        reference, runs = float("inf"), []
        for _ in range(max(1, args.repeat)):
            reference = min(reference, sitk_read(folder))
            t0 = time.perf_counter()
            proc = subprocess.run(
                [sys.executable, __file__, "--child", str(folder), str(work / "out")], capture_output=True, text=True
            )
            wall = time.perf_counter() - t0
            if proc.returncode:
                sys.exit(f"pipeline failed:\n{proc.stderr}")
            runs.append(json.loads(proc.stdout.strip().splitlines()[-1]) | {"wall": wall})
        result = min(runs, key=lambda r: r["timings"]["total"])
        wall, peak_gb = result["wall"], max(r["peak_gb"] for r in runs)

    t = result["timings"]
    print(f"series: {SHAPE[0]} x {SHAPE[1]} x {SHAPE[2]}, {size_mb:.0f} MB uncompressed; status {result['status']}")
    print(
        f"transparent huge pages: {_thp()}; NUMPY_MADVISE_HUGEPAGE={os.environ.get('NUMPY_MADVISE_HUGEPAGE', 'unset')}"
    )
    if len(runs) > 1:
        totals = ", ".join(f"{r['timings']['total']:.2f}" for r in runs)
        print(f"best of {len(runs)} runs (pipeline totals: {totals} s; peak memory: the largest)")
    print(f"SimpleITK ImageSeriesReader read: {reference:6.2f} s")
    for stage in ("read", "segment", "measure", "write", "total"):
        print(f"pipeline {stage:<8}: {t[stage]:6.2f} s")
    print(
        f"child process wall time (with imports): {wall:6.2f} s (process start and imports: {wall - t['total']:.2f} s)"
    )
    ratio = t["total"] / reference
    print(
        f"total / SimpleITK read = {ratio:.2f} (target <= {TARGET_RATIO}: {'met' if ratio <= TARGET_RATIO else 'MISSED'})"
    )
    if len(runs) > 1:
        median = statistics.median(r["timings"]["total"] for r in runs) / reference
        print(f"median run: total / SimpleITK read = {median:.2f}")
    rest = t["total"] - t["segment"]
    print(f"total without segment (read + measure + write + orchestration) / SimpleITK read = {rest / reference:.2f}")
    print(
        f"peak memory (child max RSS) = {peak_gb:.2f} GB (target <= {TARGET_PEAK_GB}: "
        f"{'met' if peak_gb <= TARGET_PEAK_GB else 'MISSED'})"
    )


if __name__ == "__main__":
    main()
