"""Lung segmentation and opacity measurement on real chest CT: accuracy, robustness and speed (prints tables).

Usage::

    python benchmarks/bench_realct.py FOLDER [FOLDER ...] [--workdir DIR] [--cases normal,kernel,lesions,nolungs,nodules]
                                      [--burdens 3 10 25] [--kinds ggo,cons,mix] [--seed 7] [--draws 1]

e.g. ``.venv/bin/python benchmarks/bench_realct.py /data/ct/A/ /data/ct/B/ --workdir /tmp/realct``; three
512 x 512 scans of 130-260 slices take about four minutes on two cores (most of it in the lesion section).
Cases are printed as ``case1``, ``case2``, ... in the order of the folders (no folder name, UID or patient
identifier is printed).

Each FOLDER holds the DICOM files of one axial chest CT series (any study folder that
:func:`lungtrial.imaging.dicom.ingest` accepts). The volume is read with the library (``index_folder`` -> ``ingest`` ->
``read_volume``: int16 HU, x to the patient's left, y posterior, z superior). The code under test is
:func:`lungtrial.imaging.quantify.analyse_volume` alone (segmentation, vessels, opacity); nothing else of the library's
segmentation is called. A :class:`~lungtrial.errors.ScanExcluded` it raises is an outcome and is printed.
Nothing of the scans is written except PNG pictures into ``--workdir`` (default: a temporary folder).

Truth is a **reference lung mask** built here, independently of the library (:func:`_realct.reference_lungs`, full
resolution, classic threshold + connected components + airway removal + vessel filling; its method and limits
are in its docstring). Its volume is printed and its outline drawn (``<case>_reference.png``: four axial slices
and one coronal slice, reference green, library red) so that it can be checked by eye.

Sections (``--cases``) and targets (from the team's issue):

``normal``
    Library lungs vs the reference: Dice (target >= 0.97), volume difference (target within 3 %), and the leak:
    opacity (labels 1|2) the library reports outside the reference (ml; percentage points of the library's lung
    volume), and the excess: library ``pct_opacity`` minus ``pct_opacity`` measured by the same call with the
    reference as ``lungs`` (target <= 1 point: a normal lung reads at most 1 point more opacity than inside its
    true boundary). Library lung outside the reference is split by where it lies: ``below`` (under the lowest
    reference voxel of its (y, x) column: liver, spleen, under the diaphragm), ``medial`` (between the two
    reference lungs of its (z, y) row, else of its slice: mediastinum, hilum, heart, trachea) and ``other``
    (chest wall, apex); ``airway`` is the part of it inside the trachea and main bronchi that the reference
    removed.
``kernel``
    Two kernels of one acquisition: a sharp "lung" kernel simulated from the soft one (in-plane unsharp mask
    ``hu + 1.5 * (hu - gaussian(hu, 0.7 mm))`` plus in-plane correlated Gaussian noise scaled so that the local
    noise in soft tissue is about 90 HU; padding outside the field of view is left alone; clipped to int16); the
    noise of both is printed (median 5 x 5 local sd in soft tissue). Dice of the two library lung masks (target
    >= 0.95), volume difference (within 3 %), pct_opacity difference (within 1 point). ``<case>_kernel.png``.
``--kernel-pair I J``
    Two real reconstructions of one acquisition given as folders I and J (e.g. a sharp and a soft kernel of the
    same series positions): Dice of the two library lung masks, volume and pct_opacity difference, with the
    targets of ``kernel``. Printed after the reference table.
``lesions``
    COVID-like lesions inserted into the real lungs (seeded by ``--seed``; ``--draws N``: N draws per case, rows
    ``case1.1`` ...), at ``--burdens`` % of the reference lung volume, as ground glass (``ggo``), consolidation
    (``cons``) and half of each (``mix``). Ground glass:
    smooth blobs touching the pleura, favouring posterior, basal and lateral lung; the air spaces filled: each
    voxel's air fraction (1 in parenchyma, 0 in vessels and the chest wall, in between in their partial-volume
    edges) raised from the parenchyma's HU so that the lesion's parenchyma reads about -650..-500 HU (vessels and
    the pleura's partial-volume rim are not brightened beyond their air fraction; texture and noise are kept).
    Consolidation as dense as the chest wall (median of the soft tissue, -20..150 HU, 2-8 mm outside the lung,
    plus noise of the scan's soft tissue, correlated in-plane), filling the posterior costophrenic recesses first
    (a dependent level lying on the diaphragm and the posterior wall) and a band along the lateral chest wall.
    Lesions lie inside the reference mask only and touch the pleura; their edges are blended in-plane like a
    soft kernel's partial volume (sigma 0.6 mm). Truth: the reference mask (unchanged) and the lesion voxels.
    Printed: library lung volume vs the lesion-free scan (target within 2 %), rise of pct_opacity vs the inserted
    % of reference lung volume where the lesion-free scan had no opacity (target within 1.5 points; on a diseased
    lung part of a lesion lands on the patient's own opacity, which cannot rise), Dice of the new opacity (labels
    1|2 on the lesion scan that are not opacity on the lesion-free scan) vs the lesions there (target >= 0.85),
    what a serial prior added outside the lesions (mL), and the % of the lesion volume
    (and of the consolidation) kept inside the library's lung mask. ``<case>_lesions_<kind><burden>.png`` shows
    the largest burden: lesions yellow, library lungs red, library opacity cyan. With ``--prior-errors``, each
    lesion scan is measured again with a serial prior (:mod:`lungtrial.imaging.segmentation.prior`): the
    library's lungs of the lesion-free scan, moved by a smooth random displacement of that rms length (a stand-in
    for the residual error of registering another timepoint), as another timepoint of the same patient would give.
    With ``--serial MM``, rows ``serial``: the whole chain, :func:`lungtrial.imaging.serial.serial_prior` registering
    the lesion-free scan moved by a breath-hold field of ``MM`` at the bases onto the lesion scan.
``nolungs``
    Scans without lungs, cropped from the real scan: the slices entirely below the reference lungs' lowest slice
    ("abdomen"), and those entirely above the apices ("neck"). Fewer than 20 slices are padded to 20 by mirroring
    the cropped stack (said in the table); none at all is "n/a". Target: every one excluded
    (:class:`~lungtrial.errors.ScanExcluded`); otherwise what it measured is printed.

``nodules``
    Real nodules and masses outlined by radiologists: the LIDC-IDRI reading XML in the folder (its
    ``unblindedReadNodule`` outlines, one per reader; nodules under 3 mm have a point, not an outline, and are left
    out), each reader's outline filled slice by slice (exclusion outlines taken out) and the readers' outlines of one
    nodule grouped by overlap. Printed per nodule: readers, volume (median over readers), the share of it inside
    the library's lungs and inside the reference lungs (median over readers; target: the whole nodule is lung, so
    its volume and opacity count), the share labelled opacity by the library, and how far it lies from the
    mediastinum (its centre's distance to the body midline, mm) so that juxta-mediastinal nodules are seen. A
    folder without such an XML prints nothing.

Speed (always printed): wall time of the first ``analyse_volume`` call on the scan (all library modules imported
beforehand), the library read (index + ingest + read_volume) and SimpleITK's own series read
(``ImageSeriesReader`` on ``GetGDCMSeriesFileNames``) of the same folder, page cache warm, and the ratio
analyse_volume / SimpleITK read.

Memory: one case at a time; a 512 x 512 x 260 volume is 136 MB as int16, the script peaks at a few GB.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import tempfile
import time
from pathlib import Path

import _harness as h
import numpy as np
from _harness import Table, dice, mark
from _realct import LesionMaker, bbox, correlated_noise, local_noise_sd, ml, reference_lungs
from scipy import ndimage

from lungtrial.errors import ScanExcluded
from lungtrial.imaging.dicom import index_folder, ingest, read_volume
from lungtrial.imaging.quantify import analyse_volume
from lungtrial.imaging.segmentation import segment

TARGETS = {
    "nodule_inside_pct": 95.0,  # a nodule is lung: its volume and opacity count (median over its readers' outlines)
    "dice": 0.97,
    "volume_pct": 3.0,
    "excess_pp": 1.0,
    "kernel_dice": 0.95,
    "kernel_volume_pct": 3.0,
    "kernel_opacity_pp": 1.0,
    "lesion_volume_pct": 2.0,
    "lesion_rise_pp": 1.5,
    "lesion_dice": 0.85,
}
SECTIONS = ("normal", "kernel", "lesions", "nolungs", "nodules")
MIN_NOLUNG_SLICES = 20
_BURDENS_DRAWN: dict[str, list[float]] = {}  # per case, the burdens of the lesions section (the largest is drawn)


# ----------------------------------------------------------------------------------------------------------------
# small helpers


def pct_diff(new: float, ref: float) -> float:
    return 100.0 * (new - ref) / ref if ref else math.nan


# ----------------------------------------------------------------------------------------------------------------
# reading


def read_case(folder: str, max_thickness_mm: float | None = None) -> dict:
    """Read a folder with the library and with SimpleITK (timed, page cache warmed first).

    ``max_thickness_mm`` overrides the library's default limit on slice thickness (thicker series are excluded).
    """
    h.warm_page_cache(folder)  # so that both readers see the same disk state
    with h.clock() as c:
        index = index_folder(folder)
        options = {} if max_thickness_mm is None else {"max_slice_thickness_mm": max_thickness_mm}
        series = ingest(folder, "bench", index=index, **options)
        vol = read_volume(folder, series, index=index, padding_mask=True)
    t_lib = c.wall
    del index
    t_sitk, shape = h.sitk_read(folder, recursive=True)
    if shape != vol.hu.shape:
        print(f"  note: SimpleITK read {shape} voxels, the library {vol.hu.shape}")
    return {
        "hu": vol.hu,
        "spacing": tuple(float(s) for s in vol.spacing),
        "padding": vol.padding if vol.padding is not None else np.zeros(vol.hu.shape, bool),
        "origin": tuple(float(o) for o in vol.origin),
        "direction": np.asarray(vol.direction, float),
        "t_read_lib": t_lib,
        "t_read_sitk": t_sitk,
    }


def run_library(hu: np.ndarray, spacing, **kwargs) -> tuple[dict | None, str, float]:
    """analyse_volume, timed: (result or None, exclusion reason or "", seconds)."""
    with h.clock() as c:
        try:
            res, reason = analyse_volume(hu, spacing, **kwargs), ""
        except ScanExcluded as exc:
            res, reason = None, "; ".join(exc.reasons) or str(exc)
    return res, reason, c.wall


def warm_up() -> None:
    """Import what analyse_volume needs before any clock starts: ``quantify.preload`` where it exists, and one call
    on a tiny lung-free volume (its outcome is ignored)."""
    from lungtrial.imaging import quantify

    if callable(getattr(quantify, "preload", None)):
        quantify.preload()
    with contextlib.suppress(Exception):  # only the imports matter here
        analyse_volume(np.full((12, 48, 48), -1000, np.int16), (2.5, 0.7, 0.7))


def opacity(res: dict) -> np.ndarray:
    return (res["labels"] == 1) | (res["labels"] == 2)


# ----------------------------------------------------------------------------------------------------------------
# pictures


def save_panels(
    path: Path,
    hu: np.ndarray,
    spacing,
    outlines: list[tuple[np.ndarray, str]],
    zs,
    y_cor,
    fills: list[tuple[np.ndarray, str]] = (),
    title: str = "",
) -> None:
    """Axial slices ``zs`` and the coronal slice ``y_cor`` of ``hu`` (lung window), 3 panels a row, each cropped
    to the masks (20 mm margin), with mask outlines and translucent fills."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    dz, dy, dx = spacing
    union = np.zeros(hu.shape, bool)
    for mask, _ in [*outlines, *fills]:
        union |= mask
    if not union.any():
        union[:] = True
    box = bbox(union, (0, round(20 / dy), round(20 / dx)))
    views = [(f"axial z={z}", lambda a, z=z: a[z, box[1], box[2]], dy / dx) for z in zs]
    views.append((f"coronal y={y_cor}", lambda a: a[::-1, y_cor, box[2]], dz / dx))
    ncol = 3
    nrow = math.ceil(len(views) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(6.4 * ncol, 5.2 * nrow), dpi=100, squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, (name, take, aspect) in zip(axes.ravel(), views):
        ax.imshow(
            take(hu),
            cmap="gray",
            vmin=-1200,
            vmax=300,
            aspect=aspect,
            interpolation="nearest",
        )
        for mask, colour in fills:
            plane = take(mask)
            ax.imshow(
                np.ma.masked_where(~plane, plane),
                cmap=ListedColormap([colour]),
                alpha=0.4,
                aspect=aspect,
                interpolation="nearest",
                vmin=0,
                vmax=1,
            )
        for mask, colour in outlines:
            plane = take(mask).astype(np.float32)
            if plane.any():
                ax.contour(plane, levels=[0.5], colors=colour, linewidths=0.8)
        ax.set_title(name, fontsize=10)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def views_of(ref: np.ndarray) -> tuple[list[int], int]:
    """Four axial slices through the reference lungs (apex to base) and the coronal slice at their centroid."""
    zs = np.flatnonzero(ref.any(axis=(1, 2)))
    picks = [int(zs[int(f * (len(zs) - 1))]) for f in (0.85, 0.55, 0.3, 0.08)]
    y = round(ndimage.center_of_mass(ref > 0)[1])
    return picks, y


# ----------------------------------------------------------------------------------------------------------------
# simulated sharp kernel


def sharp_kernel(
    hu: np.ndarray,
    padding: np.ndarray,
    body: np.ndarray,
    spacing,
    rng,
    target_sd: float = 90.0,
):
    """A sharp-kernel version of ``hu``: in-plane unsharp mask (k = 1.5, sigma 0.7 mm) plus in-plane correlated
    noise (sigma 0.5 mm) scaled so that the soft-tissue local noise is about ``target_sd`` HU; padding kept.
    Returns the int16 volume and the soft-tissue noise before/after (HU)."""
    f = hu.astype(np.float32)
    blur = ndimage.gaussian_filter(f, (0, 0.7 / spacing[1], 0.7 / spacing[2]))
    f += 1.5 * (f - blur)
    del blur
    sd_filtered = local_noise_sd(f, body, spacing)
    noise = correlated_noise(hu.shape, spacing, 0.5, rng)
    # the 5x5 local sd of the correlated noise alone, to scale it to the target
    sd_unit = local_noise_sd(noise * 1.0 + 50.0, np.ones_like(body), spacing)
    add = math.sqrt(max(target_sd**2 - sd_filtered**2, 0.0)) / max(sd_unit, 1e-6)
    f += add * noise
    del noise
    out = np.clip(np.rint(f), -32768, 32767).astype(np.int16)
    out[padding] = hu[padding]
    return out, local_noise_sd(hu, body, spacing), local_noise_sd(out, body, spacing)


# ----------------------------------------------------------------------------------------------------------------
# tables


def below_medial_other(extra: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Masks of ``extra`` voxels below the reference's lowest voxel of their (y, x) column, and medial (between the
    right lung's most medial x and the left lung's most medial x of their (z, y) row, else of their slice)."""
    inside = ref > 0
    has = inside.any(axis=0)
    lowest = np.where(has, inside.argmax(axis=0), -1)  # first (lowest z) reference voxel of the column
    z = np.arange(ref.shape[0])[:, None, None]
    below = extra & has[None] & (z < lowest[None])
    nx = ref.shape[2]
    x = np.arange(nx)

    r, l_ = ref == 1, ref == 2
    rmax_row = np.where(r.any(axis=2), nx - 1 - np.argmax(r[..., ::-1], axis=2), -1)  # (z, y)
    lmin_row = np.where(l_.any(axis=2), np.argmax(l_, axis=2), -1)
    del r, l_
    rmax_sl = rmax_row.max(axis=1)
    lmin_tmp = np.where(lmin_row >= 0, lmin_row, nx)
    lmin_sl = np.where(lmin_tmp.min(axis=1) < nx, lmin_tmp.min(axis=1), -1)
    ok_row = (rmax_row >= 0) & (lmin_row >= 0)
    ok_sl = (rmax_sl >= 0) & (lmin_sl >= 0)
    lo = np.where(ok_row, rmax_row, np.where(ok_sl, rmax_sl, -1)[:, None])
    hi = np.where(ok_row, lmin_row, np.where(ok_sl, lmin_sl, -1)[:, None])
    medial = extra & (x[None, None, :] > lo[..., None]) & (x[None, None, :] < hi[..., None]) & ~below
    return below, medial


# ----------------------------------------------------------------------------------------------------------------
# main


def section_normal(name, hu, spacing, ref, info, base, table: Table) -> None:
    refb, lib = ref > 0, base["lungs"] > 0
    ref_ml, lib_ml = ml(refb, spacing), base["scan"]["lung_volume_ml"]
    vol = pct_diff(lib_ml, ref_ml)
    d = dice(lib, refb)
    extra = lib & ~refb
    below, medial = below_medial_other(extra, ref)
    other = extra & ~below & ~medial
    airway = ml(extra & info["airway"], spacing) if "airway" in info else math.nan
    op_out = opacity(base) & ~refb
    inref, _, _ = run_library(hu, spacing, lungs=ref)
    pct_in = inref["scan"]["pct_opacity"] if inref is not None else math.nan
    excess = base["scan"]["pct_opacity"] - pct_in
    table.add(
        name,
        ref_ml,
        lib_ml,
        vol,
        mark(abs(vol) <= TARGETS["volume_pct"]),
        d,
        dice(base["lungs"] == 1, ref == 1),
        dice(base["lungs"] == 2, ref == 2),
        mark(d >= TARGETS["dice"]),
        ml(extra, spacing),
        ml(below, spacing),
        ml(medial, spacing),
        airway,
        ml(other, spacing),
        ml(refb & ~lib, spacing),
        ml(op_out, spacing),
        100.0 * ml(op_out, spacing) / lib_ml,
        base["scan"]["pct_opacity"],
        pct_in,
        excess,
        mark(excess <= TARGETS["excess_pp"]),
    )


def section_kernel(name, hu, spacing, padding, body, ref, base, rng, workdir, views, table, pngs) -> None:
    sharp, sd_soft, sd_sharp = sharp_kernel(hu, padding, body, spacing, rng)
    res, reason, _ = run_library(sharp, spacing)
    v0, p0 = base["scan"]["lung_volume_ml"], base["scan"]["pct_opacity"]
    if res is None:
        table.add(name, sd_soft, sd_sharp, v0, f"excluded: {reason}")
        return
    v1, p1 = res["scan"]["lung_volume_ml"], res["scan"]["pct_opacity"]
    vol = pct_diff(v1, v0)
    d = dice(res["lungs"] > 0, base["lungs"] > 0)
    table.add(
        name,
        sd_soft,
        sd_sharp,
        v0,
        v1,
        vol,
        mark(abs(vol) <= TARGETS["kernel_volume_pct"]),
        d,
        mark(d >= TARGETS["kernel_dice"]),
        p0,
        p1,
        p1 - p0,
        mark(abs(p1 - p0) <= TARGETS["kernel_opacity_pp"]),
    )
    png = workdir / f"{name}_kernel.png"
    save_panels(
        png,
        sharp,
        spacing,
        [(ref > 0, "lime"), (base["lungs"] > 0, "yellow"), (res["lungs"] > 0, "red")],
        *views,
        fills=[(opacity(res), "cyan")],
        title=f"{name}: simulated sharp kernel; reference green, library on the soft kernel yellow, "
        "library on the sharp kernel red, its opacity cyan",
    )
    pngs.append(png)


def warp_labels(labels: np.ndarray, spacing, rms_mm: float, rng: np.random.Generator) -> np.ndarray:
    """``labels`` moved by a smooth random displacement field of ``rms_mm`` root-mean-square length (each
    component Gaussian-smoothed white noise on a grid a quarter of the volume's, sigma 3 cells, upsampled): a
    stand-in for the residual error of registering another timepoint's lungs onto the scan (nearest neighbour)."""
    sp = np.asarray(spacing, float)
    small = [max(4, n // 4) for n in labels.shape]
    zoom = [n / m for n, m in zip(labels.shape, small)]
    grid = np.indices(labels.shape, dtype=np.float32)
    coords = []
    for axis in range(3):
        d = ndimage.zoom(ndimage.gaussian_filter(rng.standard_normal(small), 3.0), zoom, order=1)
        d = d[: labels.shape[0], : labels.shape[1], : labels.shape[2]]
        d *= rms_mm / math.sqrt(3.0) / max(float(np.sqrt(np.mean(d**2))), 1e-9) / sp[axis]
        coords.append(grid[axis] + d)
    return ndimage.map_coordinates(labels, coords, order=0)


def serial_reference(hu: np.ndarray, spacing, base: dict, rng, amplitude_mm: float):
    """Another timepoint of the same patient without lesions: the lesion-free scan moved by a smooth breath-hold
    displacement of ``amplitude_mm`` at the bases (:func:`_realct.breath_hold`), and its library lungs."""
    from _realct import breath_hold, deform

    from lungtrial.imaging.registration import Grid
    from lungtrial.imaging.segmentation import segment

    grid = Grid.of(hu, spacing)
    field, _ = breath_hold(base["lungs"], grid, rng, amplitude_mm)
    moved, _ = deform(hu, base["lungs"], grid, field)
    moved = np.asarray(moved).astype(np.int16)
    return grid, moved, segment(moved, spacing).labels


def section_lesions(
    name, hu, spacing, ref, body, base, rng, burdens, kinds, workdir, table, notes, pngs, prior_errors=(), serial=None, serial_raise=0.0
) -> None:
    maker = LesionMaker(hu, ref, body, spacing, rng)
    priors = {None: None}
    reference = None
    if serial:
        reference = serial_reference(hu, spacing, base, rng, serial)
        notes.append(
            f"  {name}: serial = the library's serial prior (lungtrial.imaging.serial.serial_prior: registration, "
            f"then segment(prior=)) from the lesion-free scan moved by a breath-hold field of {serial:g} mm"
        )
    for err in prior_errors:
        priors[err] = warp_labels(base["lungs"], spacing, err, rng)
        notes.append(
            f"  {name}: prior {err:g} mm = the library's lungs of the lesion-free scan moved by a smooth random "
            f"field of {err:g} mm rms (Dice {dice(priors[err] > 0, base['lungs'] > 0):.3f} against them)"
        )
    notes.append(
        f"  {name}: consolidation {maker.wall_hu:.0f} HU (soft tissue 2-8 mm outside the lung) + noise sd "
        f"{maker.noise_sd:.0f} HU; ground glass on parenchyma of median {maker.parenchyma:.0f} HU"
    )
    ref_ml = ml(ref > 0, spacing)
    op0 = opacity(base)
    v0, p0 = base["scan"]["lung_volume_ml"], base["scan"]["pct_opacity"]
    _BURDENS_DRAWN[name] = list(burdens)
    for kind in kinds:
        for burden in burdens:
            vol_les, ggo, cons = maker.insert(kind, burden)
            truth = ggo | cons
            rows = list(priors.items())
            if reference is not None:
                from lungtrial.imaging.segmentation import segment
                from lungtrial.imaging.serial import serial_prior

                grid, ref_hu, ref_lab = reference
                t0 = time.perf_counter()
                found = serial_prior(
                    vol_les, segment(vol_les, spacing).labels, grid, ref_hu, ref_lab, grid, floor_raise_mm=serial_raise
                )
                notes.append(
                    f"  {name} {kind} {burden:g}: serial prior {'used' if found.qc.get('used') else 'not used'} "
                    f"(covers {found.qc.get('covers', float('nan')):.3f}{', ' + found.qc['reason'] if found.qc.get('reason') else ''}), "
                    f"{time.perf_counter() - t0:.0f} s"
                )
                rows.append(("serial", found.labels))
            alone = None  # the scan's lungs without a prior: what a prior adds is measured against them
            for err, prior in rows:
                if err is not None and prior is None:
                    continue
                lungs = _lesion_row(
                    name,
                    kind,
                    burden,
                    err,
                    prior,
                    vol_les,
                    ggo,
                    cons,
                    truth,
                    spacing,
                    ref_ml,
                    op0,
                    v0,
                    p0,
                    workdir,
                    table,
                    pngs,
                    alone,
                )
                if err is None:
                    alone = lungs
            del vol_les, truth, ggo, cons, alone


def _lesion_row(
    name, kind, burden, err, prior, vol_les, ggo, cons, truth, spacing, ref_ml, op0, v0, p0, workdir, table, pngs,
    alone=None,
) -> np.ndarray | None:
    """One row of the lesions table: the lesion scan measured without a prior (``err`` None) or with ``prior``
    (``alone``: the library's lungs of the same scan without it). Returns the library's lungs (None: excluded)."""
    ins_ml = ml(truth, spacing)
    ins_pct = 100.0 * ins_ml / ref_ml
    # the new opacity a lesion can make: where the scan had none (on a diseased lung part of it lands on the
    # patient's own opacity, which can neither rise nor be found as new)
    fresh = truth & ~op0
    new_pct = 100.0 * ml(fresh, spacing) / ref_ml
    tag = "-" if err is None else (err if isinstance(err, str) else f"{err:g}mm")
    if prior is None:
        res, reason, _ = run_library(vol_les, spacing)
    else:
        res, reason, _ = run_library(vol_les, spacing, lungs=segment(vol_les, spacing, prior=prior).labels)
    if res is None:
        table.add(name, kind, burden, tag, ins_ml, ins_pct, ml(ggo, spacing), ml(cons, spacing), f"excluded: {reason}")
        return None
    lungs = res["lungs"] > 0
    v1, p1 = res["scan"]["lung_volume_ml"], res["scan"]["pct_opacity"]
    vol, rise = pct_diff(v1, v0), p1 - p0
    d = dice(opacity(res) & ~op0, fresh)
    kept = 100.0 * np.count_nonzero(truth & lungs) / max(1, np.count_nonzero(truth))
    ckept = 100.0 * np.count_nonzero(cons & lungs) / np.count_nonzero(cons) if cons.any() else "-"
    # what a prior added that is no lesion (the wall, fat or an organ that the prior covers)
    wrong = ml(lungs & ~alone & ~truth, spacing) if prior is not None and alone is not None else "-"
    table.add(
        name,
        kind,
        burden,
        tag,
        ins_ml,
        ins_pct,
        ml(ggo, spacing),
        ml(cons, spacing),
        v1,
        vol,
        mark(abs(vol) <= TARGETS["lesion_volume_pct"]),
        rise,
        new_pct,
        rise - new_pct,
        mark(abs(rise - new_pct) <= TARGETS["lesion_rise_pp"]),
        d,
        mark(d >= TARGETS["lesion_dice"]),
        kept,
        ckept,
        wrong,
    )
    if burden == max(_BURDENS_DRAWN.get(name, [burden])):
        lz = np.flatnonzero(truth.any(axis=(1, 2)))
        zs = sorted({int(lz[int(f * (len(lz) - 1))]) for f in (0.9, 0.6, 0.35, 0.1)})
        y = round(ndimage.center_of_mass(truth)[1])
        suffix = "" if err is None else f"_{tag}" if isinstance(err, str) else f"_prior{err:g}mm"
        png = workdir / f"{name}_lesions_{kind}{burden:g}{suffix}.png"
        with_prior = "" if err is None else f", with the {tag} prior" if isinstance(err, str) else f", with a {err:g} mm prior"
        save_panels(
            png,
            vol_les,
            spacing,
            [(truth, "yellow"), (lungs, "red")],
            zs,
            y,
            fills=[(opacity(res), "cyan")],
            title=f"{name}: {kind} {burden:g} % inserted (yellow), library lungs (red{with_prior}), "
            "library opacity (cyan)",
        )
        pngs.append(png)
    return lungs


def lidc_nodules(folder: str, shape, spacing, origin, direction) -> list[list[np.ndarray]]:
    """The radiologists' nodule outlines of a LIDC-IDRI reading XML in ``folder``, as voxel masks on the library's
    grid: a list of nodules, each a list of bool masks (one per reader who outlined it), grouped across readers by
    overlap. Empty when the folder holds no such XML or the grid is not an axial one with identity direction."""
    import xml.etree.ElementTree as ET

    from skimage.draw import polygon

    xmls = sorted(Path(folder).glob("*.xml"))
    if not xmls or not np.allclose(direction, np.eye(3), atol=1e-3):
        return []
    z_pos = origin[2] + np.arange(shape[0]) * spacing[0]
    outlines = []
    for path in xmls:
        root = ET.parse(path).getroot()
        ns = {"l": root.tag.split("}")[0].strip("{")} if root.tag.startswith("{") else {"l": ""}
        q = (lambda t: f"l:{t}") if ns["l"] else (lambda t: t)
        for session in root.iterfind(q("readingSession"), ns):
            for nodule in session.iterfind(q("unblindedReadNodule"), ns):
                mask = np.zeros(shape, bool)
                for roi in nodule.iterfind(q("roi"), ns):
                    z = float(roi.findtext(q("imageZposition"), namespaces=ns))
                    k = int(np.argmin(np.abs(z_pos - z)))
                    if abs(z_pos[k] - z) > spacing[0] / 2:
                        continue
                    pts = [(int(e.findtext(q("yCoord"), namespaces=ns)), int(e.findtext(q("xCoord"), namespaces=ns)))
                           for e in roi.iterfind(q("edgeMap"), ns)]
                    if len(pts) < 3:
                        continue
                    rr, cc = polygon([p[0] for p in pts], [p[1] for p in pts], shape[1:])
                    inside = roi.findtext(q("inclusion"), namespaces=ns).strip().upper() == "TRUE"
                    mask[k, rr, cc] = inside
                    if inside:
                        mask[k, [p[0] for p in pts], [p[1] for p in pts]] = True  # the outline itself
                if mask.any():
                    outlines.append(mask)
    groups: list[list[np.ndarray]] = []
    for mask in outlines:
        for group in groups:
            if any((mask & m).any() for m in group):
                group.append(mask)
                break
        else:
            groups.append([mask])
    return groups


def section_nodules(name, folder, data, ref, info, base, table) -> None:
    hu, spacing = data["hu"], data["spacing"]
    groups = lidc_nodules(folder, hu.shape, spacing, data["origin"], data["direction"])
    lungs = base["lungs"] > 0
    op = opacity(base)
    body = info["body"]
    for i, group in enumerate(sorted(groups, key=lambda g: -max(int(m.sum()) for m in g)), start=1):
        in_lib = [float(np.count_nonzero(m & lungs)) / np.count_nonzero(m) * 100 for m in group]
        in_ref = [float(np.count_nonzero(m & (ref > 0))) / np.count_nonzero(m) * 100 for m in group]
        as_op = [float(np.count_nonzero(m & op)) / np.count_nonzero(m) * 100 for m in group]
        union = np.logical_or.reduce(group)
        zc, _, xc = (float(c) for c in ndimage.center_of_mass(union))
        row = body[round(zc)]
        cols = np.flatnonzero(row.any(axis=0))
        midline = (cols[0] + cols[-1]) / 2.0 if cols.size else hu.shape[2] / 2.0
        table.add(
            name,
            i,
            len(group),
            float(np.median([ml(m, spacing) for m in group])),
            float(np.median(in_lib)),
            mark(float(np.median(in_lib)) >= TARGETS["nodule_inside_pct"]),
            float(np.median(in_ref)),
            float(np.median(as_op)),
            abs(xc - midline) * spacing[2],
        )


def section_nolungs(name, hu, spacing, ref, workdir, table, pngs) -> None:
    zref = np.flatnonzero((ref > 0).any(axis=(1, 2)))
    for crop, sl in (
        ("abdomen", slice(0, zref[0])),
        ("neck", slice(zref[-1] + 1, hu.shape[0])),
    ):
        part = hu[sl]
        n = part.shape[0]
        if n == 0:
            table.add(name, crop, 0, "-", "n/a: the scan has no such slice", "-")
            continue
        padded = "no"
        if n < MIN_NOLUNG_SLICES:
            # mirrored copies stacked away from the lungs: below the abdomen crop, above the neck crop
            stack = [part if i % 2 == 0 else part[::-1] for i in range(math.ceil(MIN_NOLUNG_SLICES / n))]
            if crop == "abdomen":
                part = np.concatenate(stack[::-1])[-MIN_NOLUNG_SLICES:]
            else:
                part = np.concatenate(stack)[:MIN_NOLUNG_SLICES]
            padded = f"mirror {n}->{part.shape[0]}"
        res, reason, _ = run_library(np.ascontiguousarray(part), spacing)
        if res is None:
            table.add(name, crop, n, padded, f"excluded: {reason}", "pass")
            continue
        s = res["scan"]
        table.add(
            name,
            crop,
            n,
            padded,
            f"measured: lungs {s['lung_volume_ml']:.0f} ml (R {s['right_lung_ml']:.0f}, "
            f"L {s['left_lung_ml']:.0f}), opacity {s['pct_opacity']:.1f} %",
            "FAIL",
        )
        lz = np.flatnonzero(res["lungs"].any(axis=(1, 2)))
        zs = sorted({int(lz[int(f * (len(lz) - 1))]) for f in (0.8, 0.5, 0.2)})
        y = round(ndimage.center_of_mass(res["lungs"] > 0)[1])
        png = workdir / f"{name}_nolungs_{crop}.png"
        save_panels(
            png,
            part,
            spacing,
            [(res["lungs"] > 0, "red")],
            zs,
            y,
            fills=[(opacity(res), "cyan")],
            title=f"{name}: {crop} crop ({part.shape[0]} slices), library lungs (red), its opacity (cyan)",
        )
        pngs.append(png)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", help="DICOM folders, one chest CT series each")
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="folder for PNG pictures (default: temporary)",
    )
    parser.add_argument(
        "--cases",
        default=",".join(SECTIONS),
        help=f"sections to run, of {','.join(SECTIONS)}",
    )
    parser.add_argument(
        "--burdens",
        type=float,
        nargs="+",
        default=[3.0, 10.0, 25.0],
        help="lesion burdens, %%",
    )
    parser.add_argument(
        "--kinds",
        default="ggo,cons,mix",
        help="lesion kinds, of ggo,cons,mix (default: all)",
    )
    parser.add_argument("--seed", type=int, default=7, help="seed of lesions and noise (default 7)")
    parser.add_argument(
        "--draws",
        type=int,
        default=1,
        help="lesions: this many draws of the lesions per case, one set of rows each (case1.1, case1.2, ...; "
        "the Dice of small lesions varies with where they land)",
    )
    parser.add_argument(
        "--prior-errors",
        type=float,
        nargs="*",
        default=[2.0],
        help="lesions are also measured with a serial prior: the lesion-free scan's library lungs moved by a "
        "smooth random field of these rms lengths, mm (default 2; none: no prior rows)",
    )
    parser.add_argument(
        "--serial",
        type=float,
        default=None,
        metavar="MM",
        help="lesions are also measured with the library's serial prior registered from the lesion-free scan "
        "moved by a breath-hold field of this amplitude at the bases, mm (e.g. 15; rows 'serial')",
    )
    parser.add_argument(
        "--serial-raise",
        type=float,
        default=0.0,
        metavar="MM",
        help="serial_prior's floor_raise_mm for the 'serial' rows (default 0)",
    )
    parser.add_argument(
        "--max-slice-thickness",
        type=float,
        default=None,
        metavar="MM",
        help="measure series up to this slice thickness (default: the library's limit, as in config.yaml)",
    )
    h.add_kernel_pairs(parser, "their library lungs and opacity are compared (table 'two kernels of one acquisition')")
    args = parser.parse_args()
    sections = [s.strip() for s in args.cases.split(",") if s.strip()]
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    if set(sections) - set(SECTIONS) or set(kinds) - {"ggo", "cons", "mix"}:
        parser.error(f"--cases: of {','.join(SECTIONS)}; --kinds: of ggo,cons,mix")
    if args.draws < 1:
        parser.error("--draws: expected at least 1")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench_realct_"))
    workdir.mkdir(parents=True, exist_ok=True)

    warm_up()
    t_start = time.perf_counter()
    ref_t = Table(
        "reference lung mask (independent of the library)",
        [
            ("case", 6, ""),
            ("slices", 6, ""),
            ("dz_mm", 5, ".2f"),
            ("pixel_mm", 8, ".3f"),
            ("ref_ml", 7, ".0f"),
            ("right_ml", 8, ".0f"),
            ("left_ml", 7, ".0f"),
            ("airway_removed", 14, ""),
            ("split_slices", 12, ""),
            ("build_s", 7, ".1f"),
        ],
        "  airway_removed: trachea + main bronchi region-grown up to that HU (not found: no airway removed); "
        "split_slices: slices where the two lungs were joined and split",
    )
    norm_t = Table(
        "normal lung: library vs reference",
        [
            ("case", 6, ""),
            ("ref_ml", 6, ".0f"),
            ("lib_ml", 6, ".0f"),
            ("vol_%", 5, "+.1f"),
            ("ok", 4, ""),
            ("dice", 5, ".3f"),
            ("dice_R", 6, ".3f"),
            ("dice_L", 6, ".3f"),
            ("ok", 4, ""),
            ("extra_ml", 8, ".0f"),
            ("below", 5, ".0f"),
            ("medial", 6, ".0f"),
            ("airway", 6, ".0f"),
            ("other", 5, ".0f"),
            ("missed_ml", 9, ".0f"),
            ("op_out_ml", 9, ".1f"),
            ("op_out_pp", 9, ".2f"),
            ("pct_op", 6, ".2f"),
            ("in_ref", 6, ".2f"),
            ("excess", 6, "+.2f"),
            ("ok", 4, ""),
        ],
        "  vol_%, dice: library lungs vs reference (targets: within 3 %, >= 0.97); extra_ml: library lung outside "
        "the reference, split into below (under the\n  column's lowest reference voxel), medial (between the lungs) "
        "and other; airway: the part of extra_ml in the reference's trachea/main bronchi (counted in medial\n  or "
        "other); missed_ml: reference lung outside the library's; op_out: library opacity outside the reference "
        "(ml; points of library lung volume);\n  pct_op: library pct_opacity; in_ref: pct_opacity of the same call "
        "with the reference as lungs; excess = pct_op - in_ref (target <= 1 point)",
    )
    ker_t = Table(
        "two kernels: soft (as acquired) vs simulated sharp",
        [
            ("case", 6, ""),
            ("noise_soft", 10, ".0f"),
            ("noise_sharp", 11, ".0f"),
            ("soft_ml", 7, ".0f"),
            ("sharp_ml", 8, ".0f"),
            ("vol_%", 5, "+.2f"),
            ("ok", 4, ""),
            ("dice", 5, ".3f"),
            ("ok", 4, ""),
            ("pct_op_soft", 11, ".2f"),
            ("pct_op_sharp", 12, ".2f"),
            ("diff_pp", 7, "+.2f"),
            ("ok", 4, ""),
        ],
        "  noise: median 5x5 local sd in soft tissue (HU); library on soft vs sharp: lung volume (target within 3 %), "
        "Dice of the lung masks (>= 0.95),\n  pct_opacity difference (within 1 point)",
    )
    les_t = Table(
        "inserted lesions",
        [
            ("case", 6, ""),
            ("kind", 4, ""),
            ("burden", 6, ".0f"),
            ("prior", 5, ""),
            ("ins_ml", 6, ".0f"),
            ("ins_%", 5, ".1f"),
            ("ggo_ml", 6, ".0f"),
            ("cons_ml", 7, ".0f"),
            ("lung_ml", 7, ".0f"),
            ("vol_%", 5, "+.1f"),
            ("ok", 4, ""),
            ("rise_pp", 7, ".1f"),
            ("new_%", 5, ".1f"),
            ("err_pp", 6, "+.1f"),
            ("ok", 4, ""),
            ("dice_new", 8, ".3f"),
            ("ok", 4, ""),
            ("kept_%", 6, ".1f"),
            ("cons_kept_%", 11, ".1f"),
            ("prior_wrong_ml", 14, ".0f"),
        ],
        "  ins_%: inserted lesion volume, % of reference lung volume; vol_%: library lung volume vs the lesion-free "
        "scan (target within 2 %);\n  rise_pp: rise of pct_opacity; new_%: inserted lesion volume where the "
        "lesion-free scan had no opacity, % (the rise to expect);\n  err_pp = rise_pp - new_% (within 1.5 points); "
        "dice_new: new opacity (labels 1|2 not already opacity on the\n  lesion-free scan) vs the lesions there "
        "(>= 0.85); "
        "kept_%: lesion volume inside the library lungs; cons_kept_%: the same for consolidation;\n  prior: "
        "'-' the scan alone, 'N mm' with a serial prior (the lesion-free scan's library lungs moved by N mm rms); "
        "prior_wrong_ml: lung\n  that the prior added outside the inserted lesions (an upper bound of the wall, fat or organ it "
        "covers: the lesions' blended rim\n  and lung that the scan alone missed count too)",
    )
    les_notes: list[str] = []
    nol_t = Table(
        "scans without lungs",
        [
            ("case", 6, ""),
            ("crop", 7, ""),
            ("slices", 6, ""),
            ("padded", 12, ""),
            ("outcome", 70, ""),
            ("ok", 4, ""),
        ],
        "  abdomen: slices below the reference lungs' lowest slice; neck: slices above their apex; target: excluded",
    )
    speed_t = Table(
        "speed",
        [
            ("case", 6, ""),
            ("slices", 6, ""),
            ("analyse_s", 9, ".2f"),
            ("segment_s", 9, ".2f"),
            ("measure_s", 9, ".2f"),
            ("read_lib_s", 10, ".2f"),
            ("read_sitk_s", 11, ".2f"),
            ("analyse/sitk", 12, ".1f"),
        ],
        "  analyse_s: first analyse_volume call on the scan (segment/measure: its own timings); read_lib: index_folder"
        " + ingest + read_volume;\n  read_sitk: SimpleITK ImageSeriesReader with GetGDCMSeriesFileNames; page cache "
        "warm for both",
    )
    pair_t = Table(
        "two kernels of one acquisition (real reconstructions, --kernel-pair)",
        [
            ("pair", 11, ""),
            ("ml_I", 6, ".0f"),
            ("ml_J", 6, ".0f"),
            ("vol_%", 5, "+.2f"),
            ("ok", 4, ""),
            ("dice", 5, ".3f"),
            ("ok", 4, ""),
            ("pct_op_I", 8, ".2f"),
            ("pct_op_J", 8, ".2f"),
            ("diff_pp", 7, "+.2f"),
            ("ok", 4, ""),
        ],
        "  library on folder I vs folder J: lung volume (J vs I, target within 3 %), Dice of the lung masks (>= 0.95), "
        "pct_opacity difference J - I (within 1 point)",
    )
    nod_t = Table(
        "nodules outlined by radiologists (LIDC-IDRI reading XML in the folder)",
        [
            ("case", 6, ""),
            ("nodule", 6, ""),
            ("readers", 7, ""),
            ("ml", 6, ".2f"),
            ("in_lib_%", 8, ".0f"),
            ("ok", 4, ""),
            ("in_ref_%", 8, ".0f"),
            ("opacity_%", 9, ".0f"),
            ("from_midline_mm", 15, ".0f"),
        ],
        "  in_lib / in_ref: share of the nodule inside the library's / the reference's lungs (median over readers; "
        f"target >= {TARGETS['nodule_inside_pct']:g} % for the library);\n  opacity: share the library labels "
        "opacity (ground glass or consolidation); from_midline: the nodule's centre to the body's midline",
    )
    h.check_kernel_pairs(parser, args.kernel_pair, len(args.folders))
    in_pairs = {k for pair in args.kernel_pair for k in pair}
    kept_for_pairs: dict[int, dict] = {}  # folder number -> the library's lungs, volume and opacity
    pngs: list[Path] = []

    for case_no, folder in enumerate(args.folders):
        name = f"case{case_no + 1}"
        rng = np.random.default_rng([args.seed, case_no])
        data = read_case(folder, args.max_slice_thickness)
        hu, spacing, padding = data["hu"], data["spacing"], data["padding"]
        print(
            f"{name}: folder {case_no + 1} of {len(args.folders)}, {hu.shape[0]} x {hu.shape[1]} x {hu.shape[2]} "
            f"voxels of {spacing[0]:.2f} x {spacing[1]:.3f} x {spacing[2]:.3f} mm",
            flush=True,
        )

        t_ref, (ref, info) = h.timed(reference_lungs, hu, spacing)
        airway = f"{info['airway_hu']} HU {info['airway_ml']:.0f} ml" if info.get("airway_ml") else "not found"
        ref_t.add(
            name,
            hu.shape[0],
            spacing[0],
            spacing[1],
            ml(ref > 0, spacing),
            ml(ref == 1, spacing),
            ml(ref == 2, spacing),
            airway,
            info["split"],
            t_ref,
        )
        if not ref.any():
            print(f"{name}: no reference lung found, case skipped")
            continue

        base, reason, t_an = run_library(hu, spacing)
        timings = base["timings"] if base is not None else {}
        speed_t.add(
            name,
            hu.shape[0],
            t_an,
            timings.get("segment", "-"),
            timings.get("measure", "-"),
            data["t_read_lib"],
            data["t_read_sitk"],
            t_an / data["t_read_sitk"],
        )
        if base is None:
            print(f"{name}: the scan itself is excluded: {reason}")
            continue
        if case_no + 1 in in_pairs:
            kept_for_pairs[case_no + 1] = {
                "lungs": base["lungs"] > 0,
                "ml": base["scan"]["lung_volume_ml"],
                "pct_op": base["scan"]["pct_opacity"],
            }
        views = views_of(ref)
        png = workdir / f"{name}_reference.png"
        save_panels(
            png,
            hu,
            spacing,
            [(ref > 0, "lime"), (base["lungs"] > 0, "red")],
            *views,
            title=f"{name}: reference lungs (green) vs library lungs (red)",
        )
        pngs.append(png)

        if "normal" in sections:
            section_normal(name, hu, spacing, ref, info, base, norm_t)
        if "nodules" in sections:
            section_nodules(name, folder, data, ref, info, base, nod_t)
        if "kernel" in sections:
            section_kernel(
                name,
                hu,
                spacing,
                padding,
                info["body"],
                ref,
                base,
                rng,
                workdir,
                views,
                ker_t,
                pngs,
            )
        for draw in range(1, args.draws + 1) if "lesions" in sections else ():
            section_lesions(
                name if args.draws == 1 else f"{name}.{draw}",
                hu,
                spacing,
                ref,
                info["body"],
                base,
                rng,
                args.burdens,
                kinds,
                workdir,
                les_t,
                les_notes,
                pngs,
                args.prior_errors,
                args.serial,
                args.serial_raise,
            )
        if "nolungs" in sections:
            section_nolungs(name, hu, spacing, ref, workdir, nol_t, pngs)
        del hu, padding, ref, info, base, data
        print(f"{name}: done at {time.perf_counter() - t_start:.0f} s", flush=True)

    for i, j in args.kernel_pair:
        a, b = kept_for_pairs.get(i), kept_for_pairs.get(j)
        label = f"case{i}/case{j}"
        if a is None or b is None:
            pair_t.add(label, "not measured")
        elif a["lungs"].shape != b["lungs"].shape:
            pair_t.add(label, f"grids differ: {a['lungs'].shape} vs {b['lungs'].shape}")
        else:
            vol, d, diff = pct_diff(b["ml"], a["ml"]), dice(a["lungs"], b["lungs"]), b["pct_op"] - a["pct_op"]
            pair_t.add(
                label,
                a["ml"],
                b["ml"],
                vol,
                mark(abs(vol) <= TARGETS["kernel_volume_pct"]),
                d,
                mark(d >= TARGETS["kernel_dice"]),
                a["pct_op"],
                b["pct_op"],
                diff,
                mark(abs(diff) <= TARGETS["kernel_opacity_pp"]),
            )
    print(ref_t.render())
    if args.kernel_pair:
        print(pair_t.render())
    if "normal" in sections:
        print(norm_t.render())
    if "kernel" in sections:
        print(ker_t.render())
    if "lesions" in sections:
        print(les_t.render())
        print("\n".join(les_notes))
    if "nolungs" in sections:
        print(nol_t.render())
    if "nodules" in sections:
        print(nod_t.render())
    print(speed_t.render())
    print("\npictures:")
    for p in pngs:
        print(f"  {p}")
    print(f"total {time.perf_counter() - t_start:.0f} s, peak RSS {h.peak_rss_mb():.0f} MiB")


if __name__ == "__main__":
    main()
