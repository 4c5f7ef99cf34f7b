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
7      ``not_compared``  a vessel at either time (vessels are in no HU class, as in the per-scan metrics), or
                         outside the follow-up's lungs (lost to the field of view, or where registration left
                         the lungs apart)
=====  ================  ==============================================================================

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

from lungtrial.imaging.metrics import REGIONS, _lung_labels, _lung_zones

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

# change label of baseline opacity label b (0-3) and follow-up opacity label f (0-3): _LUT[4 * b + f]
_LUT = np.full(16, NOT_COMPARED, dtype=np.uint8)
_LUT[[0, 1, 2]] = (NORMAL, NEW, NEW)
_LUT[[4, 5, 6]] = (RESOLVED, PERSISTENT, PROGRESSED)
_LUT[[8, 9, 10]] = (RESOLVED, REGRESSED, PERSISTENT)


def _check(name: str, arr, shape) -> np.ndarray:
    arr = np.asarray(arr)
    if arr.shape != shape:
        raise ValueError(f"{name}: expected shape {shape} (the baseline grid), got {arr.shape}")
    if arr.size and (arr.min() < 0 or arr.max() > 3):
        raise ValueError(f"{name}: expected labels 0-3, got values up to {arr.max()}")
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
    base_opacity : (z, y, x) baseline opacity labels (0 none, 1, 2, 3 vessel).
    follow_lungs, follow_opacity : the follow-up's lung and opacity labels resampled onto the baseline grid.
    """
    shape = np.shape(base_lungs)
    base_lungs = _check("base_lungs", base_lungs, shape)
    base_opacity = _check("base_opacity", base_opacity, shape)
    follow_lungs = _check("follow_lungs", follow_lungs, shape)
    follow_opacity = _check("follow_opacity", follow_opacity, shape)
    out = np.zeros(shape, dtype=np.uint8)
    chunk = 16
    for z in range(0, shape[0], chunk):  # a few slices at a time: small temporaries
        s = slice(z, z + chunk)
        lung = base_lungs[s] > 0
        code = (base_opacity[s] << 2) | follow_opacity[s]
        lab = _LUT[code]
        lab[follow_lungs[s] == 0] = NOT_COMPARED
        lab[~lung] = 0
        out[s] = lab
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
    if len(spacing) != 3 or min(spacing) <= 0:
        raise ValueError(f"spacing: expected three positive voxel sizes (dz, dy, dx) in mm, got {spacing}")
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
