"""Speed, peak memory and accuracy of lung segmentation on a generated chest CT.

Usage: ``python benchmarks/bench_segment.py [--size full|small] [--thickness MM] [--lesions GG CONS] [--workdir DIR]
[--repeat N]``

``full`` is 512 x 512 x 300 voxels (0.7 mm pixels, 1 mm slices); ``small`` is about 256 x 256 x 120. The phantom is
rendered in a child process and saved as ``.npy``; a second child process loads it (memory-mapped reading is not
used, the volume is read into RAM as a DICOM reader would) and measures ``segment_lungs``, ``segment_vessels`` and
``opacity_exclusion`` alone, so the printed peak RSS is that of the segmentation step plus the volume itself.

SimpleITK (used by the segmentation for distance maps) is imported before the clock starts, as the workflow imports
it anyway to write the NIfTI masks. The first run in the fresh process is printed as ``cold`` (page faults of new
memory, first calls); then ``--repeat`` more runs on new output arrays, of which the best is printed as ``warm``.
The machine's load shows in the spread: compare figures of one run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

SIZES = {"full": ((300, 512, 512), (1.0, 0.7, 0.7)), "small": ((120, 256, 256), (2.5, 1.4, 1.4))}


def render(size: str, thickness: float | None, lesions: tuple[float, float], out: Path) -> None:
    import numpy as np

    from lungtrial.demo.phantom import Lesions, PhantomParams, make_chest

    shape, spacing = SIZES[size]
    if thickness:
        spacing = (thickness, spacing[1], spacing[2])
        shape = (int(round(shape[0] * SIZES[size][1][0] / thickness)), shape[1], shape[2])
    burden = Lesions(lesions[0], lesions[1], seed=3) if sum(lesions) > 0 else None
    hu, truth = make_chest(PhantomParams(), spacing, shape, burden, seed=1)
    np.save(out / "hu.npy", np.round(hu).astype(np.int16))
    np.save(out / "lungs.npy", truth.lungs)
    np.save(out / "lesions.npy", truth.lesions)
    (out / "spacing.json").write_text(json.dumps(list(spacing)))


def measure(out: Path, repeat: int) -> None:
    import resource
    import time

    import numpy as np
    import SimpleITK  # noqa: F401 - imported by the workflow anyway (NIfTI masks); not part of the timing

    from lungtrial.imaging.segmentation import opacity_exclusion, segment_lungs, segment_vessels

    spacing = tuple(json.loads((out / "spacing.json").read_text()))
    t0 = time.perf_counter()
    hu = np.load(out / "hu.npy")
    t_load = time.perf_counter() - t0
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    def once() -> tuple:
        t0 = time.perf_counter()
        lungs = segment_lungs(hu, spacing)
        t1 = time.perf_counter()
        vessels = segment_vessels(hu, lungs, spacing)
        t2 = time.perf_counter()
        excluded = opacity_exclusion(hu, lungs, spacing, vessels=vessels)
        t3 = time.perf_counter()
        return (t1 - t0, t2 - t1, t3 - t2, t3 - t0), lungs, excluded

    cold, lungs, excluded = once()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    warm = [once()[0] for _ in range(repeat)]
    best = [min(t[i] for t in warm) for i in range(4)] if warm else None

    truth = np.load(out / "lungs.npy")
    lesions = np.load(out / "lesions.npy") > 0
    inl = lungs > 0
    dice = {
        side: 2.0 * ((lungs == k) & (truth == k)).sum() / ((lungs == k).sum() + (truth == k).sum())
        for k, side in ((1, "right"), (2, "left"))
    }
    vol_err = 100.0 * (inl.sum() / (truth > 0).sum() - 1.0)
    opacity = inl & (hu >= -700) & (hu <= 100) & ~excluded
    print(f"shape {hu.shape} spacing {spacing} mm; load .npy {t_load:.2f} s")
    for name, t in (("cold", cold), (f"warm (best of {repeat})", best)):
        if t is not None:
            print(
                f"{name:>18}: segment_lungs {t[0]:.3f} s; segment_vessels {t[1]:.3f} s; "
                f"opacity_exclusion {t[2]:.3f} s; all three {t[3]:.3f} s"
            )
    print(f"peak RSS after the first run {peak:.0f} MB (after loading the volume: {rss0:.0f} MB)")
    print(f"Dice right {dice['right']:.4f} left {dice['left']:.4f}; lung volume error {vol_err:+.2f} %")
    print(
        f"opacity {100.0 * opacity.sum() / inl.sum():.2f} % of the lung vs truth "
        f"{100.0 * lesions.sum() / (truth > 0).sum():.2f} %"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=sorted(SIZES), default="full")
    ap.add_argument("--thickness", type=float, default=None, help="slice thickness and spacing in mm")
    ap.add_argument(
        "--lesions",
        type=float,
        nargs=2,
        default=(10.0, 3.0),
        metavar=("GG", "CONS"),
        help="ground glass and consolidation, %% of the lung volume (default 10 3; 0 0 for healthy lungs)",
    )
    ap.add_argument("--workdir", type=Path, default=None, help="keep the rendered phantom here")
    ap.add_argument("--repeat", type=int, default=3, help="warm runs after the cold one (best printed; default 3)")
    ap.add_argument("--step", choices=["render", "measure"], default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.step == "render":
        render(args.size, args.thickness, tuple(args.lesions), args.workdir)
        return
    if args.step == "measure":
        measure(args.workdir, args.repeat)
        return
    with tempfile.TemporaryDirectory() as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        base = [sys.executable, __file__, "--size", args.size, "--workdir", str(work)]
        if args.thickness:
            base += ["--thickness", str(args.thickness)]
        base += ["--lesions", *(str(v) for v in args.lesions)]
        if not (work / "hu.npy").exists():
            subprocess.run(base + ["--step", "render"], check=True)
        subprocess.run(base + ["--repeat", str(args.repeat), "--step", "measure"], check=True)


if __name__ == "__main__":
    main()
