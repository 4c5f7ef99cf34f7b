"""One follow-up CT against its subject's baseline CT: the job of the workflow's ``change_pair`` rule.

:func:`compare_scans` reads both scans (HU from the DICOM folder, lung and opacity labels from the per-scan masks)
and hands them to :func:`compare_volumes`, which registers the follow-up onto the baseline
(:func:`lungtrial.imaging.registration.register`), warps it onto the baseline grid, labels the change per voxel
(:func:`lungtrial.imaging.change.change_labels`) and writes the pair's files (:data:`PAIR_FILES`). Imported from
:mod:`lungtrial.imaging.change`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np
import pandas as pd

from lungtrial.imaging.change import (
    change_labels,
    change_volumes,
    lesion_reach,
    volume_columns,
    write_change_map,
    write_colour_table,
)
from lungtrial.imaging.metrics import REGIONS

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
    preset: str = "radiology",
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
    outdir, registration, threads, preset : as for :func:`compare_volumes`.
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
        preset=preset,
    )


def measured_reach(ct, lungs: np.ndarray, opacity: np.ndarray, preset: str = "radiology") -> np.ndarray:
    """:func:`lesion_reach` of one scan, read on the HU its opacity was measured on: smoothed in-plane when its
    aerated lung is noisy, as :func:`lungtrial.imaging.quantify.analyse_volume` does
    (:func:`lungtrial.imaging.noise.measured_hu`)."""
    from lungtrial.imaging import noise

    hu = noise.measured_hu(ct.hu, lungs, ct.spacing)[0]
    return lesion_reach(hu, lungs, opacity, ct.spacing, preset=preset)


def pair_labels(reg, base, base_lungs, base_opacity, follow, moving, follow_lungs, follow_opacity, preset="radiology"):
    """Change labels of a registered pair on the baseline grid: each scan's lesions' reach marked on its own grid
    (:func:`measured_reach`), the follow-up's labels warped by nearest neighbour
    (:func:`lungtrial.imaging.registration.warp_follow_up`), then :func:`lungtrial.imaging.change.change_labels`.

    ``reg`` is the pair's :class:`lungtrial.imaging.registration.Registration`, ``moving`` the follow-up's grid;
    the scans and labels are those of :func:`compare_volumes`.
    """
    from lungtrial.imaging.registration import warp_follow_up

    b_reach = measured_reach(base, base_lungs, base_opacity, preset)
    f_reach = measured_reach(follow, follow_lungs, follow_opacity, preset)
    _, w_lungs, w_opacity = warp_follow_up(reg, moving, None, follow_lungs, f_reach)
    del f_reach
    return change_labels(base_lungs, b_reach, w_lungs, w_opacity)


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
    preset: str = "radiology",
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
        (:func:`lungtrial.imaging.registration.registration_kwargs`).
    threads : threads of the registration and resampling.
    seconds : timings already spent (e.g. reading), added to the QC.
    preset : the HU classes' preset the opacity labels were drawn with (for the lesions' reach, :func:`pair_labels`).

    Returns
    -------
    dict
        ``baseline``, ``follow_up`` (scan IDs), ``status`` (``ok``, or ``failed`` when the registration failed
        its QC), ``reason`` ("" when ok), ``qc`` (:attr:`lungtrial.imaging.registration.Registration.qc`) and
        ``seconds`` per step. A failed pair keeps its transform and map for inspection but no volumes: its volume
        columns are empty, with the reason.
    """
    import time

    from lungtrial.imaging.registration import Grid, register

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
    labels = pair_labels(reg, base, base_lungs, base_opacity, follow, moving, follow_lungs, follow_opacity, preset)
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
    columns = volume_columns()
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
