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
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

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


#: Statuses of a pair (:func:`compare_scans`): compared, registration failed its QC, a scan not measured, or the
#: follow-up is the subject's baseline (every earlier scan was excluded).
PAIR_STATUSES = ("ok", "failed", "excluded", "baseline")
#: Files :func:`compare_scans` writes into its output folder.
PAIR_FILES = {
    "transform": "transform",  # folder: affine.tfm, deformable.h5 (empty when the pair was not registered)
    "map": "map",  # folder: change.nii.gz, change_colours.txt (empty when not registered)
    "volumes": "volumes.csv",
    "qc": "qc.json",
    "preview": "preview.npz",
}
#: Keyword arguments of :func:`lungtrial.imaging.registration.register` that the config's ``registration:``
#: section may set.
REGISTRATION_OPTIONS = (
    "grid_mm",
    "clip_hu",
    "mask_margin_mm",
    "histogram_bins",
    "sampling",
    "affine_iterations",
    "demons_iterations",
    "smoothing_mm",
    "field_mm",
    "min_dice",
    "min_jacobian",
    "seed",
)


def registration_kwargs(options) -> dict:
    """The config's ``registration:`` section as keyword arguments of
    :func:`lungtrial.imaging.registration.register` (``enabled`` and unknown keys dropped, lists made tuples)."""
    out = {}
    for key in REGISTRATION_OPTIONS:
        if options and options.get(key) is not None:
            value = options[key]
            out[key] = tuple(value) if isinstance(value, list) else value
    return out


def choose_baseline(series: list[dict]) -> int | None:
    """Index of the baseline among a subject's scans in time order (each given by its ``series.json`` content):
    the earliest measured one (``status`` ok); None when none was measured."""
    for i, s in enumerate(series):
        if s.get("status") == "ok":
            return i
    return None


def read_masks(folder, shape) -> tuple[np.ndarray, np.ndarray]:
    """The lung and opacity labels (``lungs.nii.gz``, ``opacity.nii.gz`` of a scan's ``masks/`` folder) as uint8
    (z, y, x) arrays; raises :class:`~lungtrial.errors.InputError` naming the file when one is missing or not of
    ``shape`` (the scan's grid)."""
    import nibabel as nib

    from lungtrial.errors import InputError

    out = []
    for name in ("lungs.nii.gz", "opacity.nii.gz"):
        path = os.path.join(folder, name)
        try:
            arr = np.ascontiguousarray(np.asarray(nib.load(path).dataobj, dtype=np.uint8).T)
        except (OSError, ValueError, nib.filebasedimages.ImageFileError) as exc:
            raise InputError(f"{name}: cannot be read ({type(exc).__name__}); expected the scan's mask") from None
        if arr.shape != tuple(shape):
            raise InputError(f"{name}: shape {arr.shape}; expected {tuple(shape)}, the grid of its scan's CT")
        out.append(arr)
    return out[0], out[1]


def preview_planes(base_lungs: np.ndarray, base_opacity: np.ndarray) -> tuple[int, int]:
    """The axial (z) and coronal (y) indices shown in a patient's change picture, from the baseline alone (so
    that every follow-up of the patient is shown in the same planes): where the baseline opacity is largest, or
    the lungs' middle when the baseline has none."""
    opacity = (base_opacity == 1) | (base_opacity == 2)
    weight = opacity if opacity.any() else base_lungs > 0
    if not weight.any():
        return base_lungs.shape[0] // 2, base_lungs.shape[1] // 2
    z = int(np.argmax(weight.sum(axis=(1, 2))))
    y = int(np.argmax(weight.sum(axis=(0, 2))))
    return z, y


def compare_scans(
    baseline: Mapping | None,
    follow_up: Mapping,
    outdir,
    *,
    registration: Mapping | None = None,
    threads: int | None = None,
    same_patient: bool = True,
) -> dict:
    """One follow-up CT against its subject's baseline CT, from the per-scan outputs and the DICOM: read both
    scans (HU from the DICOM folder, lung and opacity labels from the masks), then :func:`compare_volumes`.

    Parameters
    ----------
    baseline, follow_up : mapping
        Each scan as the per-scan stage left it: ``scan_id``, ``series`` (the content of its ``series.json``),
        ``folder`` (its DICOM folder, a callable returning it, or None; only read when both scans were measured)
        and ``masks`` (its ``masks/`` folder: ``lungs.nii.gz``, ``opacity.nii.gz``). ``baseline`` is None when
        the subject has no measured scan up to ``follow_up``; it is ``follow_up`` itself when the follow-up is the
        subject's earliest measured scan.
    outdir, registration, threads : as for :func:`compare_volumes`.
    same_patient : bool
        Check that both scans hold one patient's images (their PatientID, compared in memory); False for data
        whose de-identification gave each study a PatientID of its own.

    Returns
    -------
    dict, as :func:`compare_volumes`. A pair with a scan not measured (or no baseline) is written with status
    ``excluded`` (or ``baseline``) and its reason, without reading any DICOM; a pair whose scan or masks cannot be
    read, with status ``failed`` and the reason (the other pairs and the statistics go on).

    Raises
    ------
    InputError
        When the two scans hold images of different patients (their PatientID differs): a scans sheet pointing a
        scan at another subject's folder, whose numbers would otherwise be reported as that subject's.
    """
    import time

    from lungtrial.errors import InputError
    from lungtrial.imaging.dicom import other_patients, read_volume

    def not_measured(scan, role):
        reasons = "; ".join(scan["series"].get("reasons") or []) or "not measured"
        return f"{role} scan {scan['scan_id']} excluded: {reasons}"

    if baseline is None:
        skip = ("excluded", "no measured scan of the subject up to this one (no baseline)")
    elif baseline["scan_id"] == follow_up["scan_id"]:
        skip = ("baseline", "this scan is the subject's baseline (every earlier scan was excluded)")
    elif baseline["series"].get("status") != "ok":
        skip = ("excluded", not_measured(baseline, "baseline"))
    elif follow_up["series"].get("status") != "ok":
        skip = ("excluded", not_measured(follow_up, "follow-up"))
    else:
        skip = None
    if skip:
        return _write_pair(outdir, baseline, follow_up, *skip)
    t0 = time.perf_counter()
    folders = [scan["folder"]() if callable(scan["folder"]) else scan["folder"] for scan in (baseline, follow_up)]
    # one subject's scans must be one patient's images: a dicom_dir pointing at another subject's folder would
    # otherwise be registered, labelled and reported like any pair (the lungs of two adults overlap well)
    if same_patient and other_patients((folders[0], baseline["series"]), (folders[1], follow_up["series"])):
        raise InputError(
            f"the baseline scan {baseline['scan_id']} and the follow-up scan {follow_up['scan_id']} hold images of "
            "different patients (their DICOM PatientID differs); expected one subject's scans: check the dicom_dir "
            "of both in the scans sheet (if de-identification gave each study a PatientID of its own, set "
            "registration.same_patient_check: false)"
        )
    volumes = []
    try:
        for scan, folder in zip((baseline, follow_up), folders, strict=True):
            ct = read_volume(folder, scan["series"], padding_mask=False)
            lungs, opacity = read_masks(scan["masks"], ct.hu.shape)
            volumes.append((ct, lungs, opacity))
    except InputError as exc:  # a pair that cannot be read is a failed pair with its reason, not a failed run
        return _write_pair(
            outdir, baseline, follow_up, "failed", f"scan {scan['scan_id']}: {' '.join(str(exc).split())}"
        )
    read_s = time.perf_counter() - t0
    (base, b_lungs, b_opacity), (follow, f_lungs, f_opacity) = volumes
    del volumes
    return compare_volumes(
        base,
        b_lungs,
        b_opacity,
        follow,
        f_lungs,
        f_opacity,
        outdir,
        ids=(baseline["scan_id"], follow_up["scan_id"]),
        registration=registration,
        threads=threads,
        seconds={"read": read_s},
    )


def compare_volumes(
    base,
    base_lungs: np.ndarray,
    base_opacity: np.ndarray,
    follow,
    follow_lungs: np.ndarray,
    follow_opacity: np.ndarray,
    outdir,
    *,
    ids: tuple[str, str] = ("baseline", "follow-up"),
    registration: Mapping | None = None,
    threads: int | None = None,
    seconds: dict | None = None,
) -> dict:
    """Register a follow-up onto its baseline (lung-masked, with the opacity labels), warp it onto the baseline
    grid, label the change per voxel and write the pair's files into ``outdir``.

    Parameters
    ----------
    base, follow : CT volumes with ``hu`` (int16 (z, y, x) HU), ``spacing`` ((dz, dy, dx) mm), ``origin`` (LPS mm)
        and ``direction`` (3 x 3), as :class:`lungtrial.imaging.dicom.CTVolume`.
    base_lungs, follow_lungs : uint8 (z, y, x) lung labels of each on its own grid (0, 1 right, 2 left).
    base_opacity, follow_opacity : uint8 (z, y, x) opacity labels of each (0 none, 1, 2, 3 vessel).
    outdir : path
        Folder of the pair (created), holding :data:`PAIR_FILES`: ``transform/`` (ITK ``affine.tfm``,
        ``deformable.h5``), ``map/`` (``change.nii.gz``, a label map on the baseline grid, and
        ``change_colours.txt``), ``volumes.csv`` (``region`` ``whole_lung`` then one row per region with the
        columns of :func:`change_volumes` in mL and %, ``status``, ``reason``), ``qc.json`` (what this returns)
        and ``preview.npz`` (the slices of the patient picture: baseline HU, follow-up HU on the baseline grid
        and change labels in one axial and one coronal plane chosen by :func:`preview_planes`, ``spacing`` mm).
    ids : (baseline scan ID, follow-up scan ID), written into ``qc.json``.
    registration : keyword arguments of :func:`lungtrial.imaging.registration.register`
        (:func:`registration_kwargs`).
    threads : threads of the registration and resampling.
    seconds : timings already spent (e.g. reading), added to the QC.

    Returns
    -------
    dict
        ``baseline``, ``follow_up`` (scan IDs), ``status`` (``ok``, or ``failed`` when the registration failed
        its QC), ``reason`` ("" when ok), ``qc`` (:attr:`lungtrial.imaging.registration.Registration.qc`) and
        ``seconds`` per step. A failed pair keeps its transform and map for inspection but no volumes: its volume
        columns are empty, with the reason.
    """
    import time

    from lungtrial.imaging.registration import Grid, register, warp_follow_up

    seconds = dict(seconds or {})
    t0 = time.perf_counter()
    os.makedirs(os.path.join(outdir, PAIR_FILES["transform"]), exist_ok=True)
    os.makedirs(os.path.join(outdir, PAIR_FILES["map"]), exist_ok=True)
    moving = Grid.of(follow.hu, follow.spacing, follow.origin, follow.direction)
    # where each scan lies in patient space: fixed_origin, fixed_direction, moving_origin, moving_direction
    placement = {f"{role}_{key}": getattr(ct, key) for role, ct in (("fixed", base), ("moving", follow))
                 for key in ("origin", "direction")}
    reg = register(
        base.hu, base_lungs, base.spacing, follow.hu, follow_lungs, follow.spacing, fixed_opacity=base_opacity,
        moving_opacity=follow_opacity, threads=threads, **placement, **(registration or {}),
    )
    seconds["register"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    reg.save(os.path.join(outdir, PAIR_FILES["transform"]))
    _, w_lungs, w_opacity = warp_follow_up(reg, moving, None, follow_lungs, follow_opacity)
    labels = change_labels(base_lungs, base_opacity, w_lungs, w_opacity)
    del w_lungs, w_opacity
    write_change_map(
        labels, os.path.join(outdir, PAIR_FILES["map"], "change.nii.gz"), base.spacing, base.origin, base.direction
    )
    write_colour_table(os.path.join(outdir, PAIR_FILES["map"], "change_colours.txt"))
    row, regions = change_volumes(labels, base_lungs, base.spacing)
    z, y = preview_planes(base_lungs, base_opacity)
    # the follow-up's HU on the baseline grid in the picture's two planes only (the labels above are whole)
    axial, coronal = ((slice(z, z + 1), slice(None), slice(None)), (slice(None), slice(y, y + 1), slice(None)))
    w_axial, w_coronal = (reg.warp(follow.hu, moving, default=-1024, region=r) for r in (axial, coronal))
    preview = {
        "base_axial": base.hu[z],
        "follow_axial": w_axial[0],
        "change_axial": labels[z],
        "base_coronal": base.hu[:, y],
        "follow_coronal": w_coronal[:, 0],
        "change_coronal": labels[:, y],
        "spacing": np.asarray(base.spacing, float),
        "planes": np.asarray([z, y]),
    }
    seconds["warp_label"] = time.perf_counter() - t1
    status, reason = ("failed", f"registration failed: {reg.qc['reason']}") if reg.qc.get("failed") else ("ok", "")
    return _write_pair(
        outdir, {"scan_id": ids[0]}, {"scan_id": ids[1]}, status, reason, row, regions, reg.qc, preview, seconds
    )


def _write_pair(outdir, baseline, follow_up, status, reason, row=None, regions=None, qc=None, preview=None,
                seconds=None) -> dict:
    """Write ``volumes.csv``, ``preview.npz`` and ``qc.json`` of a pair (and its empty ``transform/`` and ``map/``
    when it was not registered); the QC dict."""
    from lungtrial.io import write_csv, write_json, write_with

    outdir = os.fspath(outdir)
    for sub in ("transform", "map"):
        os.makedirs(os.path.join(outdir, PAIR_FILES[sub]), exist_ok=True)
    columns = list(_row(np.zeros(len(CHANGE_NAMES), np.int64), 1.0))
    if regions is None:
        regions = pd.DataFrame(
            [{"region": r, "side": r.split("_")[0], "zone": r.split("_")[1]} for r in REGIONS]
        )
    whole = pd.DataFrame([{"region": "whole_lung"} | (row or {})])
    table = pd.concat([whole, regions], ignore_index=True).reindex(columns=["region", "side", "zone", *columns])
    if status != "ok":
        table[columns] = np.nan  # no number is kept for a pair that cannot be compared
    table["status"] = status
    table["reason"] = reason
    write_csv(table, os.path.join(outdir, PAIR_FILES["volumes"]))
    write_with(lambda tmp: np.savez_compressed(tmp, **(preview or {})), os.path.join(outdir, PAIR_FILES["preview"]))
    result = {
        "baseline": None if baseline is None else baseline["scan_id"],
        "follow_up": follow_up["scan_id"],
        "status": status,
        "reason": reason,
        "qc": qc or {},
        "seconds": {k: round(float(v), 2) for k, v in (seconds or {}).items()},
    }
    # the file holds no timings (they differ on every run; the job's log has them): the same inputs, the same bytes
    saved = {k: v for k, v in result.items() if k != "seconds"}
    saved["qc"] = {k: v for k, v in saved["qc"].items() if k != "seconds"}
    write_json(saved, os.path.join(outdir, PAIR_FILES["qc"]), indent=1, default=float)
    return result


#: Change classes reported per pair in the change table (mL and % of the baseline lung each).
TABLE_CLASSES = ("resolved", "persistent", "new", "progressed", "regressed")


def change_table(
    pairs: Sequence[tuple[Mapping, Mapping, pd.DataFrame]],
    arms: Mapping[str, str] | None = None,
    visits: Mapping[str, Sequence[float]] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One row per pair (the change table) and one row per pair and region, from the pairs' files.

    Parameters
    ----------
    pairs : sequence of (info, qc, volumes)
        ``info``: the follow-up's ``scan_id``, ``subject_id``, ``study_day``, ``scan_date``; ``qc``: the pair's
        ``qc.json`` (:func:`compare_volumes`); ``volumes``: its ``volumes.csv``.
    arms : subject -> arm, optional.
    visits : nominal visits, name -> inclusive study-day window ``[lo, hi]`` (config ``clinical.visits``); a
        follow-up in no window has no visit.

    Returns
    -------
    change : DataFrame
        ``subject_id``, ``arm``, ``baseline_scan``, ``followup_scan``, ``study_day`` (of the follow-up),
        ``visit``, ``baseline_lung_ml``, ``<class>_ml`` and ``pct_<class>`` (% of the baseline lung) for each of
        :data:`TABLE_CLASSES`, ``not_compared_ml``, ``resolved_fraction`` (% of the compared baseline opacity),
        ``new_lesion_ml`` (= ``new_ml``), ``dice``, ``jacobian_min``, ``jacobian_max``, ``status`` and ``reason``
        (no timing: the same pairs give the same table on any machine; the seconds are in each ``qc.json``).
        Volumes are empty for a pair whose status is not ok.
    regions : DataFrame
        The same keys with ``region`` and the region's volumes (``volumes.csv``) for every pair.
    """
    windows = sorted(((str(k), float(v[0]), float(v[1])) for k, v in (visits or {}).items()), key=lambda w: w[1])

    def visit_of(day) -> str:
        if day is None or pd.isna(day):
            return ""
        d = np.floor(float(day))
        return next((name for name, lo, hi in windows if lo <= d <= hi), "")

    rows, region_rows = [], []
    for info, qc, volumes in pairs:
        key = {
            "subject_id": info["subject_id"],
            "arm": (arms or {}).get(info["subject_id"], ""),
            "baseline_scan": qc.get("baseline") or "",
            "followup_scan": info["scan_id"],
            "study_day": info.get("study_day"),
            "visit": visit_of(info.get("study_day")),
        }
        whole = volumes.loc[volumes["region"] == "whole_lung"].iloc[0]
        reg = qc.get("qc") or {}
        row = dict(key, baseline_lung_ml=whole.get("lung_volume_ml"))
        for name in TABLE_CLASSES:
            row[f"{name}_ml"] = whole.get(f"{name}_ml")
            row[f"pct_{name}"] = whole.get(f"pct_{name}")
        row["not_compared_ml"] = whole.get("not_compared_ml")
        row["resolved_fraction"] = whole.get("resolved_fraction")
        row["new_lesion_ml"] = whole.get("new_ml")
        for name in ("dice", "jacobian_min", "jacobian_max"):
            row[name] = reg.get(name, np.nan)
        row["status"] = qc.get("status", whole.get("status"))
        row["reason"] = qc.get("reason", "") or ""
        rows.append(row)
        for _, r in volumes.loc[volumes["region"] != "whole_lung"].iterrows():
            region_rows.append(key | r.drop(labels=["status", "reason"], errors="ignore").to_dict()
                               | {"status": row["status"]})
    change = pd.DataFrame(rows)
    if not change.empty:
        change = change.sort_values(["subject_id", "study_day", "followup_scan"], ignore_index=True)
        if (change["status"] != "ok").any():
            numbers = [c for c in change.columns if c.endswith("_ml") or c.startswith("pct_")] + ["resolved_fraction"]
            change.loc[change["status"] != "ok", numbers] = np.nan  # never a number kept for a pair not compared
    return change, pd.DataFrame(region_rows)


def plot_patient_changes(rows: Sequence[Mapping], title: str = ""):
    """The change picture of one patient: one row per follow-up, its baseline and follow-up side by side in the
    same axial and coronal planes (the follow-up registered onto the baseline grid), then the change labels in
    colour over the baseline (lung window, level -600, width 1500).

    Parameters
    ----------
    rows : sequence of mapping
        Per follow-up, in time order: ``label`` (row title, e.g. ``day 7 (P01-D07)``), ``status``, ``reason`` and
        ``preview`` (the arrays of ``preview.npz`` from :func:`compare_volumes`; empty when the pair was not
        registered: the row then states the reason).
    title : figure title.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.colors import ListedColormap
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    colours = np.zeros((len(CHANGE_NAMES), 4))
    for label, name in enumerate(CHANGE_NAMES):
        if name in ("background", "normal"):
            continue  # no colour: the CT shows through
        colours[label, :3] = np.asarray(CHANGE_COLOURS[name]) / 255.0
        colours[label, 3] = 0.75
    cmap = ListedColormap(colours)
    heads = ("baseline, axial", "follow-up, axial", "change, axial", "baseline, coronal", "follow-up, coronal",
             "change, coronal")
    n = max(len(rows), 1)
    # every row as tall as its images: the axial and coronal columns get widths in proportion to their images'
    # width / height (mm), and the figure the height those widths leave, so that no white space parts the rows
    first = next((row["preview"] for row in rows if "base_axial" in (row.get("preview") or {})), None)
    if first is None:
        ratios = [1.0] * 6
    else:
        dz, dy, dx = (float(s) for s in first["spacing"])
        (ny, nx), nz = first["base_axial"].shape, first["base_coronal"].shape[0]
        ratios = [nx * dx / (ny * dy)] * 3 + [nx * dx / (nz * dz)] * 3
    width, label_in, title_in = 15.0, 0.4, 0.9  # inches: figure, row labels, title and legend
    fig = Figure(figsize=(width, n * (width - label_in) / sum(ratios) + title_in), layout="constrained")
    fig.get_layout_engine().set(w_pad=0.01, h_pad=0.01, wspace=0.0, hspace=0.0)
    axes = fig.subplots(n, 6, squeeze=False, width_ratios=ratios)
    window = {"cmap": "gray", "vmin": -1350, "vmax": 150, "interpolation": "nearest"}
    for r, (row, axs) in enumerate(zip(rows, axes)):
        preview = row.get("preview") or {}
        for ax in axs:
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
        if "base_axial" not in preview:
            axs[0].text(0, 0.5, f"{row.get('label', '')}: not compared ({row.get('status')}): {row.get('reason')}",
                        fontsize=9, va="center", transform=axs[0].transAxes, wrap=True)
            continue
        dz, dy, dx = (float(s) for s in preview["spacing"])
        for c, plane, aspect in ((0, "axial", dy / dx), (3, "coronal", dz / dx)):
            base = preview[f"base_{plane}"]
            follow = preview[f"follow_{plane}"]
            labels = preview[f"change_{plane}"]
            origin = "lower" if plane == "coronal" else "upper"  # coronal: superior up
            axs[c].imshow(base, aspect=aspect, origin=origin, **window)
            axs[c + 1].imshow(follow, aspect=aspect, origin=origin, **window)
            axs[c + 2].imshow(base, aspect=aspect, origin=origin, **window)
            axs[c + 2].imshow(labels, cmap=cmap, vmin=-0.5, vmax=len(CHANGE_NAMES) - 0.5, aspect=aspect,
                              origin=origin, interpolation="nearest")
        status = "" if row.get("status") == "ok" else f"  [{row.get('status')}: {row.get('reason')}]"
        axs[0].set_ylabel(row.get("label", ""), fontsize=9)
        if status:
            axs[2].set_title(status.strip(), fontsize=7, color="#D55E00", wrap=True)
    for c, head in enumerate(heads):
        axes[0][c].set_title(head, fontsize=9) if not axes[0][c].get_title() else None
    handles = [Patch(color=np.asarray(CHANGE_COLOURS[name]) / 255.0, label=name.replace("_", " "))
               for name in CHANGE_NAMES[2:]]
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), frameon=False, fontsize=9)
    fig.suptitle(title, fontsize=11)
    return fig
