"""Registration of a follow-up CT onto its baseline and the change labels on real chest CT: accuracy, speed, memory.

Usage::

    python benchmarks/bench_registration.py FOLDER [FOLDER ...] [--workdir DIR] [--sections warp,lesions]
                                            [--seed 7] [--draws 1] [--threads 2]
                                            [--param KEY=VALUE ...]

e.g. ``.venv/bin/python benchmarks/bench_registration.py /data/ct/A/ /data/ct/B/ --workdir /tmp/reg``. Each FOLDER
holds one axial chest CT series (any folder :func:`lungtrial.imaging.dicom.ingest` accepts); cases are printed as
``case1``, ``case2``, ... in the order given (no folder name, UID or patient identifier is printed). Nothing of
the scans is written except PNG pictures into ``--workdir`` (default: a temporary folder).

Every scan is read with the library and segmented and classified by :func:`lungtrial.imaging.quantify.analyse_volume`
(lung labels, opacity labels), as the per-scan jobs do; a *pair* is then what the per-pair job will do:
:func:`lungtrial.imaging.registration.register`, :func:`lungtrial.imaging.change.pair_labels` (each scan's lesions'
reach, the follow-up's labels onto the baseline grid, the change labels) and
:func:`~lungtrial.imaging.change.change_volumes`. Its wall time, CPU time and peak resident memory (the process's
high-water mark, reset before the pair; it includes both scans' volumes and masks, which the job holds too) are
printed for every pair; the machine's load shows in the wall time, the CPU time does not depend on it.

The follow-up is the scan moved by a known **breath-hold field** (:func:`breath_hold`): craniocaudal displacement
growing from the apex to the bases (``--amplitude``, drawn in 12-18 mm by default at the bases), a third of it
antero-posterior, a random smooth part (sd 2 mm, 30 mm correlation), all of it confined to the lungs and fading
over about 10 mm into the chest wall (the lungs slide along the wall), then a rigid move of the patient (3 degrees
about the left-right axis, 10 mm). The follow-up is ``baseline(y + g(y))``, so the true follow-up point of the
baseline point ``x = y + g(y)`` is ``y``: the error of a registration ``T`` at 20 000 follow-up lung voxels ``y`` is
``|T(y + g(y)) - y|`` in mm, with no inversion of the field.

``--kernel-pair I J`` adds a case with **no motion and no change**: folders I and J are two reconstructions of one
acquisition (e.g. a sharp and a soft kernel), registered as baseline and follow-up. The error is ``|T(y) - y|`` and
every change label is false change, from the kernels and the registration (table "no motion").

Sections (``--sections``) and targets (from the team's issue):

``warp``
    Each case against itself moved by the breath-hold field: median error inside the lungs (target <= 2 mm), 95th
    percentile (<= 5 mm), the affine stage alone for comparison, Jacobian determinant range inside the lungs (min
    > 0: no folding), Dice of the lungs, QC verdict, and the pair's time and memory (target <= 60 s and 2 GB on 2
    cores for 512 x 512 x 300).
``lesions``
    The first case with lesions inserted by :class:`_realct.LesionMaker` (ground glass as the segmentation
    benchmark inserts it; consolidation as dense as the chest wall): in the baseline, ground glass to resolve
    (right lower zone), to persist (left upper) and to progress (left lower); in the follow-up the persisting
    ground glass, the progressed lesion as consolidation over the same voxels, and new ground glass (right upper
    and middle zones); zones of :mod:`lungtrial.imaging.metrics` on the reference lungs of
    :func:`_realct.reference_lungs`. The follow-up is then moved by another breath-hold field. Truth is the
    inserted masks on the baseline grid, with the patient's own opacity (labels 1 and 2 of the lesion-free scan
    measured inside the reference lungs: about 175 mL on a COVID-19 case) counted as persistent: an inserted lesion
    lying on it neither resolves nor is new, and own consolidation under a progressed lesion stays persistent.
    Printed: resolved, persistent, new and progressed volumes (mL) measured vs truth (target within 10 % or 5 mL),
    with the lungs segmented by the library (``library``), with the follow-up segmented with the baseline as its
    serial prior (``serial``, :func:`lungtrial.imaging.serial.serial_prior`, as the workflow does with
    ``imaging.serial_prior``), with the reference lungs given to ``analyse_volume`` (``reference``: registration
    and labelling without the segmentation) and with the reference lungs and the follow-up not moved
    (``unmoved``: what the per-scan labels give with no motion to recover; the registration still runs).
    ``lesions.png``: an axial and a coronal plane of baseline, follow-up on the baseline grid and change labels.
    The figures depend on where the lesions land (progressed -14.8, -11.9 and -27.3 % with the reference lungs on three
    draws on LIDC-IDRI-0001): ``--draws N`` prints N draws (rows ``case1.1`` ... ``case1.N``; the picture is the
    last draw's).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import Table, add_kernel_pairs, check_kernel_pairs, clock, mark, peak_rss_mb, reset_peak
from _realct import LesionMaker, breath_hold, deform, reference_lungs

from lungtrial.errors import ScanExcluded
from lungtrial.imaging import change
from lungtrial.imaging.dicom import index_folder, ingest, read_volume
from lungtrial.imaging.metrics import REGIONS, region_map
from lungtrial.imaging.quantify import analyse_volume
from lungtrial.imaging.registration import (
    REGISTRATION_OPTIONS,
    Grid,
    register,
    registration_kwargs,
    warp,
)
from lungtrial.imaging.segmentation import segment
from lungtrial.imaging.serial import serial_prior

#: keyword arguments of ``register`` from ``--param`` (the config's ``registration:`` options), for every pair
REGISTER_PARAMS: dict = {}

TARGETS = {"median_mm": 2.0, "p95_mm": 5.0, "volume_pct": 10.0, "volume_ml": 5.0, "seconds": 60.0, "gb": 2.0}
SECTIONS = ("warp", "lesions")
N_POINTS = 20000


# ----------------------------------------------------------------------------------------------------------------
# helpers


def peak_gb() -> float:
    """Peak resident memory since :func:`_harness.reset_peak`, GB."""
    return peak_rss_mb() / 1024


def read(folder: str) -> tuple[np.ndarray, Grid]:
    index = index_folder(folder)
    series = ingest(folder, "bench", index=index)
    vol = read_volume(folder, series, index=index, padding_mask=False)
    return vol.hu, Grid.of(vol.hu, vol.spacing, vol.origin, vol.direction)


def analyse(hu: np.ndarray, grid: Grid, lungs: np.ndarray | None = None) -> dict | None:
    """analyse_volume's result with the volume (``hu``), or None when the scan is excluded (printed)."""
    try:
        return analyse_volume(hu, grid.spacing, lungs=lungs) | {"hu": hu}
    except ScanExcluded as exc:
        print(f"  excluded: {'; '.join(exc.reasons)}")
        return None


def errors(transform, field, follow_lungs: np.ndarray, grid: Grid, rng) -> np.ndarray:
    """|T(y + g(y)) - y| (mm) at follow-up lung voxels ``y`` drawn at random."""
    idx = np.argwhere(follow_lungs > 0)
    idx = idx[rng.choice(len(idx), min(N_POINTS, len(idx)), replace=False)]
    d = np.asarray(grid.direction).reshape(3, 3)
    pts = np.asarray(grid.origin) + (idx[:, ::-1] * np.asarray(grid.spacing[::-1])) @ d.T
    out = np.empty(len(pts))
    for i, y in enumerate(pts):
        out[i] = np.linalg.norm(np.subtract(transform.TransformPoint(field.TransformPoint(tuple(y))), y))
    return out


# ----------------------------------------------------------------------------------------------------------------
# one pair, as the per-pair job does it


def _ct(scan: dict, grid: Grid) -> SimpleNamespace:
    """A scan as the change maps' pair functions take it (``hu``, ``spacing``)."""
    return SimpleNamespace(hu=scan["hu"], spacing=grid.spacing)


def run_pair(base: dict, follow: dict, grid: Grid, threads: int) -> dict:
    """Register, warp, label and measure one pair; timed, with the memory high-water mark."""
    reset_peak()
    with clock() as whole:
        with clock() as registering:
            reg = register(
                base["hu"],
                base["lungs"],
                grid.spacing,
                follow["hu"],
                follow["lungs"],
                grid.spacing,
                fixed_origin=grid.origin,
                fixed_direction=grid.direction,
                moving_origin=grid.origin,
                moving_direction=grid.direction,
                fixed_opacity=base["labels"],
                moving_opacity=follow["labels"],
                threads=threads,
                **REGISTER_PARAMS,
            )
        labels = change.pair_labels(
            reg, _ct(base, grid), base["lungs"], base["labels"], _ct(follow, grid), grid, follow["lungs"],
            follow["labels"],
        )
        row, regions = change.change_volumes(labels, base["lungs"], grid.spacing)
    return {
        "reg": reg,
        "labels": labels,
        "row": row,
        "regions": regions,
        "wall": whole.wall,
        "cpu": whole.cpu,
        "t_reg": registering.wall,
        "peak": peak_gb(),
    }


# ----------------------------------------------------------------------------------------------------------------
# sections


def section_warp(name, hu, grid, base, rng, amplitude, threads, table) -> None:
    field, at_base = breath_hold(base["lungs"], grid, rng, amplitude)
    f_hu, _ = deform(hu, base["lungs"], grid, field)
    follow = analyse(f_hu, grid)
    if follow is None:
        table.add(name, "follow-up excluded")
        return
    pair = run_pair(base, follow, grid, threads)
    reg = pair["reg"]
    f_true = warp(base["lungs"], grid, grid, field, kind="nearest")
    err = errors(reg.transform, field, f_true, grid, np.random.default_rng(0))
    err_aff = errors(reg.affine, field, f_true, grid, np.random.default_rng(0))
    qc = reg.qc
    med, p95 = float(np.median(err)), float(np.percentile(err, 95))
    table.add(
        name,
        "x".join(str(n) for n in grid.shape),
        at_base,
        float(np.median(err_aff)),
        med,
        mark(med <= TARGETS["median_mm"]),
        p95,
        mark(p95 <= TARGETS["p95_mm"]),
        float(err.max()),
        qc["jacobian_min"],
        qc["jacobian_max"],
        mark(qc["jacobian_min"] > 0),
        qc["dice_affine"],
        qc["dice"],
        "failed" if qc["failed"] else "ok",
        pair["t_reg"],
        qc["seconds"].get("affine", math.nan),
        pair["wall"],
        pair["cpu"],
        mark(pair["wall"] <= TARGETS["seconds"]),
        pair["peak"],
        mark(pair["peak"] <= TARGETS["gb"]),
    )
    if qc["failed"]:
        print(f"  {name}: registration failed: {qc['reason']}")


def section_kernel_pair(name, folder_i, folder_j, threads, table) -> None:
    """Two reconstructions of one acquisition (e.g. a sharp and a soft kernel) as baseline and follow-up: no motion,
    no change, so the registration's error is ``|T(y) - y|`` and every change label is false change."""
    hu_i, grid = read(folder_i)
    hu_j, grid_j = read(folder_j)
    if hu_i.shape != hu_j.shape or not np.allclose(grid.origin, grid_j.origin, atol=0.01):
        table.add(name, "the two folders are not on one grid")
        return
    base, follow = analyse(hu_i, grid), analyse(hu_j, grid)
    if base is None or follow is None:
        table.add(name, "a scan is excluded")
        return
    pair = run_pair(base, follow, grid, threads)
    reg, row, qc = pair["reg"], pair["row"], pair["reg"].qc
    identity = sitk.Transform(3, sitk.sitkIdentity)
    err = errors(reg.transform, identity, follow["lungs"], grid, np.random.default_rng(0))
    med, p95 = float(np.median(err)), float(np.percentile(err, 95))
    table.add(
        name,
        med,
        mark(med <= TARGETS["median_mm"]),
        p95,
        mark(p95 <= TARGETS["p95_mm"]),
        float(err.max()),
        qc["jacobian_min"],
        qc["jacobian_max"],
        qc["dice"],
        base["scan"]["pct_opacity"],
        follow["scan"]["pct_opacity"],
        row["pct_resolved"],
        row["pct_new"],
        row["pct_progressed"],
        row["pct_regressed"],
        pair["wall"],
    )


def _within(measured: float, truth: float) -> bool:
    return abs(measured - truth) <= max(TARGETS["volume_ml"], TARGETS["volume_pct"] / 100 * truth)


def section_lesions(name, hu, grid, rng, amplitude, threads, table, workdir, notes) -> None:
    ref, info = reference_lungs(hu, grid.spacing)
    maker = LesionMaker(hu, ref, info["body"], grid.spacing, rng)
    region = region_map(ref)[maker.box]
    idx = {r: i for i, r in enumerate(REGIONS)}

    def ggo_in(*names, fraction=0.03):
        allowed = maker.lung & np.isin(region, [idx[n] for n in names])
        return maker.ground_glass(fraction, allowed)

    resolved = ggo_in("right_lower")
    persistent = ggo_in("left_upper")
    progressed = ggo_in("left_lower")
    new = ggo_in("right_upper", "right_middle")

    def paint(ggo, cons):
        """LesionMaker.insert with the given lesion masks (its painting: ground glass filling the air spaces,
        consolidation as dense as the chest wall, soft edges)."""
        maker.ground_glass = lambda fraction, allowed: ggo & allowed
        maker.consolidation = lambda fraction, allowed: cons
        try:
            return maker.insert("mix", 1.0)[0]
        finally:
            del maker.ground_glass, maker.consolidation

    # the patient's own opacity (what the lesion-free scan shows inside the reference lungs; nearly none on a normal
    # lung, about 175 mL on a COVID-19 case): it is there at both times, so it is persistent, and an inserted lesion
    # lying on it can neither resolve nor be new (own consolidation under a progressed lesion stays consolidation)
    lesion_free = analyse(hu, grid, ref)
    if lesion_free is None:
        table.add(name, "reference", "excluded")
        return
    own_labels = lesion_free.pop("labels")[maker.box]
    del lesion_free
    own = (own_labels == 1) | (own_labels == 2)
    own_cons = own_labels == 2
    del own_labels
    base_hu = paint(resolved | persistent | progressed, np.zeros_like(progressed))
    follow0 = paint(persistent | new, progressed)
    field, at_base = breath_hold(ref, grid, rng, amplitude)
    f_hu, f_ref = deform(follow0, ref, grid, field)
    voxel_ml = float(np.prod(grid.spacing)) / 1000.0
    inserted = {"resolved": resolved, "persistent": persistent, "new": new, "progressed": progressed}
    expected = {
        "resolved": resolved & ~own,
        "new": new & ~own,
        "progressed": progressed & ~own_cons,
    }
    expected["persistent"] = (persistent | own) & ~expected["progressed"]
    truth = {k: float(np.count_nonzero(expected[k])) * voxel_ml for k in inserted}
    print(
        f"  {name}: lesions inserted; displacement at the bases {at_base:.1f} mm; the patient's own opacity "
        f"{np.count_nonzero(own) * voxel_ml:.1f} mL; truth (mL): " + ", ".join(f"{k} {v:.1f}" for k, v in truth.items())
    )
    identity = sitk.Transform(3, sitk.sitkIdentity)
    for lungs_from in ("library", "serial", "reference", "unmoved"):
        moved = field
        if lungs_from == "library":
            base, follow = analyse(base_hu, grid), analyse(f_hu, grid)
        elif lungs_from == "serial":
            # the follow-up measured with the baseline (the less affected scan: no consolidation) as its serial
            # prior, as the workflow does with imaging.serial_prior
            base = analyse(base_hu, grid)
            follow = None
            if base is not None:
                found = serial_prior(f_hu, segment(f_hu, grid.spacing).labels, grid, base_hu, base["lungs"], grid)
                notes.append(
                    f"  {name} serial prior: {'used' if found.qc.get('used') else 'not used: ' + found.qc.get('reason', '')}"
                    f" (covers {found.qc.get('covers', float('nan')):.3f})"
                )
                lungs = segment(f_hu, grid.spacing, prior=found.labels).labels if found.labels is not None else None
                follow = analyse(f_hu, grid, lungs)
        elif lungs_from == "reference":
            base, follow = analyse(base_hu, grid, ref), analyse(f_hu, grid, f_ref)
        else:
            # the follow-up before the breath-hold field, with the reference lungs: what labelling gives with no
            # motion to recover (the registration still runs, as in the pipeline)
            base, follow = analyse(base_hu, grid, ref), analyse(follow0, grid, ref)
            moved = identity
        if base is None or follow is None:
            table.add(name, lungs_from, "excluded")
            continue
        pair = run_pair(base, follow, grid, threads)
        row = pair["row"]
        cells = [name, lungs_from]
        for k in ("resolved", "persistent", "new", "progressed"):
            m = row[f"{k}_ml"]
            cells += [
                truth[k],
                m,
                100 * (m - truth[k]) / truth[k] if truth[k] else math.nan,
                mark(_within(m, truth[k])),
            ]
        changed = np.zeros(grid.shape, np.uint8)
        changed[maker.box] = resolved | new | progressed
        f_changed = warp(changed, grid, grid, moved, kind="nearest")
        err_les = errors(pair["reg"].transform, moved, f_changed, grid, np.random.default_rng(0))
        true_lungs = f_ref if moved is field else ref
        err_lung = errors(pair["reg"].transform, moved, true_lungs, grid, np.random.default_rng(0))
        cells += [
            row["regressed_ml"],
            row["not_compared_ml"],
            float(np.median(err_lung)),
            float(np.median(err_les)),
            pair["reg"].qc["dice"],
            pair["wall"],
            pair["cpu"],
        ]
        table.add(*cells)
        for k, m in inserted.items():
            got = pair["labels"][maker.box][m]
            share = np.bincount(got, minlength=len(change.CHANGE_NAMES)) / max(1, got.size) * 100
            notes.append(
                f"  {name} {lungs_from} lungs, inserted {k}: labelled "
                + ", ".join(f"{n} {p:.0f} %" for n, p in zip(change.CHANGE_NAMES, share) if p >= 0.5)
            )
        if lungs_from == "library" and workdir is not None:
            picture(workdir / "lesions.png", base_hu, pair, grid, f_hu, resolved | progressed | new, maker.box)


def picture(path: Path, base_hu, pair, grid: Grid, f_hu, lesions_box, box) -> None:
    """Axial and coronal planes through the lesions: baseline, follow-up on the baseline grid, change labels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    warped = pair["reg"].warp(f_hu, grid, kind="linear", default=-1024)
    full = np.zeros(grid.shape, bool)
    full[box] = lesions_box
    zc, yc, _ = (round(c) for c in ndimage.center_of_mass(full))
    colours = [(0, 0, 0, 0)] + [
        (*(v / 255 for v in change.CHANGE_COLOURS[n]), 0.0 if n == "normal" else 0.6) for n in change.CHANGE_NAMES[1:]
    ]
    cmap = ListedColormap(colours)
    aspect = grid.spacing[0] / grid.spacing[2]
    fig, axes = plt.subplots(2, 3, figsize=(15, 10))
    for r, (cut, asp) in enumerate(((np.s_[zc], 1.0), (np.s_[:, yc], aspect))):
        for c, (img, title) in enumerate(
            ((base_hu, "baseline"), (warped, "follow-up on the baseline grid"), (base_hu, "change labels"))
        ):
            ax = axes[r, c]
            plane = img[cut]
            ax.imshow(plane[::-1] if r else plane, cmap="gray", vmin=-1200, vmax=200, aspect=asp)
            if c == 2:
                lab = pair["labels"][cut]
                ax.imshow(
                    lab[::-1] if r else lab,
                    cmap=cmap,
                    vmin=0,
                    vmax=len(colours) - 1,
                    interpolation="nearest",
                    aspect=asp,
                )
            ax.set_title(title)
            ax.axis("off")
    fig.suptitle(
        "resolved green, persistent amber, new red, progressed dark red, regressed light green, not compared blue"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    print(f"  picture: {path}")


# ----------------------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", help="DICOM folders, one chest CT series each")
    parser.add_argument("--workdir", type=Path, default=None, help="folder for PNG pictures (default: temporary)")
    parser.add_argument("--sections", default=",".join(SECTIONS), help=f"of {','.join(SECTIONS)}")
    parser.add_argument(
        "--amplitude",
        type=float,
        default=None,
        help="craniocaudal displacement at the bases, mm (default: drawn in 12-18 per pair)",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--draws",
        type=int,
        default=1,
        help="lesions: this many draws of the lesions and the field on the first case, one set of rows each "
        "(the figures vary with where the lesions land)",
    )
    parser.add_argument("--threads", type=int, default=2, help="threads of the pair (default 2)")
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an option of register() for every pair, as in the config's registration: section (e.g. "
        "smoothing_mm=4, demons_iterations=[50,60]); repeat for several",
    )
    add_kernel_pairs(parser, "registered as baseline and follow-up with no motion and no change (table 'no motion')")
    args = parser.parse_args()
    check_kernel_pairs(parser, args.kernel_pair, len(args.folders))
    if args.draws < 1:
        parser.error("--draws: expected at least 1")
    for item in args.param:
        key, _, value = item.partition("=")
        if key not in REGISTRATION_OPTIONS or not value:
            parser.error(f"--param {item!r}: expected KEY=VALUE with KEY one of {', '.join(REGISTRATION_OPTIONS)}")
        try:
            REGISTER_PARAMS.update(registration_kwargs({key: json.loads(value)}))
        except json.JSONDecodeError:
            parser.error(f"--param {item!r}: the value is not a number or a JSON list")
    if REGISTER_PARAMS:
        print("register() options: " + ", ".join(f"{k}={v}" for k, v in REGISTER_PARAMS.items()))
    sections = [s for s in args.sections.split(",") if s]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections: {', '.join(sorted(unknown))}")
    tmp = None
    if args.workdir is None:
        tmp = tempfile.TemporaryDirectory()
        workdir = Path(tmp.name)
    else:
        workdir = args.workdir
        workdir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)

    def amplitude() -> float:
        return args.amplitude if args.amplitude is not None else float(rng.uniform(12.0, 18.0))

    warp_table = Table(
        "registration error on real CT moved by a known breath-hold field (mm), QC, time and memory per pair",
        [
            ("case", 6, ""),
            ("grid", 12, ""),
            ("base_mm", 7, ".1f"),
            ("aff_med", 7, ".2f"),
            ("median", 6, ".2f"),
            ("<=2", 4, ""),
            ("p95", 5, ".2f"),
            ("<=5", 4, ""),
            ("max", 5, ".1f"),
            ("jac_min", 7, ".2f"),
            ("jac_max", 7, ".2f"),
            (">0", 4, ""),
            ("dice_aff", 8, ".3f"),
            ("dice", 5, ".3f"),
            ("qc", 6, ""),
            ("reg_s", 5, ".1f"),
            ("aff_s", 5, ".1f"),
            ("pair_s", 6, ".1f"),
            ("cpu_s", 5, ".1f"),
            ("<=60", 4, ""),
            ("peak_gb", 7, ".2f"),
            ("<=2", 4, ""),
        ],
        "  base_mm: |displacement| at the lung bases (95th percentile); aff_med: median error of the affine stage "
        "alone;\n  reg_s: register() (wall), aff_s: its affine stage (one thread);\n  pair_s: register + lesions' reach + "
        "warp labels + change labels and volumes (wall; cpu_s: CPU seconds of "
        "the process); peak_gb: resident high-water mark during the pair",
    )
    les_cols = [("case", 6, ""), ("lungs", 9, "")]
    for k in ("resolved", "persistent", "new", "progressed"):
        les_cols += [(f"{k[:4]}_true", 9, ".1f"), (f"{k[:4]}_ml", 8, ".1f"), ("diff%", 6, ".1f"), ("ok", 4, "")]
    les_cols += [
        ("regr_ml", 7, ".1f"),
        ("notcmp_ml", 9, ".1f"),
        ("err_lung", 8, ".2f"),
        ("err_les", 7, ".2f"),
        ("dice", 5, ".3f"),
        ("pair_s", 6, ".1f"),
        ("cpu_s", 5, ".1f"),
    ]
    les_table = Table(
        "change volumes (mL, baseline grid) vs inserted lesions; ok: within 10 % or 5 mL",
        les_cols,
        "  lungs: segmented by the library, the follow-up with the baseline as serial prior (serial), the "
        "reference lungs given to analyse_volume (registration and\n  labelling alone), or those with the follow-up "
        "not moved (unmoved: the per-scan labels alone); *_true: the inserted lesions, with the\n  patient's own "
        "opacity counted as persistent;\n  err_lung, err_les: median registration error (mm) in the lungs and in the "
        "lesions that "
        "changed (resolved, new, progressed)",
    )
    from lungtrial.imaging import quantify

    quantify.preload()
    notes: list[str] = []
    for i, folder in enumerate(args.folders, 1):
        name = f"case{i}"
        hu, grid = read(folder)
        print(
            f"{name}: {hu.shape[2]} x {hu.shape[1]} x {hu.shape[0]} voxels, spacing "
            f"{tuple(round(s, 3) for s in grid.spacing)} mm",
            flush=True,
        )
        if "warp" in sections:
            base = analyse(hu, grid)
            if base is not None:
                section_warp(name, hu, grid, base, rng, amplitude(), args.threads, warp_table)
                del base
        if "lesions" in sections and i == 1:
            for draw in range(1, args.draws + 1):
                tag = name if args.draws == 1 else f"{name}.{draw}"
                section_lesions(tag, hu, grid, rng, amplitude(), args.threads, les_table, workdir, notes)
        del hu
    still_table = Table(
        "no motion: two reconstructions of one acquisition registered as baseline and follow-up (--kernel-pair)",
        [
            ("pair", 11, ""),
            ("median", 6, ".2f"),
            ("<=2", 4, ""),
            ("p95", 5, ".2f"),
            ("<=5", 4, ""),
            ("max", 5, ".1f"),
            ("jac_min", 7, ".2f"),
            ("jac_max", 7, ".2f"),
            ("dice", 5, ".3f"),
            ("op_I", 5, ".2f"),
            ("op_J", 5, ".2f"),
            ("resolved", 8, ".2f"),
            ("new", 5, ".2f"),
            ("progr", 5, ".2f"),
            ("regr", 5, ".2f"),
            ("pair_s", 6, ".1f"),
        ],
        "  median, p95, max: |T(y) - y| (mm) at follow-up lung voxels (the truth is no motion); op: pct_opacity of "
        "each; resolved ... regr: false change,\n  % of the baseline lung",
    )
    for i, j in args.kernel_pair:
        section_kernel_pair(f"case{i}/case{j}", args.folders[i - 1], args.folders[j - 1], args.threads, still_table)
    for table in (warp_table, les_table, still_table):
        if table.rows:
            print(table.render())
    if notes:
        print("\n".join(["", "where the inserted lesions went (change labels of their baseline voxels):", *notes]))
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
