"""Accuracy of lung volume, lung segmentation and % opacity on generated chest CT (prints a table; not a test).

Scans are rendered by the demo phantom (slice profile, blur, noise) at several slice thicknesses, lesion-free and
with peripheral lesions that touch the pleura, then segmented and measured by the library exactly as in the
workflow (:func:`lungtrial.imaging.quantify.analyse_volume`: segment_lungs, segment_vessels, opacity_exclusion, measure).
Reported per case:

- lung volume error, % of the true lung volume (target: within 2 %),
- Dice of the right and left lung masks vs the truth (mean of both; target >= 0.97),
- |% opacity measured - % true lesion volume| in percentage points (target: within 1 pp),
- the same opacity error when measured inside the true lung mask (isolates segmentation from HU classification),
- for the lesion cases, the share of lesion volume within 5 mm of the pleura,
- for the lesion cases, the true lesion volume (ml) left out of the lung mask: consolidation and ground glass, and
  where it lies: on the lung base (within 15 mm of the lowest lung voxel of its column: diaphragm, costophrenic
  recess), medial (the medial third of its lung's width in its slice: mediastinum, heart, paravertebral gutter)
  or elsewhere (costal pleura, apex).

Run: ``python benchmarks/bench_accuracy.py`` (all thicknesses; ``--thickness 2.5 5`` for a subset).
"""

from __future__ import annotations

import argparse

import numpy as np
from _harness import dice, mark, timed
from scipy import ndimage

from lungtrial.demo.phantom import Lesions, PhantomParams, grid_shape, make_chest
from lungtrial.imaging.quantify import analyse_volume

THICKNESSES = (0.6, 1.25, 2.5, 5.0)
SCENARIOS = {
    "lesion-free": None,
    "pleural 10 %": Lesions(ground_glass_pct=8.0, consolidation_pct=2.0, seed=3),
    "pleural 35 %": Lesions(ground_glass_pct=25.0, consolidation_pct=10.0, seed=5),
}
TARGETS = {"volume_pct": 2.0, "dice": 0.97, "opacity_pp": 1.0}


def pleural_share(lungs: np.ndarray, lesions: np.ndarray, spacing, within_mm: float = 5.0) -> float:
    """Share of lesion voxels within ``within_mm`` of the lung surface (bounding box of the lungs only)."""
    zs, ys, xs = (np.flatnonzero(lungs.any(axis=ax)) for ax in ((1, 2), (0, 2), (0, 1)))
    box = np.s_[zs[0] : zs[-1] + 1, ys[0] : ys[-1] + 1, xs[0] : xs[-1] + 1]
    depth = ndimage.distance_transform_edt(np.pad(lungs[box] > 0, 1), sampling=spacing)[1:-1, 1:-1, 1:-1]
    les = lesions[box] > 0
    return float(np.count_nonzero(les & (depth <= within_mm))) / max(1, int(np.count_nonzero(les)))


def missed_lesions(lungs: np.ndarray, truth, spacing) -> dict[str, float]:
    """True lesion volume (ml) outside the measured lung mask, by kind and by location (see the module doc)."""
    voxel_ml = float(np.prod(spacing)) / 1000.0
    missed = (truth.lesions > 0) & (lungs == 0)
    out = {
        "consolidation": np.count_nonzero(missed & (truth.lesions == 2)) * voxel_ml,
        "ground glass": np.count_nonzero(missed & (truth.lesions == 1)) * voxel_ml,
    }
    z, y, x = np.nonzero(missed)
    side = truth.lungs[z, y, x]
    # lowest true lung voxel of each (y, x) column
    tl = truth.lungs > 0
    lowest = np.where(tl.any(axis=0), tl.argmax(axis=0), 0)
    base = (z - lowest[y, x]) * spacing[0] <= 15.0
    medial = np.zeros(z.size, dtype=bool)
    for label, towards_left in ((1, True), (2, False)):
        mine = truth.lungs == label
        lo = mine.argmax(axis=2)
        hi = mine.shape[2] - 1 - mine[:, :, ::-1].argmax(axis=2)
        sel = side == label
        width = np.maximum(hi[z, y] - lo[z, y], 1)
        frac = (x - lo[z, y]) / width if towards_left else (hi[z, y] - x) / width
        medial |= sel & (frac > 2.0 / 3.0)
    out["base"] = np.count_nonzero(base) * voxel_ml
    out["medial"] = np.count_nonzero(~base & medial) * voxel_ml
    out["other"] = np.count_nonzero(~base & ~medial) * voxel_ml
    return out


def run_case(thickness: float, lesions: Lesions | None, pixel_mm: float, seed: int) -> dict:
    spacing = (thickness, pixel_mm, pixel_mm)
    shape = grid_shape((300.0, 400.0, 400.0), spacing)
    render_s, (hu, truth) = timed(make_chest, PhantomParams(anatomy_seed=seed), spacing, shape, lesions, seed=seed)
    hu = np.clip(np.rint(hu), -32768, 32767).astype(np.int16)
    measure_s, result = timed(analyse_volume, hu, spacing)
    row, lungs = result["scan"], result["lungs"]
    on_truth = analyse_volume(hu, spacing, lungs=truth.lungs)["scan"]
    true = truth.summary()
    out = {
        "shape": shape,
        "volume_pct": 100.0 * (row["lung_volume_ml"] - true["lung_volume_ml"]) / true["lung_volume_ml"],
        "dice": 0.5 * (dice(lungs == 1, truth.lungs == 1) + dice(lungs == 2, truth.lungs == 2)),
        "true_opacity": true["pct_opacity"],
        "opacity": row["pct_opacity"],
        "opacity_pp": row["pct_opacity"] - true["pct_opacity"],
        "truth_lungs_pp": on_truth["pct_opacity"] - true["pct_opacity"],
        "pleural": f"{pleural_share(truth.lungs, truth.lesions, spacing):.0%}" if lesions is not None else "-",
        "missed": missed_lesions(lungs, truth, spacing) if lesions is not None else None,
        "render_s": render_s,
        "measure_s": measure_s,
    }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--thickness", type=float, nargs="+", default=THICKNESSES, help="slice thicknesses, mm")
    parser.add_argument("--pixel", type=float, default=0.8, help="in-plane pixel size, mm (default 0.8)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    head = (
        f"{'case':<14} {'thick':>5} {'shape (z,y,x)':>16} {'vol err %':>9} {'Dice':>6} {'true %':>7} "
        f"{'meas %':>7} {'err pp':>7} {'truth-lung pp':>13} {'pleural':>7} {'pass':>5} {'seg+meas s':>10}"
    )
    print(head)
    print("-" * len(head))
    failures = 0
    for name, lesions in SCENARIOS.items():
        for thickness in args.thickness:
            r = run_case(thickness, lesions, args.pixel, args.seed)
            ok = (
                abs(r["volume_pct"]) <= TARGETS["volume_pct"]
                and r["dice"] >= TARGETS["dice"]
                and abs(r["opacity_pp"]) <= TARGETS["opacity_pp"]
            )
            failures += not ok
            print(
                f"{name:<14} {thickness:>5.2f} {str(r['shape']):>16} {r['volume_pct']:>+9.2f} {r['dice']:>6.3f} "
                f"{r['true_opacity']:>7.2f} {r['opacity']:>7.2f} {r['opacity_pp']:>+7.2f} "
                f"{r['truth_lungs_pp']:>+13.2f} {r['pleural']:>7} {mark(ok):>5} {r['measure_s']:>10.1f}",
                flush=True,
            )
            if r["missed"] is not None:
                m = r["missed"]
                print(
                    f"{'':<14} missed lesion ml: consolidation {m['consolidation']:.1f}, ground glass "
                    f"{m['ground glass']:.1f}; on the base {m['base']:.1f}, medial {m['medial']:.1f}, "
                    f"elsewhere {m['other']:.1f}",
                    flush=True,
                )
    print(
        f"\ntargets: |volume error| <= {TARGETS['volume_pct']} %, Dice >= {TARGETS['dice']}, "
        f"|opacity error| <= {TARGETS['opacity_pp']} pp; cases missing a target: {failures}"
    )


if __name__ == "__main__":
    main()
