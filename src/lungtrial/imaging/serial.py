"""The serial prior of a scan: the same patient's least-affected scan, registered onto it.

In a serial trial every patient is imaged several times. Consolidation as dense as the chest wall, filling the
posterior recess or lining the wall, cannot be told from the wall on one scan (:mod:`.segmentation.prior`); at the
patient's least-affected timepoint the lungs are aerated out to the pleura. :func:`serial_prior` registers that
scan onto the scan being measured (:func:`lungtrial.imaging.registration.register`: lung-masked affine, then
demons) and brings its lung labels onto the scan's grid, where :func:`lungtrial.imaging.segmentation.segment`
takes them as ``prior``.

Where the scan's consolidation hides the pleura and the diaphragm, the scan shows no boundary that the reference
has: the demons would pull the reference's lungs back to the aerated lung there. So the dense tissue the affine
stage's prior suggests is lung is given no force (it reads as the affine-moved reference), and the displacement
field inside it is carried in from around it (the aerated lung, the visible diaphragm, the wall), where the
breath-hold difference is seen.

A prior is used only when the registration holds: no folding, and the registered prior covers the scan's own
(aerated) lungs -- lungs do not grow by consolidating, so aerated lung outside the prior means the two are not
aligned. Otherwise the scan is measured on its own and the reason is kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .registration import Grid, register

#: Share of the scan's own lung voxels that the registered prior must cover for it to be used: the scan's aerated
#: lung lies inside the least-affected scan's lungs wherever the two are aligned; registration errors of 1-3 mm
#: at the pleura leave a few % outside.
PRIOR_COVERS_MIN = 0.93
#: mm. Standard deviation of the Gaussian that carries the displacement field from around the suspect tissue into
#: it: the breath-hold difference of the diaphragm and the wall varies over several centimetres.
FIELD_FILL_MM = 15.0


@dataclass
class SerialPrior:
    """What :func:`serial_prior` found.

    Attributes
    ----------
    labels : (z, y, x) uint8 or None
        The reference scan's lung labels (1 right, 2 left) on the scan's grid; None when the prior is not used.
    qc : dict
        The registration's QC (:class:`lungtrial.imaging.registration.Registration`), ``covers`` (share of the
        scan's own lungs inside the prior), ``used`` (bool) and ``reason`` (why not; "" when used).
    """

    labels: np.ndarray | None
    qc: dict = field(default_factory=dict)


def serial_prior(
    hu: np.ndarray,
    labels: np.ndarray,
    grid: Grid,
    ref_hu: np.ndarray,
    ref_labels: np.ndarray,
    ref_grid: Grid,
    *,
    floor_raise_mm: float = 0.0,
    **register_kwargs,
) -> SerialPrior:
    """The reference scan's lungs registered onto a scan of the same patient, to be used as its segmentation prior.

    Parameters
    ----------
    hu, labels, grid : the scan being measured: HU (z, y, x), its own lung labels
        (:func:`lungtrial.imaging.segmentation.segment` without a prior) and its :class:`Grid`.
    ref_hu, ref_labels, ref_grid : the same for the reference scan (the patient's least affected,
        :func:`least_affected`).
    floor_raise_mm : the prior's lower boundary is raised by this much (mm, 0: not). Below the lungs lie the
        liver, spleen and stomach wall, as dense as consolidation, and where consolidation hides the diaphragm the
        breath-hold shift there is the registration's largest error; raising the floor trades consolidation kept in
        the deepest recess for less of those organs taken in (``benchmarks/bench_realct.py --serial``).
    **register_kwargs : passed to :func:`lungtrial.imaging.registration.register` (its own Dice limit does not
        apply: the scan's lungs lack the consolidation the prior is for, so the coverage rule is used instead).

    Returns
    -------
    SerialPrior
    """
    from .segmentation.prior import prior_additions

    kwargs = {"min_dice": 0.0, **register_kwargs}
    common = dict(
        fixed_origin=grid.origin,
        fixed_direction=grid.direction,
        moving_origin=ref_grid.origin,
        moving_direction=ref_grid.direction,
    )
    ref = np.asarray(ref_labels, dtype=np.uint8)
    # 1. affine: where the reference's lungs lie on this scan, give or take the breathing
    rough = register(
        hu, labels, grid.spacing, ref_hu, ref, ref_grid.spacing, **common, **{**kwargs, "demons_iterations": (0, 0)}
    )
    if rough.qc.get("failed"):
        return SerialPrior(None, {**rough.qc, "covers": float("nan"), "used": False})
    suspect = prior_additions(hu, labels, rough.warp(ref, ref_grid, kind="nearest", default=0), grid.spacing) > 0
    # 2. deformable, with no force inside the suspect (dense tissue the affine prior suggests is lung: this scan
    # shows no boundary there that the reference has): it reads as the affine-moved reference; the field there is
    # then interpolated from around it (the aerated lung, the visible diaphragm, the wall)
    moved = rough.warp(np.asarray(ref_hu), ref_grid, kind="linear", default=-1000)
    quiet = np.where(suspect, moved, hu).astype(np.int16)
    del moved
    lungs = np.where(suspect & (labels == 0), 1, labels).astype(np.uint8)
    # the scan's own opacity (ground glass, consolidation within its lungs) reads as its aerated lung, as for the
    # change maps: the reference has none there to match
    opacity = _opacity(hu, labels, grid.spacing)
    reg = register(
        quiet, lungs, grid.spacing, ref_hu, ref, ref_grid.spacing, fixed_opacity=opacity, **common, **kwargs
    )
    del opacity
    del quiet
    qc = dict(reg.qc)
    if qc.get("failed"):
        return SerialPrior(None, {**qc, "covers": float("nan"), "used": False})
    reg.deformable = _interpolated_inside(reg.deformable, suspect, grid)
    prior = reg.warp(ref, ref_grid, kind="nearest", default=0).astype(np.uint8)
    own = labels > 0
    covers = float(np.count_nonzero(own & (prior > 0)) / max(1, np.count_nonzero(own)))
    prior = _raised_floor(prior, grid.spacing, floor_raise_mm)
    qc.update(covers=covers, used=covers >= PRIOR_COVERS_MIN, reason="")
    if not qc["used"]:
        qc["reason"] = (
            f"the registered reference lungs cover {100 * covers:.1f} % of the scan's own lungs "
            f"(at least {100 * PRIOR_COVERS_MIN:.0f} % expected when aligned)"
        )
        return SerialPrior(None, qc)
    return SerialPrior(prior, qc)


def _opacity(hu: np.ndarray, labels: np.ndarray, spacing) -> np.ndarray:
    """Opacity labels of a scan's own lungs (:func:`lungtrial.imaging.metrics.opacity_labels`: 1 and 2 opacity, 3
    vessel), vessels and the pleural rim excluded as when it is measured."""
    from .metrics import opacity_labels
    from .segmentation import opacity_exclusion, segment_vessels

    vessels = segment_vessels(hu, labels, spacing)
    return opacity_labels(hu, labels, vessels=vessels, not_opacity=opacity_exclusion(hu, labels, spacing, vessels=vessels))


def _interpolated_inside(transform, region: np.ndarray, grid: Grid):
    """The displacement field ``transform`` with its values inside ``region`` (bool, the scan's grid) replaced by a
    normalised Gaussian average (:data:`FIELD_FILL_MM`) of the field outside it."""
    import SimpleITK as sitk
    from scipy import ndimage

    disp = transform.GetDisplacementField()
    field_arr = sitk.GetArrayFromImage(disp)  # (z, y, x, 3)
    inside = sitk.Resample(
        grid.image(np.ascontiguousarray(region, dtype=np.uint8)), disp, sitk.Transform(), sitk.sitkNearestNeighbor, 0
    )
    inside = ndimage.binary_dilation(sitk.GetArrayFromImage(inside) > 0)
    if not inside.any():
        return transform
    sigma = [FIELD_FILL_MM / s for s in reversed(disp.GetSpacing())]
    weight = (~inside).astype(np.float64)
    norm = np.maximum(ndimage.gaussian_filter(weight, sigma), 1e-6)
    for k in range(field_arr.shape[-1]):
        filled = ndimage.gaussian_filter(field_arr[..., k] * weight, sigma) / norm
        field_arr[..., k] = np.where(inside, filled, field_arr[..., k])
    out = sitk.GetImageFromArray(field_arr, isVector=True)
    out.CopyInformation(disp)
    return sitk.DisplacementFieldTransform(out)


def _raised_floor(prior: np.ndarray, spacing, raise_mm: float) -> np.ndarray:
    """``prior`` without the voxels that lie less than ``raise_mm`` above its lower boundary (z index increasing
    superiorly): its base raised, its sides kept."""
    steps = int(round(raise_mm / float(spacing[0])))
    if steps <= 0:
        return prior
    inside = prior > 0
    keep = inside.copy()
    for k in range(1, steps + 1):
        keep[k:] &= inside[:-k]
        keep[:k] = False
    return np.where(keep, prior, 0).astype(np.uint8)


def reference_prior(
    folder, series: dict, masks, record: dict | None = None, *, same_patient_as=None, **register_kwargs
):
    """A ``prior`` for :func:`lungtrial.imaging.quantify.quantify_scan`: the lungs of the reference scan (its DICOM
    ``folder``, its ``series.json`` content and its ``masks/`` folder with ``lungs.nii.gz``) registered onto the
    scan being measured by :func:`serial_prior`.

    ``record`` (a dict, optional) receives what happened: ``used`` (bool), ``reason`` ("" when used), the
    registration's QC (``dice``, ``jacobian_min`` ... ``covers``; no timings) and ``seconds``.
    ``same_patient_as`` (the measured scan's DICOM folder and ``series.json`` content, optional): the reference is
    not used when its PatientID differs from that scan's (compared in memory,
    :func:`lungtrial.imaging.dicom.other_patients`): another patient's lungs are no prior. ``register_kwargs`` go
    to :func:`serial_prior` (e.g. ``grid_mm``, ``demons_iterations``).
    """
    import time

    from lungtrial.errors import InputError

    from .change import read_masks
    from .dicom import other_patients, read_volume

    record = {} if record is None else record

    def prior(volume, labels: np.ndarray) -> np.ndarray | None:
        start = time.perf_counter()
        try:
            if same_patient_as is not None and other_patients((folder, series), same_patient_as):
                record.update(
                    used=False,
                    reason="the reference scan holds another patient's images (their DICOM PatientID differs): "
                    "check the dicom_dir of both in the scans sheet",
                )
                return None
            ref = read_volume(folder, series, padding_mask=False)
            ref_lungs, _ = read_masks(masks, ref.hu.shape)
        except InputError as exc:
            record.update(used=False, reason=f"reference not readable: {' '.join(str(exc).split())}")
            return None
        found = serial_prior(
            volume.hu,
            labels,
            Grid.of(volume.hu, volume.spacing, volume.origin, volume.direction),
            ref.hu,
            ref_lungs,
            Grid.of(ref.hu, ref.spacing, ref.origin, ref.direction),
            **register_kwargs,
        )
        qc = {k: v for k, v in found.qc.items() if k != "seconds"}
        record.update(qc, used=found.labels is not None, reason=qc.get("reason", "") or "")
        record["seconds"] = round(time.perf_counter() - start, 2)
        return found.labels

    return prior


def least_affected(
    scans: pd.DataFrame,
    *,
    subject: str = "subject_id",
    scan: str = "scan_id",
    opacity: str = "pct_opacity",
    status: str = "status",
    order: str | None = "study_day",
) -> pd.Series:
    """Per subject, the scan with the least opacity among those measured (``status`` "ok"): the reference whose
    lungs are aerated furthest out to the pleura.

    Ties go to the later scan (``order``, when given: later scans have had longer to heal). Subjects with one
    measured scan get it; subjects with none are left out. Returns a Series scan id by subject id.
    """
    ok = scans[scans[status] == "ok"] if status in scans.columns else scans
    ok = ok[np.isfinite(pd.to_numeric(ok[opacity], errors="coerce"))]
    keys = [opacity] + ([order] if order and order in ok.columns else [])
    ascending = [True] + [False] * (len(keys) - 1)
    ranked = ok.sort_values([subject, *keys], ascending=[True, *ascending], kind="mergesort")
    return ranked.groupby(subject, sort=True)[scan].first()


def prior_of_scan(
    scan: str,
    scans: list[str],
    series: list[dict],
    metrics: list,
    masks: list,
    folder_of,
    *,
    same_patient: bool = True,
    **register_kwargs,
):
    """The serial prior of one scan of a subject, and the record of what was decided (the content of
    ``prior.json``).

    Parameters
    ----------
    scan : the scan to measure, one of ``scans``.
    scans : the subject's scan IDs in time order.
    series : each scan's ``series.json`` content, in the order of ``scans``.
    metrics : each scan's ``metrics.csv`` (paths or DataFrames), in that order: the reference is the least affected
        measured one (:func:`least_affected`, ties to the later).
    masks : each scan's ``masks/`` folder, in that order.
    folder_of : function of an index into ``scans`` giving that scan's DICOM folder; it may raise
        :class:`lungtrial.errors.InputError` (the reference's folder is gone: no prior, the reason recorded).
    same_patient : a reference whose DICOM PatientID differs from the scan's is not used (see
        :func:`reference_prior`).
    register_kwargs : registration settings for :func:`serial_prior`; lists become tuples.

    Returns
    -------
    prior : the ``prior`` of :func:`lungtrial.imaging.quantify.quantify_scan`, or None (the scan is measured alone).
    record : dict with ``scan_id``, ``reference`` ("" without one), ``used`` and, when no prior is made here,
        ``reason``; the prior fills in the rest when it runs (see :func:`reference_prior`).
    """
    from lungtrial.errors import InputError

    here = scans.index(scan)
    tables = [m if isinstance(m, pd.DataFrame) else pd.read_csv(m, dtype={"scan_id": str}) for m in metrics]
    order = np.repeat(np.arange(len(tables)), [len(t) for t in tables])  # each file's rows at its place in time
    rows = pd.concat(tables, ignore_index=True).assign(subject_id="subject", order=order)
    chosen = least_affected(rows, order="order")
    reference = chosen.iloc[0] if len(chosen) else None
    record = {"scan_id": scan, "reference": reference or "", "used": False}
    if series[here].get("status") != "ok":
        record["reason"] = "the scan is not measured"
        return None, record
    if reference is None or reference == scan:
        record["reason"] = "the scan is its subject's least affected measured scan (the reference)"
        return None, record
    k = scans.index(reference)
    try:
        ref_folder = folder_of(k)
    except InputError as exc:
        record["reason"] = " ".join(str(exc).split())
        return None, record
    settings = {key: tuple(v) if isinstance(v, list) else v for key, v in register_kwargs.items()}
    same = (folder_of(here), series[here]) if same_patient else None
    return reference_prior(ref_folder, series[k], masks[k], record, same_patient_as=same, **settings), record
