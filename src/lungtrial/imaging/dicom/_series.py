"""Series choice: one axial CT sub-series of the header index (:func:`choose_series`)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pydicom.uid import UID

from lungtrial.errors import InputError

from ._geometry import _normal, _order, _subseries_label
from ._index import CT_IMAGE_STORAGE, ENHANCED_CT_STORAGE
from ._values import _finite, _shown_kernel


@dataclass
class SeriesChoice:
    """The series chosen for measurement.

    Attributes
    ----------
    series : str or None
        Sub-series key (``<hash of SeriesInstanceUID>`` or ``<hash>.<n>`` when one UID was split), None when
        no candidate qualifies.
    files : list of str
        Relative paths (``<file>#<frame number>`` for frames of multi-frame objects) ordered by position along
        the slice normal (ascending).
    reason : str
        One sentence: why this series (or why none).
    candidates : pandas.DataFrame
        One row per image sub-series in the folder with ``eligible`` and ``why_not``.
    """

    series: str | None
    files: list[str]
    reason: str
    candidates: pd.DataFrame


def _orientation_keys(orientations: pd.Series, tol: float = 1e-3) -> list[tuple[float, ...] | None]:
    """Each orientation replaced by the first one seen within ``tol`` (direction cosines), so that rounding
    jitter does not split a series."""
    seen: list[tuple[float, ...]] = []
    keys = []
    for o in orientations:
        if o is None:
            keys.append(None)
            continue
        match = next((r for r in seen if max(abs(a - b) for a, b in zip(r, o, strict=True)) <= tol), None)
        if match is None:
            match = tuple(round(v, 4) for v in o)
            seen.append(match)
        keys.append(match)
    return keys


def _split_subseries(images: pd.DataFrame) -> pd.DataFrame:
    """Add a ``subseries`` column: one UID is split by orientation, matrix, pixel spacing, thickness, and by
    acquisition number when acquisitions cover the same positions (two passes over one region)."""
    images = images.copy()
    orient = _orientation_keys(images["orientation"])
    spacing = images["pixel_spacing"].map(lambda s: None if s is None else tuple(round(v, 4) for v in s))
    thick = images["slice_thickness"].map(lambda t: None if t is None else round(t, 2))
    keys = list(zip(images["series"], orient, images["rows"], images["columns"], spacing, thick, strict=True))
    images["_group"] = [str(k) for k in keys]
    labels = {}
    for series, group in images.groupby("series", sort=False):
        parts = []
        for _, sub in group.groupby("_group", sort=False):
            parts.extend(_split_acquisitions(sub))
        parts.sort(key=lambda idx: (-len(idx), min(images.loc[idx, "path"])))
        for i, idx in enumerate(parts, start=1):
            for j in idx:
                labels[j] = series if len(parts) == 1 else f"{series}.{i}"
    images["subseries"] = pd.Series(labels)
    return images.drop(columns="_group")


def _split_acquisitions(sub: pd.DataFrame) -> list[list]:
    acq = pd.to_numeric(sub["acquisition_number"]).fillna(-1)
    if acq.nunique() < 2 or sub["orientation"].iloc[0] is None or sub["position"].isna().any():
        return [list(sub.index)]
    n = _normal(sub["orientation"].iloc[0])
    s = sub["position"].map(lambda p: float(np.dot(p, n)))
    ranges = sorted((s[acq == a].min(), s[acq == a].max(), a) for a in acq.unique())
    overlap = any(nxt[0] <= prev[1] for prev, nxt in itertools.pairwise(ranges))
    if not overlap:
        return [list(sub.index)]
    return [list(sub.index[acq == a]) for a in sorted(acq.unique())]


def _candidate_row(key: str, rows: pd.DataFrame, min_slices: int, max_thickness: float) -> dict:
    first = rows.iloc[0]
    why = []
    sop = first["sop_class"] or "unknown SOP class"
    if sop not in (UID(CT_IMAGE_STORAGE).name, *(UID(u).name for u in ENHANCED_CT_STORAGE)):
        why.append(f"not CT image storage ({sop})")
    if first["modality"] != "CT":
        why.append(f"modality {first['modality'] or 'missing'}, not CT")
    image_type = (first["image_type"] or "").upper()
    if "LOCALIZER" in image_type or "SCOUT" in image_type:
        why.append("localizer")
    if first["samples_per_pixel"] not in (None, 1) or (first["photometric"] or "MONOCHROME2") not in (
        "MONOCHROME1",
        "MONOCHROME2",
    ):
        why.append(f"not grey-scale ({first['photometric']})")
    if ((rows["frames"] > 1) & rows["frame"].isna()).any():
        why.append("multi-frame object without per-frame functional groups")
    geometry_ok = rows["orientation"].notna().all() and rows["position"].notna().all()
    label = _subseries_label(first["orientation"])
    spacing = None
    if not geometry_ok:
        why.append("ImagePositionPatient/ImageOrientationPatient missing")
    else:
        if label != "axial":
            why.append(f"{label}, not axial")
        _, s = _order(rows)
        if len(s) > 1:
            spacing = float(np.median(np.diff(s)))
    n = len(rows)
    if n < min_slices:
        why.append(f"{n} slices, fewer than {min_slices}")
    thickness = spacing if pd.isna(first["slice_thickness"]) else float(first["slice_thickness"])
    if thickness is not None and thickness > max_thickness:
        why.append(f"slices {thickness:g} mm thick, more than {max_thickness:g} mm")
    return {
        "series": key,
        "series_number": None if pd.isna(first["series_number"]) else int(first["series_number"]),
        "n_files": n,
        "modality": first["modality"],
        "sop_class": first["sop_class"],
        "image_type": first["image_type"],
        "orientation": label,
        "rows": None if pd.isna(first["rows"]) else int(first["rows"]),
        "columns": None if pd.isna(first["columns"]) else int(first["columns"]),
        "slice_thickness_mm": thickness,
        "spacing_mm": None if spacing is None else round(spacing, 4),
        "kernel": first["kernel"],
        "eligible": not why,
        "why_not": "; ".join(why),
    }


def _label_number(value) -> str:
    return "without number" if value is None or pd.isna(value) else str(int(value))


def _kernel_rank(kernel: str | None, prefer_kernels: Sequence[str]) -> int:
    values = [v.strip().lower() for v in (kernel if isinstance(kernel, str) else "").split("\\")]
    for i, wanted in enumerate(prefer_kernels):
        if wanted.lower() in values:
            return i
    return len(prefer_kernels)


def _image_rows(index: pd.DataFrame) -> pd.DataFrame:
    """Rows that carry image headers (including truncated images, so that QC can name them)."""
    has_header = index["rows"].notna() & index["series"].notna() & (index["is_image"] | index["error"].notna())
    return index[index["is_dicom"] & has_header]


def choose_series(
    index: pd.DataFrame,
    *,
    min_slices: int = 20,
    max_slice_thickness_mm: float = 10.0,
    prefer: str = "thinnest",
    prefer_kernels: Sequence[str] = (),
) -> SeriesChoice:
    """Choose the axial CT series to measure.

    Only grey-scale CT Image Storage or Enhanced CT Image Storage objects (frames) that are not localizers
    qualify; a SeriesInstanceUID holding several orientations, matrices, pixel spacings, slice thicknesses or
    overlapping acquisitions is split into sub-series first.

    Parameters
    ----------
    index : pandas.DataFrame
        Output of :func:`index_folder`.
    min_slices : int
        Sub-series with fewer slices do not qualify.
    max_slice_thickness_mm : float
        Sub-series with thicker slices (SliceThickness, else slice spacing) do not qualify, in mm.
    prefer : {"thinnest", "most_slices"}
        Ranking among qualifying sub-series (ties: the other criterion, then the lower SeriesNumber).
    prefer_kernels : sequence of str
        ConvolutionKernel values (case-insensitive); a sub-series with an earlier listed kernel ranks first.

    Returns
    -------
    SeriesChoice
        ``files`` ordered by ImagePositionPatient projected on the slice normal (never by InstanceNumber or
        file name).
    """
    if prefer not in ("thinnest", "most_slices"):
        raise InputError(f"imaging.series.prefer is {prefer!r}; expected 'thinnest' or 'most_slices'")
    images = _image_rows(index)
    if images.empty:
        return SeriesChoice(None, [], "No DICOM image was found in the folder.", pd.DataFrame())
    # copies of one SOP instance (same SOPInstanceUID) are used once: the first path
    copies = images["instance"].notna() & images.duplicated(subset=["series", "instance"], keep="first")
    images = images[~copies]
    images = _split_subseries(images)
    cands = pd.DataFrame(
        [
            _candidate_row(key, rows, min_slices, max_slice_thickness_mm)
            for key, rows in images.groupby("subseries", sort=True)
        ]
    )
    eligible = cands[cands["eligible"]]
    if eligible.empty:
        summary = "; ".join(
            f"series {_label_number(r.series_number)} ({r.n_files} files): {r.why_not}" for r in cands.itertuples()
        )
        return SeriesChoice(None, [], f"No axial CT series qualifies: {summary}.", cands)

    # qualifying series of two patients, or of two studies, in one scan folder: which is the scan cannot be told
    mixed = _mixed_folder(images[images["subseries"].isin(eligible["series"])])
    if mixed:
        return SeriesChoice(None, [], mixed, cands)

    def rank(r) -> tuple:
        thin = _finite(r.slice_thickness_mm, math.inf)
        order = (thin, -r.n_files) if prefer == "thinnest" else (-r.n_files, thin)
        return (_kernel_rank(r.kernel, prefer_kernels), *order, _finite(r.series_number, math.inf), r.series)

    best = min(eligible.itertuples(), key=rank)
    files, _ = _order(images[images["subseries"] == best.series])
    criterion = "the thinnest slices" if prefer == "thinnest" else "the most slices"
    if prefer_kernels and _kernel_rank(best.kernel, prefer_kernels) < len(prefer_kernels):
        criterion = f"kernel {_shown_kernel(best.kernel, prefer_kernels)}, then {criterion}"
    chosen = (
        f"Series {_label_number(best.series_number)} ({best.n_files} axial CT slices, "
        f"{_finite(best.slice_thickness_mm, math.nan):g} mm, kernel {_shown_kernel(best.kernel, prefer_kernels) or 'unknown'})"
    )
    if len(eligible) == 1:
        reason = f"{chosen} is the only qualifying series"
    else:
        reason = f"{chosen} has {criterion} among {len(eligible)} qualifying series"
    set_aside = cands[~cands["eligible"]]
    if not set_aside.empty:
        reason += "; set aside: " + ", ".join(
            f"series {_label_number(r.series_number)} ({r.why_not})" for r in set_aside.itertuples()
        )
    reason += "."
    return SeriesChoice(best.series, files, reason, cands)


def _mixed_folder(images: pd.DataFrame) -> str | None:
    """Why ``images`` (the qualifying series' images) are not one scan's: more than one PatientID, or more than one
    StudyInstanceUID, among the images that have one; the first file of each is named (``label``), never a value.
    None when they are one patient's one study (images without the tag count for neither)."""
    for column, what in (("patient", "patients (PatientID differs)"), ("study", "studies (StudyInstanceUID differs)")):
        if column not in images:
            continue
        tagged = images[images[column].notna()]
        groups = tagged.groupby(tagged[column], sort=False)
        if len(groups) > 1:
            firsts = [grp["label"].iloc[0] if "label" in grp else grp["path"].iloc[0] for _, grp in groups]
            shown = ", ".join(firsts[:3]) + (f" and {len(firsts) - 3} more" if len(firsts) > 3 else "")
            return (
                f"images of {len(groups)} {what} in the folder (first images: {shown}); "
                "expected one patient's CT study per scan folder"
            )
    return None
