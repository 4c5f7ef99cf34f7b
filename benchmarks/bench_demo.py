"""Speed, memory and disk use of the demo-trial generator (prints figures).

Times :func:`lungtrial.demo.design` (run by the workflow at DAG-build time), :func:`lungtrial.demo.write_clinical`
and :func:`lungtrial.demo.write_scan` on a spread of the default trial's scans (different subjects, slice
thicknesses, matrices and extra series) at one size, in this process: wall and CPU seconds per scan, peak RSS and
MB written per scan.

Run: ``python benchmarks/bench_demo.py [--size tiny|small|full] [--scans N] [--workdir DIR]``
(defaults: small, 12 scans, a temporary folder that is removed afterwards).
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time
from pathlib import Path


def _folder_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="small", choices=["tiny", "small", "full"])
    parser.add_argument("--scans", type=int, default=12)
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()

    t0 = time.perf_counter()
    from lungtrial.demo import design, write_clinical, write_scan

    trial = design()
    t_design = time.perf_counter() - t0
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench_demo_"))
    try:
        t0 = time.perf_counter()
        write_clinical(trial, workdir)
        t_clinical = time.perf_counter() - t0
        scans = trial.scans["scan_id"].tolist()
        step = max(1, len(scans) // args.scans)
        chosen = scans[::step][: args.scans]
        walls, cpus, sizes = [], [], []
        for scan_id in chosen:
            folder = workdir / "dicom" / scan_id
            if folder.exists():
                shutil.rmtree(folder)
            w, c = time.perf_counter(), time.process_time()
            truth = write_scan(trial, scan_id, folder, workdir / "truth", size=args.size)
            walls.append(time.perf_counter() - w)
            cpus.append(time.process_time() - c)
            sizes.append(_folder_mb(folder))
            print(f"{scan_id}: {walls[-1]:.2f} s wall, {cpus[-1]:.2f} s CPU, {sizes[-1]:.1f} MB, "
                  f"{truth['shape'][0]} x {truth['shape'][1]} x {truth['shape'][2]} at "
                  f"{truth['slice_thickness_mm']:g} mm, {truth['series']} series", flush=True)
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        n = len(chosen)
        print(f"design(): {t_design:.2f} s (including imports); write_clinical: {t_clinical:.2f} s")
        print(f"write_scan size={args.size}: {n} scans, mean {sum(walls) / n:.2f} s wall, "
              f"{sum(cpus) / n:.2f} s CPU, max {max(walls):.2f} s wall per scan; "
              f"{sum(sizes) / n:.1f} MB per scan; peak RSS {peak_mb:.0f} MB")
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
