"""Lung segmentation and opacity measurement on real chest CT: accuracy, robustness and speed (prints tables).

Usage::

    python benchmarks/bench_realct.py FOLDER [FOLDER ...] [--workdir DIR] [--cases normal,kernel,lesions,nolungs]
                                      [--burdens 3 10 25] [--kinds ggo,cons,mix] [--seed 7]

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

Truth is a **reference lung mask** built here, independently of the library (:func:`reference_lungs`, full
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
``lesions``
    COVID-like lesions inserted into the real lungs (seeded by ``--seed``), at ``--burdens`` % of the reference
    lung volume, as ground glass (``ggo``), consolidation (``cons``) and half of each (``mix``). Ground glass:
    smooth blobs touching the pleura, favouring posterior, basal and lateral lung, HU raised additively so that
    the lesion's parenchyma reads about -650..-500 HU (vessels stay brighter, texture and noise are kept).
    Consolidation as dense as the chest wall (median of the soft tissue, -20..150 HU, 2-8 mm outside the lung,
    plus noise of the scan's soft tissue, correlated in-plane), filling the posterior costophrenic recesses first
    (a dependent level lying on the diaphragm and the posterior wall) and a band along the lateral chest wall.
    Lesions lie inside the reference mask only and touch the pleura; their edges are blended in-plane like a
    soft kernel's partial volume (sigma 0.6 mm). Truth: the reference mask (unchanged) and the lesion voxels.
    Printed: library lung volume vs the lesion-free scan (target within 2 %), rise of pct_opacity vs the inserted
    % of reference lung volume (target within 1.5 points), Dice of the new opacity (labels 1|2 on the lesion scan
    that are not opacity on the lesion-free scan) vs the lesions (target >= 0.85), and the % of the lesion volume
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
import SimpleITK as sitk
from _harness import Table, dice, mark
from scipy import ndimage

from lungtrial.errors import ScanExcluded
from lungtrial.imaging.dicom import index_folder, ingest, read_volume
from lungtrial.imaging.quantify import analyse_volume
from lungtrial.imaging.segmentation import segment

TARGETS = {
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
SECTIONS = ("normal", "kernel", "lesions", "nolungs")
MIN_NOLUNG_SLICES = 20
_BURDENS_DRAWN: dict[str, list[float]] = {}  # per case, the burdens of the lesions section (the largest is drawn)


# ----------------------------------------------------------------------------------------------------------------
# small helpers


def ml(mask: np.ndarray, spacing) -> float:
    """Volume of a boolean mask in ml."""
    return float(np.count_nonzero(mask)) * float(np.prod(spacing)) / 1000.0


def pct_diff(new: float, ref: float) -> float:
    return 100.0 * (new - ref) / ref if ref else math.nan


def bbox(mask: np.ndarray, margin=(0, 0, 0)) -> tuple[slice, ...]:
    """Bounding box slices of a non-empty mask, widened by ``margin`` voxels per axis."""
    out = []
    for axis, m in enumerate(margin):
        other = tuple(a for a in range(3) if a != axis)
        idx = np.flatnonzero(mask.any(axis=other))
        out.append(slice(max(0, idx[0] - m), min(mask.shape[axis], idx[-1] + 1 + m)))
    return tuple(out)


def _img(mask: np.ndarray, spacing=None) -> sitk.Image:
    img = sitk.GetImageFromArray(mask.astype(np.uint8, copy=False))
    if spacing is not None:
        img.SetSpacing(tuple(float(s) for s in spacing[::-1]))
    return img


def _radius(mm: float, spacing, planar: bool = False) -> list[int]:
    """SimpleITK kernel radius (x, y, z) in voxels for ``mm``; z is 0 for a per-slice (planar) kernel."""
    dz, dy, dx = spacing
    rz = 0 if planar else max(1, round(mm / dz))
    return [max(1, round(mm / dx)), max(1, round(mm / dy)), rz]


def morph(mask: np.ndarray, op: str, mm: float, spacing, planar: bool = False) -> np.ndarray:
    """Binary dilate/erode/open/close of a (z, y, x) mask with a ball (or a per-slice disk) of radius ``mm``."""
    f = {
        "dilate": sitk.BinaryDilateImageFilter,
        "erode": sitk.BinaryErodeImageFilter,
        "open": sitk.BinaryMorphologicalOpeningImageFilter,
        "close": sitk.BinaryMorphologicalClosingImageFilter,
    }[op]()
    f.SetKernelRadius(_radius(mm, spacing, planar))
    f.SetKernelType(sitk.sitkBall)
    f.SetForegroundValue(1)
    out = f.Execute(_img(mask))
    return sitk.GetArrayViewFromImage(out).astype(bool)


def fill_holes_2d(mask: np.ndarray) -> np.ndarray:
    """Fill holes of every axial slice: background components (4-connected, in-plane) not touching the border."""
    structure = np.zeros((3, 3, 3), bool)
    structure[1] = [[0, 1, 0], [1, 1, 1], [0, 1, 0]]
    lab, n = ndimage.label(~mask, structure)
    border = np.zeros(n + 1, bool)
    for face in (lab[:, 0, :], lab[:, -1, :], lab[:, :, 0], lab[:, :, -1]):
        border[np.unique(face)] = True
    border[0] = True
    return mask | ~border[lab]


def largest_components(mask: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Label image of the 6-connected components of ``mask`` and their labels, largest first (at most ``k``)."""
    lab, n = ndimage.label(mask)
    if n == 0:
        return lab, np.zeros(0, int)
    sizes = np.bincount(lab.ravel())
    sizes[0] = 0
    order = np.argsort(sizes)[::-1][: min(k, n)]
    return lab, order[sizes[order] > 0]


def local_noise_sd(hu: np.ndarray, body: np.ndarray, spacing, nslices: int = 12) -> float:
    """Noise of soft tissue: median over homogeneous soft-tissue pixels (smoothed HU 0..100, 3 mm inside it) of
    the in-plane 5 x 5 local standard deviation, on ``nslices`` evenly spaced slices of the body."""
    zs = np.flatnonzero(body.any(axis=(1, 2)))
    picks = zs[np.linspace(0, len(zs) - 1, min(nslices, len(zs))).round().astype(int)]
    vals = []
    sig = 2.0 / np.asarray(spacing[1:])
    disk = max(1, round(3.0 / spacing[1]))
    for z in picks:
        plane = hu[z].astype(np.float32)
        smooth = ndimage.gaussian_filter(plane, sig)
        soft = ndimage.binary_erosion((smooth > 0) & (smooth < 100) & body[z], iterations=disk)
        if soft.sum() < 200:
            continue
        m = ndimage.uniform_filter(plane, 5)
        m2 = ndimage.uniform_filter(plane * plane, 5)
        vals.append(np.sqrt(np.clip(m2 - m * m, 0, None))[soft])
    return float(np.median(np.concatenate(vals))) if vals else math.nan


def correlated_noise(shape, spacing, sigma_mm: float, rng: np.random.Generator) -> np.ndarray:
    """float32 Gaussian noise, sd 1, correlated in-plane by a Gaussian of ``sigma_mm`` (slices independent)."""
    noise = rng.standard_normal(shape, dtype=np.float32)
    ndimage.gaussian_filter(noise, (0, sigma_mm / spacing[1], sigma_mm / spacing[2]), output=noise)
    noise /= noise.std()
    return noise


def smooth_field(shape, spacing, sigma_mm: float, rng: np.random.Generator, cell_mm: float = 4.0) -> np.ndarray:
    """float32 smooth random field, sd about 1, correlation ``sigma_mm``: made on a ``cell_mm`` grid, upsampled."""
    coarse = tuple(max(4, math.ceil(n * s / cell_mm) + 2) for n, s in zip(shape, spacing))
    field = ndimage.gaussian_filter(rng.standard_normal(coarse).astype(np.float32), sigma_mm / cell_mm, mode="wrap")
    field /= field.std()
    return ndimage.zoom(
        field,
        [n / c for n, c in zip(shape, coarse)],
        order=1,
        grid_mode=True,
        mode="nearest",
    )[: shape[0], : shape[1], : shape[2]]


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
# the reference lung mask


def body_mask(hu: np.ndarray, spacing) -> np.ndarray:
    """Body: largest 6-connected component of HU > -500 after a per-slice opening with a 5 mm disk (cuts off the
    table and the blanket), holes filled per slice."""
    dense = morph(hu > -500, "open", 5.0, spacing, planar=True)
    lab, keep = largest_components(dense, 1)
    if len(keep) == 0:
        return np.zeros(hu.shape, bool)
    return fill_holes_2d(lab == keep[0])


def trachea_seed(air: np.ndarray, hu: np.ndarray, body: np.ndarray, spacing) -> tuple[int, int, int] | None:
    """A voxel in the trachea: in the most superior slices (top 25 % of the body's slices), 2-D components of
    HU < -950 inside the body that are medial (centroid within 15 % of the body width of the body's midline),
    round (filling >= 50 % of their bounding box) and 0.8-6 cm2 large; the first such slice from the top that
    also has one 5 and 10 mm further down: the darkest voxel of its largest candidate."""
    zs = np.flatnonzero(body.any(axis=(1, 2)))
    if len(zs) == 0:
        return None
    dz, dy, dx = spacing
    top = zs[-1]
    px_cm2 = dy * dx / 100.0

    def candidates(z):
        cols = np.flatnonzero(body[z].any(axis=0))
        if len(cols) == 0:
            return []
        mid, width = (cols[0] + cols[-1]) / 2.0, cols[-1] - cols[0]
        lab, _ = ndimage.label((hu[z] < -950) & air[z])
        out = []
        for i, sl in enumerate(ndimage.find_objects(lab), start=1):
            comp = lab[sl] == i
            area = comp.sum() * px_cm2
            if not 0.8 <= area <= 6.0 or comp.sum() < 0.5 * comp.size:
                continue
            cx = ndimage.center_of_mass(comp)[1] + sl[1].start
            if abs(cx - mid) <= 0.15 * width:
                darkest = np.unravel_index(np.argmin(np.where(comp, hu[z][sl], 0)), comp.shape)
                out.append((area, int(darkest[0] + sl[0].start), int(darkest[1] + sl[1].start)))
        return sorted(out, reverse=True)

    lowest = zs[-1] - int(0.25 * len(zs))
    for z in range(top, max(lowest, zs[0]), -1):
        cand = candidates(z)
        if not cand:
            continue
        below = [z - max(1, round(mm / dz)) for mm in (5.0, 10.0)]
        if all(b >= 0 and candidates(b) for b in below):
            return (z, cand[0][1], cand[0][2])
    return None


def grow_airway(hu: np.ndarray, seed, spacing, air: np.ndarray) -> tuple[np.ndarray, int, float]:
    """Trachea and main bronchi: 3-D region growing from ``seed`` through HU below a threshold, the threshold raised
    from -1000 to -900 HU in 10 HU steps while the grown volume stays under 250 ml and does not jump by more than
    50 ml and 2-fold in one step (such a jump is a leak into the parenchyma). Returns the mask, the threshold kept
    and its volume (ml)."""
    img = sitk.GetImageFromArray(np.where(air, hu, 0).astype(np.int16))
    seed_xyz = [(int(seed[2]), int(seed[1]), int(seed[0]))]
    best, best_t, best_v, prev_v = None, None, 0.0, None
    for t in (-1000, -990, -980, -970, -960, -950, -940, -930, -920, -910, -900):
        grown = sitk.ConnectedThreshold(img, seedList=seed_xyz, lower=-3000, upper=t)
        grown = sitk.GetArrayViewFromImage(grown).astype(bool)
        v = ml(grown, spacing)
        if v == 0:
            continue
        if v > 250.0 or (prev_v is not None and v > 2.0 * prev_v and v - prev_v > 50.0):
            break
        best, best_t, best_v, prev_v = grown, t, v, v
    if best is None:
        return np.zeros(hu.shape, bool), 0, 0.0
    return best, best_t, best_v


def split_joined(comp: np.ndarray, spacing, midline: float) -> tuple[np.ndarray, int]:
    """Right (1) / left (2) labels of a component holding both lungs (joined at the anterior or posterior junction
    line, which is fainter than -500 HU in places). Per axial slice, each in-plane (4-connected) part goes to the
    side of the midline holding most of it; a part with >= 15 % on each side and >= 1 cm2 is both lungs, joined
    in that slice: it is eroded in-plane one voxel at a time (at most 30, ~20 mm) until it falls into two parts of
    >= 10 % each on either side of the midline, and each of its voxels goes to the nearer of the two (a straight
    cut at the midline if it never splits). Returns the labels and the number of slices split."""
    box = bbox(comp, (0, 1, 1))
    sub = comp[box]
    mid = round(midline) - box[2].start
    st2 = np.zeros((3, 3, 3), bool)
    st2[1] = [[0, 1, 0], [1, 1, 1], [0, 1, 0]]
    lab, n = ndimage.label(sub, st2)
    total = np.bincount(lab.ravel(), minlength=n + 1)
    right = np.bincount(lab[:, :, : max(mid, 0)].ravel(), minlength=n + 1)
    share = right / np.maximum(total, 1)
    side = np.where(share > 0.5, 1, 2).astype(np.uint8)
    side[0] = 0
    out_sub = side[lab]
    joined = np.flatnonzero((share >= 0.15) & (share <= 0.85) & (total * spacing[1] * spacing[2] >= 100.0))
    joined = joined[joined > 0]
    objects = ndimage.find_objects(lab)
    cross = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], bool)
    for k in joined:
        sl = objects[k - 1]
        z = sl[0].start
        part = lab[z, sl[1], sl[2]] == k
        x_mid = mid - sl[2].start
        eroded = part.copy()
        assigned = None
        for _ in range(30):
            eroded = ndimage.binary_erosion(eroded, cross)
            plab, pn = ndimage.label(eroded, cross)
            if pn < 2:
                if pn == 0:
                    break
                continue
            sizes = np.bincount(plab.ravel())
            sizes[0] = 0
            order = np.argsort(sizes)[::-1][:2]
            if sizes[order[1]] < 0.1 * sizes[order].sum():
                continue
            xs = [ndimage.center_of_mass(plab == q)[1] for q in order]
            if not min(xs) < x_mid < max(xs):
                continue
            seeds = np.zeros(part.shape, np.uint8)
            r, l_ = (order[0], order[1]) if xs[0] < xs[1] else (order[1], order[0])
            seeds[plab == r], seeds[plab == l_] = 1, 2
            _, idx = ndimage.distance_transform_edt(seeds == 0, return_indices=True)
            assigned = seeds[tuple(idx)]
            break
        if assigned is None:  # straight cut at the midline
            assigned = np.broadcast_to(np.where(np.arange(part.shape[1]) < x_mid, 1, 2).astype(np.uint8), part.shape)
        view = out_sub[z, sl[1], sl[2]]
        view[part] = assigned[part]
    out = np.zeros(comp.shape, np.uint8)
    out[box] = out_sub
    return out, len(joined)


def reference_lungs(hu: np.ndarray, spacing) -> tuple[np.ndarray, dict]:
    """Reference lung labels (uint8, 1 right, 2 left), built independently of the library, at full resolution.

    1. Body: :func:`body_mask` (HU > -500, per-slice opening with a 5 mm disk, largest component, holes filled per
       slice).
    2. Air: HU < -500 inside the body.
    3. Airways: the trachea is found in the most superior slices (:func:`trachea_seed`: medial, round, 0.8-6 cm2,
       HU < -950, persisting 10 mm down) and grown in 3-D through the darkest air (:func:`grow_airway`: the
       threshold is raised from -1000 to -900 HU in 10 HU steps while the volume stays < 250 ml and does not jump
       2-fold by > 50 ml: the usual explosion check). This finds the trachea and main/lobar bronchi, whose lumen
       is darker than the parenchyma; they are removed from the air with a 2 mm margin (a ball, at least one
       slice), which also takes their partial-volume rim. Chosen over "remove components touching a trachea
       tube" because it follows the bronchi wherever they run and its leak check is explicit; if no trachea is
       found the step is skipped (said in the table).
    4. Lungs: the largest 6-connected component of the remaining air and the largest other one (>= 10 % of it)
       on the other side of the body midline (x centre of the body). If the largest one straddles the midline
       (>= 15 % of it on each side) it holds both lungs: they are split slice by slice (:func:`split_joined`:
       in-plane erosion of the joined part until it falls in two, then nearest part). Right (label 1) is the side
       of smaller x.
    5. Vessels and nodules: per lung, holes filled per axial slice, then a 3-D closing with a 3 mm ball whose
       additions are kept only where HU < -200, and holes filled per slice again.

    Known limits: dense tissue touching the pleura (a mass or nodule abutting the chest wall or mediastinum, as
    the mass of LIDC-IDRI-0001 where it meets the heart, dependent atelectasis, a consolidation) is left out
    unless enclosed by lung in its slice; hilar vessels and bronchi outside the lung contour are left out, those
    inside it are filled in (a few ml of hilum differ from a manual tracing either way); intrapulmonary bronchi
    removed in step 3 come back only where step 5 encloses them; the lung boundary is the -500 HU iso-surface
    (partial-volume voxels at the pleura count about half); a joined slice that never splits is cut straight at
    the body midline (right/left Dice only, not the total); a lung apex or base at the scan's edge is cut like
    the scan; lungs of a scan without a trachea in its top quarter keep the airways (the table says so). It is a
    threshold method: on lungs with consolidation it is not a truth, which is why lesions are inserted into it.

    Returns the labels and a dict: ``body`` (mask), ``trachea`` (found), ``airway_hu``, ``airway_ml``, ``airway``
    (threshold, volume and mask of the removed airways), ``split`` (slices where the lungs were split).
    """
    dz, dy, dx = spacing
    info: dict = {}
    body = body_mask(hu, spacing)
    info["body"] = body
    air = body & (hu < -500)
    seed = trachea_seed(air, hu, body, spacing)
    info["trachea"] = seed is not None
    if seed is not None:
        airway, t, v = grow_airway(hu, seed, spacing, air)
        info["airway_hu"], info["airway_ml"], info["airway"] = t, v, airway
        if airway.any():
            air &= ~morph(airway, "dilate", 2.0, spacing)
    cols = np.flatnonzero(body.any(axis=(0, 1)))
    midline = (cols[0] + cols[-1]) / 2.0
    lab, keep = largest_components(air, 3)
    lungs = np.zeros(hu.shape, np.uint8)
    info["split"] = 0
    if len(keep) == 0:
        return lungs, info
    sizes = [np.count_nonzero(lab == k) for k in keep]
    sides = []
    for k in keep:
        xcount = (lab == k).sum(axis=(0, 1))
        sides.append(xcount[: int(midline)].sum() / max(1, xcount.sum()))
    if 0.15 <= sides[0] <= 0.85:  # the largest component holds both lungs
        lungs, info["split"] = split_joined(lab == keep[0], spacing, midline)
    else:
        lungs[lab == keep[0]] = 1 if sides[0] > 0.5 else 2
        for k, size, share in zip(keep[1:], sizes[1:], sides[1:]):  # the largest on the other side
            other = 1 if share > 0.5 else 2
            if size >= 0.1 * sizes[0] and not (lungs == other).any() and (share < 0.15 or share > 0.85):
                lungs[lab == k] = other
                break
    del lab
    # fill vessels and nodules, per lung, inside its bounding box
    margin = (max(2, round(4.0 / dz)), round(6.0 / dy), round(6.0 / dx))
    out = np.zeros(hu.shape, np.uint8)
    for side in (1, 2):
        m = lungs == side
        if not m.any():
            continue
        box = bbox(m, margin)
        sub = fill_holes_2d(m[box])
        closed = morph(sub, "close", 3.0, spacing)
        sub = fill_holes_2d(sub | (closed & (hu[box] < -200)))
        region = out[box]
        region[sub & (region == 0)] = side
    return out, info


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
# inserted lesions


class LesionMaker:
    """Places COVID-like lesions inside the reference lungs (see the module docstring); fields are computed once per
    scan on the lungs' bounding box."""

    def __init__(self, hu, ref, body, spacing, rng):
        self.hu, self.spacing, self.rng = hu, np.asarray(spacing), rng
        self.box = bbox(ref > 0, (2, 4, 4))
        self.ref = ref[self.box]
        lung = self.ref > 0
        self.lung = lung
        dist = sitk.SignedMaurerDistanceMap(
            _img(np.pad(lung, 1), spacing),
            insideIsPositive=True,
            squaredDistance=False,
            useImageSpacing=True,
        )
        self.depth = sitk.GetArrayFromImage(dist)[1:-1, 1:-1, 1:-1].astype(np.float32)  # mm to the pleura
        zz, yy, xx = (np.arange(n, dtype=np.float32) * s for n, s in zip(lung.shape, spacing))
        self.z_mm, self.y_mm, self.x_mm = (
            zz[:, None, None],
            yy[None, :, None],
            xx[None, None, :],
        )
        # per-lung normalised coordinates: posterior, basal, lateral, in -1..1 over each lung's extent
        self.post = np.zeros(lung.shape, np.float32)
        self.basal = np.zeros(lung.shape, np.float32)
        self.lateral = np.zeros(lung.shape, np.float32)
        for side in (1, 2):
            m = self.ref == side
            if not m.any():
                continue
            b = bbox(m)
            c = [(s.start + s.stop - 1) / 2.0 for s in b]
            h = [max(1.0, (s.stop - s.start) / 2.0) for s in b]
            zi, yi, xi = (np.arange(n, dtype=np.float32) for n in lung.shape)
            self.post[m] = np.broadcast_to(((yi - c[1]) / h[1])[None, :, None], lung.shape)[m]
            self.basal[m] = np.broadcast_to(((c[0] - zi) / h[0])[:, None, None], lung.shape)[m]
            sign = -1.0 if side == 1 else 1.0
            self.lateral[m] = np.broadcast_to((sign * (xi - c[2]) / h[2])[None, None, :], lung.shape)[m]
        # density of the chest wall: soft tissue 2-8 mm outside the lung
        sub = hu[self.box]
        shell = morph(lung, "dilate", 8.0, spacing) & ~morph(lung, "dilate", 2.0, spacing) & body[self.box]
        soft = sub[shell & (sub > -20) & (sub < 150)]  # muscle and other soft tissue, not fat or bone
        self.wall_hu = float(np.median(soft)) if soft.size else 40.0
        self.noise_sd = local_noise_sd(hu, body, spacing)
        self.parenchyma = float(np.median(sub[lung & (sub < -500)]))
        self.voxel_ml = float(np.prod(spacing)) / 1000.0
        self.ref_n = int(np.count_nonzero(lung))

    def _top(self, score: np.ndarray, allowed: np.ndarray, n: int) -> np.ndarray:
        """The ``n`` allowed voxels of highest score (a level set of a smooth score: a smooth-edged region)."""
        vals = score[allowed]
        n = int(min(max(n, 0), vals.size))
        if n == 0:
            return np.zeros(score.shape, bool)
        q = np.partition(vals, vals.size - n)[vals.size - n]
        return allowed & (score >= q)

    def _touching(self, mask: np.ndarray) -> np.ndarray:
        """Components of ``mask`` that touch the pleura (a voxel within 1.5 voxels of the lung surface)."""
        lab, n = ndimage.label(mask)
        if n == 0:
            return mask
        near = self.depth <= 1.5 * float(self.spacing[1:].max())
        touch = np.zeros(n + 1, bool)
        touch[np.unique(lab[mask & near])] = True
        touch[0] = False
        return touch[lab]

    def ground_glass(self, fraction: float, allowed: np.ndarray) -> np.ndarray:
        """Subpleural smooth blobs favouring posterior, basal and lateral (costal) lung: the top ``fraction`` of
        lung voxels by -depth/8 mm + 0.8 posterior + 0.8 basal + 0.5 lateral + 1.5 x a smooth random field (12 mm),
        only the blobs that touch the pleura kept."""
        field = smooth_field(self.lung.shape, self.spacing, 12.0, self.rng)
        score = -self.depth / 8.0 + 0.8 * self.post + 0.8 * self.basal + 0.5 * self.lateral + 1.5 * field
        return self._touching(self._top(score, allowed, round(fraction * self.ref_n)))

    def consolidation(self, fraction: float, allowed: np.ndarray) -> np.ndarray:
        """60 %: dependent filling of the posterior costophrenic recesses of each lung (level -z + 0.8 y: lowest and
        most posterior first, with a smooth random 6 mm wobble); 40 %: a band along the lateral chest wall (lateral
        half of each lung), thickest basally."""
        n = round(fraction * self.ref_n)
        wobble = smooth_field(self.lung.shape, self.spacing, 15.0, self.rng)
        level = -self.z_mm + 0.8 * self.y_mm + 6.0 * wobble
        recess = np.zeros(self.lung.shape, bool)
        for side in (1, 2):  # each lung gets its share
            m = allowed & (self.ref == side)
            share = np.count_nonzero(self.ref == side) / self.ref_n
            recess |= self._top(
                np.where(m, level, -np.inf).astype(np.float32),
                m,
                round(0.6 * n * share),
            )
        band_score = -self.depth + 12.0 * self.lateral + 6.0 * self.basal + 4.0 * wobble
        band = self._top(
            band_score,
            allowed & ~recess & (self.lateral > 0.0),
            n - int(np.count_nonzero(recess)),
        )
        return self._touching(recess | band)

    def _weight(self, mask: np.ndarray) -> np.ndarray:
        """Blend weight of a lesion: its mask blurred in-plane (sigma 0.6 mm, the partial volume of a soft kernel),
        inside the lung only; >= 0.5 on the lesion voxels, < 0.5 outside them."""
        sp = self.spacing
        w = ndimage.gaussian_filter(mask.astype(np.float32), (0, 0.6 / sp[1], 0.6 / sp[2]))
        w[~self.lung] = 0.0
        return w

    def insert(self, kind: str, burden_pct: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Lesion scan (full int16 volume), ground-glass and consolidation voxels (full-size bool)."""
        frac = burden_pct / 100.0
        cons = np.zeros(self.lung.shape, bool)
        ggo = np.zeros(self.lung.shape, bool)
        if kind in ("cons", "mix"):
            cons = self.consolidation(frac if kind == "cons" else frac / 2, self.lung)
        if kind in ("ggo", "mix"):
            ggo = self.ground_glass(frac if kind == "ggo" else frac / 2, self.lung & ~cons)
        sub = self.hu[self.box].astype(np.float32)
        sp = self.spacing
        out = sub.copy()
        if ggo.any():
            # additive: parenchyma -> about -650..-500 HU, vessels stay brighter, texture kept
            level = -575.0 + 50.0 * np.clip(smooth_field(self.lung.shape, sp, 10.0, self.rng), -1.5, 1.5)
            out += self._weight(ggo) * (level - self.parenchyma)
        if cons.any():
            value = self.wall_hu + self.noise_sd * correlated_noise(self.lung.shape, sp, 0.5, self.rng)
            w = self._weight(cons)
            out = out * (1.0 - w) + value * w
        vol = self.hu.copy()
        vol[self.box] = np.clip(np.rint(out), -1024, 3071).astype(np.int16)
        full_g = np.zeros(self.hu.shape, bool)
        full_c = np.zeros(self.hu.shape, bool)
        full_g[self.box], full_c[self.box] = ggo, cons
        return vol, full_g, full_c


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
    displacement of ``amplitude_mm`` at the bases (``bench_registration.breath_hold``), and its library lungs."""
    from bench_registration import breath_hold, deform

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
            for err, prior in rows:
                if err is not None and prior is None:
                    continue
                _lesion_row(
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
                )
            del vol_les, truth, ggo, cons


def _lesion_row(
    name, kind, burden, err, prior, vol_les, ggo, cons, truth, spacing, ref_ml, op0, v0, p0, workdir, table, pngs
) -> None:
    """One row of the lesions table: the lesion scan measured without a prior (``err`` None) or with ``prior``."""
    ins_ml = ml(truth, spacing)
    ins_pct = 100.0 * ins_ml / ref_ml
    tag = "-" if err is None else (err if isinstance(err, str) else f"{err:g}mm")
    if prior is None:
        res, reason, _ = run_library(vol_les, spacing)
    else:
        res, reason, _ = run_library(vol_les, spacing, lungs=segment(vol_les, spacing, prior=prior).labels)
    if res is None:
        table.add(name, kind, burden, tag, ins_ml, ins_pct, ml(ggo, spacing), ml(cons, spacing), f"excluded: {reason}")
        return
    lungs = res["lungs"] > 0
    v1, p1 = res["scan"]["lung_volume_ml"], res["scan"]["pct_opacity"]
    vol, rise = pct_diff(v1, v0), p1 - p0
    d = dice(opacity(res) & ~op0, truth)
    kept = 100.0 * np.count_nonzero(truth & lungs) / max(1, np.count_nonzero(truth))
    ckept = 100.0 * np.count_nonzero(cons & lungs) / np.count_nonzero(cons) if cons.any() else "-"
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
        rise - ins_pct,
        mark(abs(rise - ins_pct) <= TARGETS["lesion_rise_pp"]),
        d,
        mark(d >= TARGETS["lesion_dice"]),
        kept,
        ckept,
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
    args = parser.parse_args()
    sections = [s.strip() for s in args.cases.split(",") if s.strip()]
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    if set(sections) - set(SECTIONS) or set(kinds) - {"ggo", "cons", "mix"}:
        parser.error(f"--cases: of {','.join(SECTIONS)}; --kinds: of ggo,cons,mix")
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
            ("err_pp", 6, "+.1f"),
            ("ok", 4, ""),
            ("dice_new", 8, ".3f"),
            ("ok", 4, ""),
            ("kept_%", 6, ".1f"),
            ("cons_kept_%", 11, ".1f"),
        ],
        "  ins_%: inserted lesion volume, % of reference lung volume; vol_%: library lung volume vs the lesion-free "
        "scan (target within 2 %);\n  rise_pp: rise of pct_opacity; err_pp = rise_pp - ins_% (within 1.5 points); "
        "dice_new: new opacity (labels 1|2 not already opacity on the\n  lesion-free scan) vs the lesions (>= 0.85); "
        "kept_%: lesion volume inside the library lungs; cons_kept_%: the same for consolidation;\n  prior: "
        "'-' the scan alone, 'N mm' with a serial prior (the lesion-free scan's library lungs moved by N mm rms)",
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
        if "lesions" in sections:
            section_lesions(
                name,
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

    print(ref_t.render())
    if "normal" in sections:
        print(norm_t.render())
    if "kernel" in sections:
        print(ker_t.render())
    if "lesions" in sections:
        print(les_t.render())
        print("\n".join(les_notes))
    if "nolungs" in sections:
        print(nol_t.render())
    print(speed_t.render())
    print("\npictures:")
    for p in pngs:
        print(f"  {p}")
    print(f"total {time.perf_counter() - t_start:.0f} s, peak RSS {h.peak_rss_mb():.0f} MiB")


if __name__ == "__main__":
    main()
