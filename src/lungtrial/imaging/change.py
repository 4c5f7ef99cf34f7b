"""Change labels per voxel between a baseline CT and a follow-up registered onto it, and their volumes.

Both scans are classified by :func:`lungtrial.imaging.metrics.opacity_labels` on their own grid (0 none, 1 and 2 the
preset's two opacity classes, 3 vessel: for the ``radiology`` preset 1 is ground glass and 2 consolidation); the
follow-up's lung and opacity labels are brought onto the baseline grid by nearest neighbour
(:func:`lungtrial.imaging.registration.warp_follow_up`). Every baseline lung voxel then gets one change label:

=====  ================  ==============================================================================
label  name              baseline -> follow-up
=====  ================  ==============================================================================
0      (background)      not baseline lung
1      ``normal``        normal -> normal
2      ``resolved``      opacity (either class) -> normal
3      ``persistent``    the same opacity class at both
4      ``new``           normal -> opacity (either class)
5      ``progressed``    ground glass -> consolidation (class 1 -> class 2)
6      ``regressed``     consolidation -> ground glass (class 2 -> class 1)
7      ``not_compared``  no opacity at either time and a vessel at one of them (vessels are in no HU class, as
                         in the per-scan metrics), or outside the follow-up's lungs (lost to the field of view,
                         or where registration left the lungs apart)
=====  ================  ==============================================================================

A change is judged where opacity is counted at one of the two times at least. At the other time, a voxel within
the lesion's reach (:func:`lesion_reach`: an edge of the lesion thinner than the opacity test's ball, or a vessel
running through it) counts in its class, so that a registration error of a millimetre or two at a lesion's edge,
or a vessel the lesion engulfs, is not read as resolved or new opacity; a vessel away from any lesion counts as
normal lung (a consolidation that engulfs it is new there). Opacity labels without the reach marked (0-3) are
compared the same way, every vessel then counting as normal lung against counted opacity at the other time.

Volumes are in mL; percentages are of the baseline lung volume (every baseline lung voxel, vessels included: the
denominator of the per-scan ``pct_`` metrics). Regions are those of :mod:`lungtrial.imaging.metrics` (upper, middle and
lower thirds of each baseline lung's craniocaudal extent). ``resolved_fraction`` is the share of the baseline
opacity that was compared (resolved + persistent + progressed + regressed) and resolved, in %.

The rest of the change maps lives in private modules whose public names are imported from here:
``_change_pairs`` (one pair job: :func:`compare_scans` reads both scans, :func:`compare_volumes` registers, warps,
labels and writes the pair's files; :func:`choose_baseline`), ``_change_table`` (:func:`change_table`, all pairs)
and ``_change_picture`` (:func:`plot_patient_changes`). The config's ``registration:`` section is read by
:func:`lungtrial.imaging.registration.registration_kwargs`.
"""

from __future__ import annotations

import importlib
import os

import numpy as np
import pandas as pd

from lungtrial.imaging.metrics import REGIONS, _check_spacing, _lung_labels, _lung_zones

#: Change label values (index = label), as written into the NIfTI label map.
CHANGE_NAMES = ("background", "normal", "resolved", "persistent", "new", "progressed", "regressed", "not_compared")
#: RGB colours (0-255) of the labels for pictures and colour tables: resolved green, new red, progressed dark red,
#: regressed light green, persistent amber, normal and not compared without colour over the CT.
CHANGE_COLOURS = {
    "normal": (200, 200, 200),
    "resolved": (46, 204, 64),
    "persistent": (255, 176, 0),
    "new": (230, 30, 30),
    "progressed": (140, 0, 60),
    "regressed": (150, 230, 150),
    "not_compared": (90, 90, 255),
}
NORMAL, RESOLVED, PERSISTENT, NEW, PROGRESSED, REGRESSED, NOT_COMPARED = range(1, 8)

#: Opacity labels of :func:`lesion_reach` beyond those of :func:`lungtrial.imaging.metrics.opacity_labels` (0 none,
#: 1 and 2 the preset's classes, 3 vessel): a lesion's thin edge in class 1 or 2, a vessel within the reach of
#: class-1 or class-2 opacity.
THIN_FIRST, THIN_SECOND, VESSEL_FIRST, VESSEL_SECOND = 4, 5, 6, 7
#: mm. How far a lesion reaches beyond its counted opacity when two times are compared: the radius of the ball that
#: counted opacity holds (:func:`lungtrial.imaging.segmentation.opacity_exclusion`'s ``blob_radius_mm``). A band of a
#: lesion thinner than that ball, its blurred edge and the vessels through it are not counted by the per-scan
#: measurement, yet they are the lesion's.
LESION_REACH_MM = 4.0


def _change_lut() -> np.ndarray:
    """Change label of baseline label b (0-7) and follow-up label f (0-7): ``lut[8 * b + f]``."""
    klass = {1: 1, 2: 2, THIN_FIRST: 1, THIN_SECOND: 2, VESSEL_FIRST: 1, VESSEL_SECOND: 2}
    vessel = {3, VESSEL_FIRST, VESSEL_SECOND}
    lut = np.empty(64, dtype=np.uint8)
    for b in range(8):
        for f in range(8):
            if b in (1, 2) or f in (1, 2):  # counted opacity at one time at least
                cb, cf = klass.get(b, 0), klass.get(f, 0)
                if cb == cf:
                    lab = PERSISTENT
                elif cf == 0:
                    lab = RESOLVED
                elif cb == 0:
                    lab = NEW
                else:
                    lab = PROGRESSED if cb == 1 else REGRESSED
            else:
                lab = NOT_COMPARED if b in vessel or f in vessel else NORMAL
            lut[8 * b + f] = lab
    return lut


_LUT = _change_lut()


def _check(name: str, arr, shape, top: int = 3) -> np.ndarray:
    arr = np.asarray(arr)
    if arr.shape != shape:
        raise ValueError(f"{name}: expected shape {shape} (the baseline grid), got {arr.shape}")
    if arr.size and (arr.min() < 0 or arr.max() > top):
        raise ValueError(f"{name}: expected labels 0-{top}, got values up to {arr.max()}")
    return arr.astype(np.uint8, copy=False)


def change_labels(
    base_lungs: np.ndarray,
    base_opacity: np.ndarray,
    follow_lungs: np.ndarray,
    follow_opacity: np.ndarray,
) -> np.ndarray:
    """Change label of every baseline voxel (see the module docstring); uint8 (z, y, x) on the baseline grid.

    Parameters
    ----------
    base_lungs : (z, y, x) baseline lung labels (0 background, 1 right, 2 left).
    base_opacity : (z, y, x) baseline opacity labels (0 none, 1, 2, 3 vessel), with each lesion's reach marked
        (4-7, :func:`lesion_reach`) or not.
    follow_lungs, follow_opacity : the follow-up's lung and opacity labels (the latter as ``base_opacity``)
        resampled onto the baseline grid.
    """
    shape = np.shape(base_lungs)
    base_lungs = _check("base_lungs", base_lungs, shape)
    base_opacity = _check("base_opacity", base_opacity, shape, 7)
    follow_lungs = _check("follow_lungs", follow_lungs, shape)
    follow_opacity = _check("follow_opacity", follow_opacity, shape, 7)
    out = np.zeros(shape, dtype=np.uint8)
    chunk = 16
    for z in range(0, shape[0], chunk):  # a few slices at a time: small temporaries
        s = slice(z, z + chunk)
        lung = base_lungs[s] > 0
        code = (base_opacity[s] << 3) | follow_opacity[s]
        lab = _LUT[code]
        lab[follow_lungs[s] == 0] = NOT_COMPARED
        lab[~lung] = 0
        out[s] = lab
    return out


def lesion_reach(
    hu: np.ndarray,
    lungs: np.ndarray,
    opacity: np.ndarray,
    spacing,
    *,
    preset: str = "radiology",
    reach_mm: float = LESION_REACH_MM,
) -> np.ndarray:
    """The opacity labels with each lesion's reach marked, for comparing two times (:func:`change_labels`).

    A lung voxel that is not counted as opacity (label 0, or a vessel 3) and lies within ``reach_mm`` of counted
    opacity (1 or 2) is in that lesion's reach when it is a vessel or its HU lies in one of the preset's two opacity
    classes (a thin band or the blurred edge of the lesion): :data:`THIN_FIRST` or :data:`THIN_SECOND` by its HU,
    :data:`VESSEL_SECOND` when it lies within reach of the second class (the consolidation it runs into or through),
    :data:`VESSEL_FIRST` otherwise. With lesion masks given instead of HU thresholds (``imaging.lesion_masks``), the
    reach is read around the given lesions by the same HU classes.

    Parameters
    ----------
    hu : (z, y, x) HU the opacity was measured on (a noisy scan's smoothed HU, as the per-scan measurement).
    lungs : (z, y, x) lung labels (non-zero is lung).
    opacity : (z, y, x) uint8 opacity labels 0-3 (:func:`lungtrial.imaging.metrics.opacity_labels`).
    spacing : (dz, dy, dx) voxel size in mm.
    preset : the HU classes' preset (:data:`lungtrial.imaging.metrics.OPACITY_CLASSES`).
    reach_mm : how far a lesion reaches beyond its counted opacity, mm.

    Returns
    -------
    uint8 (z, y, x): ``opacity`` with the reach's voxels set to 4-7.
    """
    from lungtrial.imaging.metrics import _label_lut
    from lungtrial.imaging.segmentation._grid import _ball, _bbox, _dilate

    opacity = np.asarray(opacity)
    if opacity.shape != np.shape(hu) or opacity.shape != np.shape(lungs):
        raise ValueError(f"hu, lungs and opacity: expected one shape, got {np.shape(hu)}, {np.shape(lungs)}, "
                         f"{opacity.shape}")
    if opacity.size and opacity.max() > 3:
        raise ValueError(f"opacity: expected labels 0-3, got values up to {opacity.max()}")
    _check_spacing(spacing)
    sp = np.asarray(spacing, dtype=float)
    out = opacity.astype(np.uint8, copy=True)
    counted = (opacity == 1) | (opacity == 2)
    if not counted.any():
        return out
    ball = _ball(reach_mm, sp)
    box = _bbox(counted, [n // 2 + 1 for n in ball.shape])
    op = opacity[box]
    near = _dilate(counted[box], ball)
    del counted
    near &= (op == 0) | (op == 3)
    near &= np.asarray(lungs)[box] != 0
    sub = out[box]
    h = np.asarray(hu)[box]
    if h.dtype != np.int16:  # smoothed HU: rounded, within int16
        h = np.clip(np.rint(h), -32768, 32767).astype(np.int16)
    thin = near & (op == 0)
    klass = np.zeros(thin.shape, np.uint8)
    klass[thin] = _label_lut(preset, False)[h[thin].view(np.uint16) ^ 0x8000]  # the HU's class (HU + 32768)
    thin &= klass > 0
    sub[thin] = klass[thin] + (THIN_FIRST - 1)
    vessel = near & (op == 3)
    sub[vessel] = VESSEL_FIRST
    if (op == 2).any():
        vessel &= _dilate(op == 2, ball)
        sub[vessel] = VESSEL_SECOND
    return out


def change_volumes(labels: np.ndarray, base_lungs: np.ndarray, spacing) -> tuple[dict, pd.DataFrame]:
    """Volumes of the change labels, whole lung and per region.

    Parameters
    ----------
    labels : (z, y, x) change labels (:func:`change_labels`).
    base_lungs : (z, y, x) baseline lung labels (0, 1 right, 2 left): the regions and the denominator.
    spacing : (dz, dy, dx) baseline voxel size in mm.

    Returns
    -------
    row : dict, ``lung_volume_ml`` (baseline), ``<name>_ml`` and ``pct_<name>`` (% of the baseline lung) for
        each change label but the background, ``baseline_opacity_compared_ml`` and ``resolved_fraction`` (%).
    regions : DataFrame, one row per region of :data:`lungtrial.imaging.metrics.REGIONS` (``region``, ``side``, ``zone``)
        with the same columns.
    """
    labels = np.asarray(labels)
    if labels.shape != np.shape(base_lungs):
        raise ValueError(f"labels: expected shape {np.shape(base_lungs)} (the baseline grid), got {labels.shape}")
    _check_spacing(spacing)
    lungs, top = _lung_labels(np.asarray(base_lungs))
    nlab = len(CHANGE_NAMES)
    counts = np.zeros((len(REGIONS), nlab), dtype=np.int64)
    zones = _lung_zones(lungs, top)
    if zones is not None:
        z0, z1, box, lut = zones  # lut: (z, lung label) -> region index
        for z in range(z0, z1):
            lung = lungs[z, box[0], box[1]]
            inside = lung > 0
            region = lut[z][lung[inside]]
            counts += np.bincount(region * nlab + labels[z, box[0], box[1]][inside], minlength=counts.size).reshape(
                counts.shape
            )
    voxel_ml = float(np.prod(spacing)) / 1000.0
    rows = []
    for i, region in enumerate(REGIONS):
        side, zone = region.split("_")
        rows.append({"region": region, "side": side, "zone": zone} | _row(counts[i], voxel_ml))
    return _row(counts.sum(axis=0), voxel_ml), pd.DataFrame(rows)


def _row(count: np.ndarray, voxel_ml: float) -> dict:
    n = int(count[1:].sum())
    row: dict = {"lung_volume_ml": n * voxel_ml}
    for label, name in enumerate(CHANGE_NAMES):
        if label == 0:
            continue
        row[f"{name}_ml"] = int(count[label]) * voxel_ml
        row[f"pct_{name}"] = 100.0 * int(count[label]) / n if n else np.nan
    compared = int(count[[RESOLVED, PERSISTENT, PROGRESSED, REGRESSED]].sum())
    row["baseline_opacity_compared_ml"] = compared * voxel_ml
    row["resolved_fraction"] = 100.0 * int(count[RESOLVED]) / compared if compared else np.nan
    return row


def write_change_map(labels: np.ndarray, path: str | os.PathLike, spacing, origin, direction) -> None:
    """Write the change labels as a gzip-compressed NIfTI-1 label map over the baseline CT
    (:func:`lungtrial.imaging.nifti.write_nifti`: same placement as the per-scan masks), atomically."""
    from lungtrial.imaging.nifti import write_nifti

    write_nifti(np.asarray(labels, dtype=np.uint8), path, spacing, origin, direction)


def write_colour_table(path: str | os.PathLike) -> None:
    """Write the change labels' names and colours as a 3D Slicer colour table (``.txt``/``.ctbl``: one line
    ``value name R G B A`` per label), so that the label map opens with its names in Slicer."""
    from lungtrial.io import write_text

    lines = ["# lungtrial change labels: value name R G B A"]
    for label, name in enumerate(CHANGE_NAMES):
        r, g, b = CHANGE_COLOURS.get(name, (0, 0, 0))
        lines.append(f"{label} {name} {r} {g} {b} {0 if label == 0 else 255}")
    write_text("\n".join(lines) + "\n", path)


def volume_columns() -> list[str]:
    """The columns of :func:`change_volumes`' rows after the region's, in order: ``lung_volume_ml``, ``<name>_ml``
    and ``pct_<name>`` of each change label but the background, ``baseline_opacity_compared_ml``,
    ``resolved_fraction``."""
    return list(_row(np.zeros(len(CHANGE_NAMES), np.int64), 1.0))


# public names of the private modules (see the module docstring), imported on first use (PEP 562): the labels cost
# no registration, table or figure import
_EXPORTS = {
    "lungtrial.imaging._change_pairs": (
        "PAIR_FILES",
        "PAIR_STATUSES",
        "choose_baseline",
        "compare_scans",
        "compare_volumes",
        "measured_reach",
        "pair_labels",
        "preview_planes",
        "read_masks",
    ),
    "lungtrial.imaging._change_table": ("TABLE_CLASSES", "change_table"),
    "lungtrial.imaging._change_picture": ("plot_patient_changes",),
    "lungtrial.imaging.registration": ("REGISTRATION_OPTIONS", "registration_kwargs"),
}


def __getattr__(name: str):
    for module, names in _EXPORTS.items():
        if name in names:
            value = globals()[name] = getattr(importlib.import_module(module), name)
            return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
