"""One scan from its DICOM folder to its outputs: series choice, metrics, regions, NIfTI masks and the QC picture.

:func:`quantify_scan` is what the workflow's ``quantify_scan`` rule and ``lungtrial quantify`` call; both get the
same files in the scan's folder (:data:`LAYOUT`). The outputs are written in a private workspace inside that folder
and moved into place together at the end (:func:`scan_workspace`), so a folder holds either the previous complete
set or the new one, never a half-written file. :func:`analyse_volume` is the array part (segment and measure one
volume), for callers that read the volume themselves.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from lungtrial import io
from lungtrial.errors import InputError, ScanExcluded
from lungtrial.imaging import noise
from lungtrial.imaging.metrics import OPACITY_CLASSES, HUClass, hu_classes, measure_and_label, metric_columns
from lungtrial.imaging.nifti import load_lesion_mask, nifti_affine, write_nifti  # noqa: F401 - (re-exported)

log = logging.getLogger(__name__)

#: The files :func:`quantify_scan` writes into a scan's folder, by role (paths relative to the folder). The
#: workflow's ``quantify_scan`` rule declares the same paths.
LAYOUT = {
    "series": "series.json",
    "metrics": "metrics.csv",
    "regions": "regions.csv",
    "masks": "masks",
    "lungs": "masks/lungs.nii.gz",
    "opacity": "masks/opacity.nii.gz",
    "qc": "qc.png",
}
#: Files written for a measured scan; an excluded scan gets the same but an empty ``masks/`` folder.
OUTPUTS = tuple(LAYOUT[k] for k in ("series", "metrics", "regions", "lungs", "opacity", "qc"))
_EXCLUDED_OUTPUTS = tuple(LAYOUT[k] for k in ("series", "metrics", "regions", "qc"))
_GEOMETRY_COLUMNS = ("n_slices", "spacing_z_mm", "spacing_y_mm", "spacing_x_mm", "slice_thickness_mm")
_CLASS_TITLES = {
    "radiology": ("ground glass", "consolidation"),
    "ards": ("poorly aerated", "non-aerated"),
}


@dataclass(frozen=True)
class ScanResult:
    """What :func:`quantify_scan` measured and wrote for one scan.

    Attributes
    ----------
    scan_id : the trial's scan ID.
    status : ``"ok"`` (measured) or ``"excluded"``.
    exclusion_reason : why the scan was not measured (``""`` when measured).
    metrics : the ``metrics.csv`` row (``scan_id, status, exclusion_reason``, the acquisition geometry and the
        metrics of :func:`lungtrial.imaging.metrics.measure`; volumes in mL, densities in HU, shares in %).
    regions : the ``regions.csv`` table (``scan_id`` and one row per lung region; no rows when excluded).
    series : the ``series.json`` content (:func:`lungtrial.imaging.dicom.ingest`, with the measurement's warnings).
    warnings : the measurement's QC warnings (implausible lungs measured anyway, a lung cut by the field of view).
    outputs : the files written, relative to the scan's folder (:data:`OUTPUTS`).
    timings : seconds: ``read`` (series choice when run here, and reading the volume), ``segment``, ``measure``,
        ``write`` (from the end of measurement to the outputs in place), ``total``. Module imports come before the
        clock starts.
    prior_added_ml : what a serial prior added to the scan's own lungs (mL; outlined in the QC picture); None
        when no prior was used.
    """

    scan_id: str
    status: str
    exclusion_reason: str
    metrics: dict
    regions: pd.DataFrame
    series: dict
    warnings: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    timings: dict = field(default_factory=dict)
    prior_added_ml: float | None = None


#: Prefix of the hidden folder a scan's job works in, and its lock (:func:`scan_workspace`).
_WORKSPACE = ".quantify."
_LOCK = ".quantify.lock"


def _hold(path: Path) -> int | None:
    """Open ``path`` and hold an exclusive lock on it (waiting for a holder to let go); the descriptor, or None
    where the file system has no locks. The lock is the file now at ``path`` (a holder removes it on release)."""
    import fcntl

    waited = False
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if not waited:
                    log.info("another job of this scan is still running (an interrupted run's): waiting for it")
                    waited = True
                fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:  # no flock on this file system: go on without
            os.close(fd)
            return None
        try:
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)  # the holder removed the file as we waited: lock the new one


@contextmanager
def scan_workspace(outdir: str | os.PathLike) -> Iterator[Path]:
    """A fresh hidden temporary folder ``outdir/.quantify.XXXX`` in which one job writes a scan's outputs before
    moving them into place; removed on leaving, whatever happens.

    While open, the job holds an exclusive lock on ``outdir/.quantify.lock`` (released by the kernel if the
    process dies; the file is removed on leaving): a second job of the same scan, e.g. of a rerun while a job of an
    interrupted run is still running, waits for the first to end. Once the lock is held, whatever an interrupted
    job left in ``outdir`` (``.quantify.*`` folders, hidden temporary files of :func:`lungtrial.io.atomic_path`)
    is removed: no live job can own it.
    """
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    lock = outdir / _LOCK
    fd = _hold(lock)
    try:
        for leftover in sorted(outdir.iterdir()):
            name = leftover.name
            if name != _LOCK and (name.startswith(_WORKSPACE) or io.TEMPORARY.match(name)):
                if leftover.is_dir() and not leftover.is_symlink():
                    shutil.rmtree(leftover, ignore_errors=True)
                else:
                    leftover.unlink(missing_ok=True)
                log.info("removed %s, left by an interrupted job", name)
        tmp = Path(tempfile.mkdtemp(dir=outdir, prefix=_WORKSPACE))
        try:
            yield tmp
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    finally:
        lock.unlink(missing_ok=True)
        if fd is not None:
            os.close(fd)


def _publish(work: Path, outdir: Path, names: Iterable[str]) -> None:
    """Move the outputs ``names`` written in the workspace ``work`` into ``outdir``; ``series.json`` goes last.

    Of the ``masks/`` folder only the layout's masks are replaced (a mask this run did not write, e.g. of an
    excluded scan, is removed): other files there (a user's own lesion mask given to ``lungtrial quantify``) stay.
    """
    masks = outdir / LAYOUT["masks"]
    if masks.is_symlink() or (masks.exists() and not masks.is_dir()):
        masks.unlink()
    masks.mkdir(exist_ok=True)
    for key in ("lungs", "opacity"):
        new, old = work / LAYOUT[key], outdir / LAYOUT[key]
        if new.exists():
            os.replace(new, old)
        else:
            old.unlink(missing_ok=True)
    for name in sorted(n for n in names if "/" not in n and n != LAYOUT["series"]):
        os.replace(work / name, outdir / name)
    os.replace(work / LAYOUT["series"], outdir / LAYOUT["series"])


#: A lung's apex and its posterior recess taper to a few cm^2 in the last slices that hold them. A section of a lung
#: in the scan's most superior or most inferior slice of at least this share of the lung's largest section means
#: that the scan's range cut the lung (about a centimetre of it or more).
RANGE_CUT_SHARE = 0.05


def field_of_view_warnings(lungs: np.ndarray) -> list[str]:
    """Warnings when the lungs run into the image's edge: in the plane (the field of view cuts them), or through
    the scan's first or last slice with a section of at least :data:`RANGE_CUT_SHARE` of the lung's largest (the
    scan's range cuts them). Lung outside the image is not measured (volumes and percentages are those of the
    imaged part). ``lungs``: (z, y, x) labels, 1 right, 2 left, z superior."""
    from lungtrial.imaging._arrays import fast_bbox

    box = fast_bbox(lungs)
    if box is None:
        return []
    edges = (lungs[:, 0, :], lungs[:, -1, :], lungs[:, :, 0], lungs[:, :, -1])
    out = []
    for label, name in ((1, "right"), (2, "left")):
        cut = np.zeros(lungs.shape[0], dtype=bool)
        for edge in edges:
            cut |= (edge == label).any(axis=1)
        if cut.any():
            out.append(
                f"{name} lung reaches the image edge in {int(cut.sum())} of {lungs.shape[0]} slices: the field of "
                "view cuts it, lung outside it is not measured"
            )
        sections = np.zeros(lungs.shape[0], dtype=np.int64)  # the lung's section in each slice, voxels
        sections[box[0]] = [np.count_nonzero(plane == label) for plane in lungs[box]]
        largest = sections.max(initial=0)
        for end, where in ((-1, "above"), (0, "below")):
            share = sections[end] / largest if largest else 0.0
            if share >= RANGE_CUT_SHARE:
                out.append(
                    f"{name} lung runs through the scan's most {'superior' if end else 'inferior'} slice with "
                    f"{100 * share:.0f} % of its largest section: the scan's range cuts it {where}, lung outside "
                    "it is not measured"
                )
    return out


def analyse_volume(
    hu: np.ndarray,
    spacing: tuple[float, float, float],
    *,
    lesion_mask: np.ndarray | None = None,
    preset: str = "radiology",
    classes: Iterable[HUClass] = (),
    lungs: np.ndarray | None = None,
    on_lungs: Callable[[np.ndarray], object] | None = None,
    measure_implausible: bool = False,
) -> dict:
    """Segment (unless ``lungs`` is given) and measure one CT volume; the array part of :func:`quantify_scan`.

    A scan whose aerated lung is noisier than a soft kernel's (a sharp reconstruction kernel) is measured on HU
    smoothed in-plane down to that noise (:mod:`lungtrial.imaging.noise`), with a warning saying so; the lungs are
    segmented, and the QC picture drawn, on the scan's own HU.

    Parameters
    ----------
    hu : (z, y, x) int16 HU, reoriented as by :func:`lungtrial.imaging.dicom.read_volume`.
    spacing : (dz, dy, dx) voxel size in mm.
    lesion_mask : optional (z, y, x) bool lesion mask on the same grid (replaces HU thresholds).
    preset : classes drawn as opacity labels 1 and 2 ("radiology" or "ards").
    classes : extra HU classes.
    lungs : optional (z, y, x) uint8 lung labels to use instead of :func:`lungtrial.imaging.segmentation.segment_lungs`.
    on_lungs : optional function called with the lung labels as soon as they are final and judged plausible
        (before vessels and measurement), e.g. to start writing them in another thread; it must not modify them.
    measure_implausible : measure lungs that :func:`lungtrial.imaging.plausibility.check_lungs` finds implausible
        as a chest CT's lungs (one lung, too small, no trachea or rib cage, a skull...), with the reasons as
        warnings, instead of excluding the scan.

    Returns
    -------
    dict with ``lungs`` (uint8 0/1/2), ``labels`` (uint8 opacity labels, vessels 3), ``scan`` (metrics row),
    ``regions`` (DataFrame), ``warnings`` (list of str: ``"implausible lungs: ..."`` when measured anyway, a
    missing airway, the smoothing of a sharp kernel's noise, then :func:`field_of_view_warnings`), ``timings`` (seconds: ``segment`` (with the plausibility check),
    ``measure``) and ``held_back`` (what the segmentation left out at its anatomical limits, read like a
    (z, y, x) bool mask: :meth:`lungtrial.imaging.segmentation.Segmentation.held_back_mask`; None when it left
    nothing out or ``lungs`` was given).

    Raises
    ------
    ScanExcluded
        If no lung is found, or the lungs are implausible (each reason prefixed ``"implausible lungs: "``) and
        ``measure_implausible`` is false.
    """
    from lungtrial.imaging import segmentation as segment

    t0 = time.perf_counter()
    noted = []
    held_back = None
    if lungs is None:
        try:
            found = segment.segment(hu, spacing)
        except ValueError as exc:
            raise ScanExcluded("volume", [f"lung segmentation failed: {exc}"]) from None
        lungs = found.labels
        held_back = found.held_back_mask()
        if not found.airway_found:
            noted.append(
                "no airway found to anchor the lungs: the largest air regions either side of the midline were taken"
            )
    if not lungs.any():
        raise ScanExcluded("volume", ["lung segmentation found no lung in the volume"])
    from lungtrial.imaging.plausibility import check_lungs

    implausible = [f"implausible lungs: {reason}" for reason in check_lungs(hu, lungs, spacing)]
    if implausible and not measure_implausible:
        exc = ScanExcluded("volume", implausible)
        exc.lungs, exc.held_back = lungs, held_back  # for the QC picture: what was found and judged implausible
        raise exc
    if on_lungs is not None:
        on_lungs(lungs)
    # a sharp kernel's noise is brought down to a soft kernel's before opacity is read from HU
    measured, sigma_mm, lung_noise, left = noise.measured_hu(hu, lungs, spacing)
    if sigma_mm > 0:
        still = f"; still {left:.0f} HU at the largest smoothing" if left > noise.NOISE_CEILING_HU else ""
        noted.append(
            f"noisy aerated lung ({lung_noise:.0f} HU, more than a soft kernel's {noise.NOISE_CEILING_HU:g}: a sharp "
            f"kernel or a low dose): opacity measured on HU smoothed in-plane (Gaussian of {sigma_mm:g} mm){still}"
        )
    vessels = segment.segment_vessels(measured, lungs, spacing)
    not_opacity = (
        segment.opacity_exclusion(measured, lungs, spacing, vessels=vessels) if lesion_mask is None else None
    )
    t1 = time.perf_counter()
    scan, regions, labels = measure_and_label(
        measured,
        lungs,
        spacing,
        vessels=vessels,
        lesion_mask=lesion_mask,
        not_opacity=not_opacity,
        classes=classes,
        preset=preset,
    )
    t2 = time.perf_counter()
    return {
        "lungs": lungs,
        "labels": labels,
        "scan": scan,
        "regions": regions,
        "warnings": [*implausible, *noted, *field_of_view_warnings(lungs)],
        "timings": {"segment": round(t1 - t0, 3), "measure": round(t2 - t1, 3)},
        "held_back": held_back,
    }


def _classes(classes: Iterable[HUClass | Mapping]) -> tuple[HUClass, ...]:
    items = list(classes)
    return tuple(c if isinstance(c, HUClass) else hu_classes([c])[0] for c in items) if items else ()


def _excluded(
    scan_id, reasons, series: dict, work: Path, title, classes, timings, start: float, picture=None
) -> ScanResult:
    """Write the outputs of a scan that is not measured into ``work``: its series.json, a metrics row stating the
    reason, a header-only regions table, an empty masks folder and a QC card (or ``picture(path)``, which writes
    the QC picture, when given)."""
    from lungtrial.imaging.qc import message_figure

    prefix = f"{scan_id}: "
    reason = "; ".join(r.removeprefix(prefix) for r in reasons) if reasons else "not measurable"
    log.warning("scan %s excluded: %s", scan_id, reason)
    masks = work / LAYOUT["masks"]
    shutil.rmtree(masks, ignore_errors=True)  # lung labels written before the scan was excluded
    masks.mkdir()
    scan_cols, region_cols = metric_columns(classes)
    row = {"scan_id": scan_id, "status": "excluded", "exclusion_reason": reason}
    regions = pd.DataFrame(columns=["scan_id", *region_cols])
    if picture is None:
        io.write_with(lambda tmp: message_figure(title or scan_id, f"not measured: {reason}", tmp), work / LAYOUT["qc"])
    else:
        io.write_with(picture, work / LAYOUT["qc"])
    io.write_csv(regions, work / LAYOUT["regions"])
    io.write_csv(pd.DataFrame([row], columns=[*row, *_GEOMETRY_COLUMNS, *scan_cols]), work / LAYOUT["metrics"])
    # the series itself may have passed its checks; the scan is excluded all the same (the change maps and
    # every other reader of series.json take "ok" to mean measured, with masks)
    if series.get("status") == "ok":
        series = {**series, "status": "excluded", "reasons": [*series.get("reasons", []), reason]}
    io.write_json(series, work / LAYOUT["series"])
    timings["total"] = round(time.perf_counter() - start, 3)
    return ScanResult(
        scan_id, "excluded", reason, row, regions, series, outputs=_EXCLUDED_OUTPUTS, timings=timings
    )


def preload() -> None:
    """Import every module that measuring a scan needs (:func:`quantify_scan` does so before its clock starts;
    a job pays this once, and ``benchmarks/bench_workflow.py scale`` counts it in a job's start-up)."""
    import cc3d  # noqa: F401 - the metrics' lesions (loaded lazily otherwise)
    import isal.igzip  # noqa: F401
    import nibabel  # noqa: F401
    import SimpleITK  # noqa: F401 - segmentation's distance maps

    from lungtrial import parallel  # noqa: F401
    from lungtrial.imaging import dicom, metrics, qc  # noqa: F401
    from lungtrial.imaging import plausibility  # noqa: F401
    from lungtrial.imaging import segmentation  # noqa: F401


def quantify_scan(
    dicom_dir: str | os.PathLike,
    scan_id: str,
    outdir: str | os.PathLike,
    *,
    series: dict | None = None,
    preset: str = "radiology",
    strict: bool = False,
    lesion_mask: str | os.PathLike | None = None,
    title: str | None = None,
    series_options: Mapping | None = None,
    classes: Iterable[HUClass | Mapping] = (),
    threads: int | None = None,
    measure_implausible: bool = False,
    prior: Callable | None = None,
) -> ScanResult:
    """Measure one scan: choose and read the series, segment lungs and vessels, measure, write every output.

    Vessels are excluded from opacity, and so are the pleural rim and the vessel halo
    (:func:`lungtrial.imaging.segmentation.opacity_exclusion`) unless a lesion mask is given.

    Parameters
    ----------
    dicom_dir : scan folder of DICOM files (searched recursively).
    scan_id : trial scan ID (the only name of the scan in outputs).
    outdir : the scan's folder, created if missing. Gets (:data:`LAYOUT`) ``series.json``
        (:func:`lungtrial.imaging.dicom.ingest`, with the measurement's warnings), ``metrics.csv`` (one row:
        ``scan_id, status, exclusion_reason``, acquisition geometry and the metrics of
        :func:`lungtrial.imaging.metrics.measure`), ``regions.csv`` (``scan_id`` + one row per region),
        ``masks/lungs.nii.gz`` (0/1 right/2 left), ``masks/opacity.nii.gz`` (0 none, 1/2 the preset's opacity
        classes, 3 vessel) and ``qc.png``. They are written in a workspace inside ``outdir`` and moved into place
        together at the end (:func:`scan_workspace`: a second call on the same folder waits); a call that fails
        leaves ``outdir`` as it was. An excluded scan gets ``series.json``, ``metrics.csv`` stating the reason, a
        header-only ``regions.csv``, an empty ``masks/`` and a ``qc.png`` card stating the reason.
    series : content of ``series.json`` when the series was chosen beforehand; None runs
        :func:`~lungtrial.imaging.dicom.ingest` here.
    preset : "radiology" or "ards": the classes drawn in ``opacity.nii.gz`` and ``qc.png`` (both presets are always
        measured).
    strict : raise :class:`~lungtrial.errors.ScanExcluded` instead of writing an "excluded" scan (nothing is
        written then).
    lesion_mask : optional lesion mask image used instead of HU thresholds (see :func:`lungtrial.imaging.nifti.load_lesion_mask`).
    title : first line of the QC picture title (default: ``scan_id``).
    series_options : options of :func:`lungtrial.imaging.dicom.ingest` (``min_slices``, ``max_slice_thickness_mm``,
        ``warn_slice_thickness_mm``, ``prefer``, ``prefer_kernels``), used when ``series`` is None.
    classes : extra HU classes (:class:`~lungtrial.imaging.metrics.HUClass` or ``{name, lower, upper}`` dicts).
    threads : threads the scan may use at once (default :func:`lungtrial.parallel.threads`, 2): array work is
        split over them and the lung labels are written while vessels are segmented and the scan measured, the
        opacity labels while the QC picture is drawn; with 1 everything runs in turn.
    measure_implausible : measure a scan whose lungs are implausible as a chest CT's lungs
        (:func:`lungtrial.imaging.plausibility.check_lungs`), with the reasons as warnings; by default it is
        excluded with them.
    prior : optional serial prior: called as ``prior(volume, labels)`` with the scan's
        :class:`~lungtrial.imaging.dicom.CTVolume` and its own lung labels
        (:func:`lungtrial.imaging.segmentation.segment`), it returns lung labels of the same patient registered onto
        this scan, or None; the lungs are then segmented with them (``segment(..., prior=)``, see
        :func:`lungtrial.imaging.serial.reference_prior`). Its time is ``timings["prior"]``.

    Returns
    -------
    ScanResult
        The metrics row, regions, series.json content, warnings (also logged), files written and timings.

    Raises
    ------
    lungtrial.errors.ScanExcluded
        In strict mode, when the scan cannot be measured.
    lungtrial.errors.InputError
        For an unknown preset or a lesion mask that cannot be used.
    """
    from lungtrial import parallel

    preload()
    if preset not in OPACITY_CLASSES:
        raise InputError(f"preset {preset!r}: expected one of {', '.join(OPACITY_CLASSES)}")
    outdir = Path(outdir)
    with parallel.limit(threads), scan_workspace(outdir) as work:
        result = _quantify_scan(
            dicom_dir,
            scan_id,
            work,
            series=series,
            preset=preset,
            strict=strict,
            lesion_mask=lesion_mask,
            title=title,
            series_options=series_options,
            classes=_classes(classes),
            measure_implausible=measure_implausible,
            prior=prior,
        )
        _publish(work, outdir, result.outputs)
    return result


def _quantify_scan(
    dicom_dir, scan_id, work: Path, *, series, preset, strict, lesion_mask, title, series_options, classes,
    measure_implausible, prior=None,
) -> ScanResult:
    """:func:`quantify_scan` within its workspace ``work``: every output is written there."""
    from lungtrial import parallel
    from lungtrial.imaging import dicom

    start = time.perf_counter()
    timings: dict[str, float] = {}
    (work / LAYOUT["masks"]).mkdir()

    def excluded(reasons: list[str], picture=None) -> ScanResult:
        if strict:
            raise ScanExcluded(scan_id, reasons)
        return _excluded(scan_id, reasons, series, work, title, classes, timings, start, picture)

    index = None
    try:
        if series is None:
            # the header index is kept for read_volume: files it found plain are read without a second parse
            index = dicom.index_folder(dicom_dir)
            series = dicom.ingest(dicom_dir, scan_id, strict=strict, index=index, **dict(series_options or {}))
        if series.get("status") != "ok":
            return excluded(series.get("reasons") or ["series.json: status is not 'ok'"])
        log.info("scan %s: %s", scan_id, series.get("reason", "series chosen"))
        for warning in series.get("warnings", []):
            log.warning("scan %s: %s", scan_id, warning)
        vol = dicom.read_volume(dicom_dir, series, index=index, padding_mask=False)  # padding: -1024 HU
    except ScanExcluded:
        raise
    except InputError as exc:
        if series is None:  # the folder could not be indexed: series.json still says why
            series = {"scan_id": scan_id, "status": "excluded", "reasons": [str(exc)]}
        return excluded([str(exc)])
    timings["read"] = round(time.perf_counter() - start, 3)
    del index

    lesion = None
    if lesion_mask is not None:
        lesion = load_lesion_mask(lesion_mask, vol.hu.shape, vol.spacing, vol.origin, vol.direction)
    place = (vol.spacing, vol.origin, vol.direction)
    # zlib (in SimpleITK's writer) and PNG encoding release the GIL: the lung labels are written while vessels are
    # segmented and the scan measured, then the opacity labels and the QC picture at once
    pool = parallel.pool(1, beside_caller=True)
    jobs = []

    def write_lungs(lungs: np.ndarray) -> None:
        jobs.append(pool.submit(write_nifti, lungs.astype(np.uint8, copy=False), work / LAYOUT["lungs"], *place))

    lungs = held_back = prior_added = None
    if prior is not None:
        from lungtrial.imaging.segmentation import add_prior, segment

        clock = time.perf_counter()
        try:
            own_segmentation = segment(vol.hu, vol.spacing)
            own, held_back = own_segmentation.labels, own_segmentation.held_back_mask()
            del own_segmentation
        except ValueError:  # no lung: analyse_volume says so
            own = None
        if own is not None and own.any():
            found = prior(vol, own)
            lungs = own
            if found is not None:
                # a new array: work done on the scan's own labels (vessels, by the prior) is cached per array
                lungs = own.copy()
                add_prior(vol.hu, lungs, found, vol.spacing)
                prior_added = (lungs > 0) & (own == 0)
            del found
        del own
        timings["prior"] = round(time.perf_counter() - clock, 3)
    try:
        try:
            result = analyse_volume(
                vol.hu,
                vol.spacing,
                lungs=lungs,
                lesion_mask=lesion,
                preset=preset,
                classes=classes,
                on_lungs=write_lungs,
                measure_implausible=measure_implausible,
            )
        except ScanExcluded as exc:
            for job in jobs:
                job.exception()  # waits: the mask it wrote is removed with the exclusion
            found = getattr(exc, "lungs", None)
            picture = None
            if found is not None:  # implausible lungs: the picture shows what was found, so that a reviewer sees why

                def picture(tmp: Path) -> None:
                    from lungtrial.imaging.qc import qc_figure

                    qc_figure(
                        vol.hu, found, np.zeros_like(found), vol.spacing, title or scan_id, tmp,
                        class_names=_CLASS_TITLES[preset], warnings=[f"not measured: {r}" for r in exc.reasons],
                        held_back=getattr(exc, "held_back", None), prior_added=prior_added,
                        numbers="not measured: the lungs found are implausible (outlined below)",
                    )

            return excluded(exc.reasons, picture)
        del lesion
        timings |= result["timings"]
        lungs, labels, regions = result["lungs"], result["labels"], result["regions"]
        if result["held_back"] is not None:  # (with a prior, the scan's own segmentation above gave it)
            held_back = result["held_back"]
        clock = time.perf_counter()

        from lungtrial.imaging.qc import qc_figure

        geometry = series.get("geometry", {})
        row = {
            "scan_id": scan_id,
            "status": "ok",
            "exclusion_reason": "",
            "n_slices": vol.hu.shape[0],
            "spacing_z_mm": vol.spacing[0],
            "spacing_y_mm": vol.spacing[1],
            "spacing_x_mm": vol.spacing[2],
            "slice_thickness_mm": geometry.get("slice_thickness_mm"),
        } | result["scan"]
        warnings = result["warnings"]

        def qc_picture(tmp: Path) -> None:
            qc_figure(
                vol.hu,
                lungs,
                labels,
                vol.spacing,
                title or scan_id,
                tmp,
                class_names=_CLASS_TITLES[preset],
                warnings=warnings,
                held_back=held_back,
                prior_added=prior_added,
            )

        jobs.append(pool.submit(write_nifti, labels, work / LAYOUT["opacity"], *place))
        io.write_with(qc_picture, work / LAYOUT["qc"])
        for job in jobs:
            job.result()
    finally:
        pool.shutdown(wait=True)  # no writer thread outlives the call (the workspace goes with a failure)
    regions.insert(0, "scan_id", scan_id)
    io.write_csv(regions, work / LAYOUT["regions"])
    io.write_csv(pd.DataFrame([row]), work / LAYOUT["metrics"])
    for warning in warnings:
        log.warning("scan %s: %s", scan_id, warning)
    if warnings:  # the scan's QC warnings, with those of the series choice
        series = series | {"warnings": [*series.get("warnings", []), *warnings]}
    io.write_json(series, work / LAYOUT["series"])
    timings["write"] = round(time.perf_counter() - clock, 3)
    timings["total"] = round(time.perf_counter() - start, 3)
    added_ml = None
    if prior_added is not None:
        added_ml = round(float(np.count_nonzero(prior_added)) * float(np.prod(vol.spacing)) / 1000.0, 2)
    return ScanResult(
        scan_id, "ok", "", row, regions, series, tuple(warnings), OUTPUTS, timings, prior_added_ml=added_ml
    )
