"""Checks of the chosen series before it is read: QC issues (:func:`check_series`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from lungtrial.errors import InputError

from ._geometry import _geometry
from ._series import _image_rows, _orientation_keys


@dataclass
class QCIssue:
    """A quality-control finding: ``severity`` "error" excludes the scan, "warning" is reported only.

    ``message`` does not name the scan: whoever reports it does (``scan S1-D7 excluded: <message>``).
    """

    code: str
    severity: str
    message: str


def _format_files(files: Sequence[str], limit: int = 3, names: Mapping[str, str] | None = None) -> str:
    """The first ``limit`` of ``files`` (relative paths), each by ``names[path]`` when given, and how many more."""
    files = [names.get(f, f) for f in files] if names else list(files)
    shown = ", ".join(files[:limit])
    return shown + (f" and {len(files) - limit} more" if len(files) > limit else "")


def check_series(
    index: pd.DataFrame,
    files: Sequence[str],
    *,
    scan_id: str,
    min_slices: int = 20,
    max_slice_thickness_mm: float = 10.0,
    warn_slice_thickness_mm: float = 5.0,
    spacing_tolerance: float = 0.05,
    tilt_tolerance_deg: float = 0.5,
    names: Mapping[str, str] | None = None,
) -> list[QCIssue]:
    """Quality checks of one series before it is read.

    Parameters
    ----------
    index : pandas.DataFrame
        Output of :func:`index_folder`.
    files : sequence of str
        Relative paths of the series (e.g. ``SeriesChoice.files``).
    scan_id : str
        Scan name used in the message of an :class:`~lungtrial.errors.InputError` (the issues' messages do not
        name the scan).
    min_slices, max_slice_thickness_mm : int, float
        Fewer slices, or thicker slices (mm), is an error.
    warn_slice_thickness_mm : float
        Thicker slices (mm) are a warning: the partial volume of a thick slice averages ground glass, small lesions
        and the lung's edges with the tissue around them, so opacity reads differently from thin-slice scans.
    spacing_tolerance : float
        Allowed relative deviation of a slice step from the median step before the spacing counts as uneven.
    tilt_tolerance_deg : float
        Smaller gantry tilts (degrees) are ignored.
    names : mapping of str to str, optional
        How messages name a file (relative path -> name, e.g. the index's ``label``); by default its relative
        path.

    Returns
    -------
    list of QCIssue
        Codes: ``no_series``, ``unreadable``, ``non_ct``, ``too_few_slices``, ``too_thick``, ``thick_slices``,
        ``mixed_matrix``,
        ``mixed_orientation``, ``duplicate_position``, ``duplicate_file``, ``missing_slices``,
        ``uneven_spacing``, ``gantry_tilt``, ``unreadable_other``. Slice spacing is always measured along the
        slice normal, so a tilted series gets a warning only.
    """
    issues: list[QCIssue] = []

    def add(code: str, severity: str, message: str) -> None:
        issues.append(QCIssue(code, severity, message))

    def name(path: str) -> str:
        return names.get(path, path) if names else path

    if not files:
        add("no_series", "error", "no series to check (no file given)")
        return issues
    unknown = sorted(set(files) - set(index["path"]))
    if unknown:
        raise InputError(
            f"{scan_id}: {_format_files(unknown, names=names)} not in the folder index; expected indexed files"
        )
    rows = index.set_index("path").loc[list(files)].reset_index()
    series_keys = set(rows["series"].dropna())

    def by_error(bad: pd.DataFrame, code: str, severity: str, tail: str) -> None:
        """One issue per kind of error among the unreadable files ``bad``, naming them."""
        for err, grp in bad.groupby("error"):
            add(code, severity, f"{err}: {_format_files(grp['path'], names=names)}; {tail}")

    def unreadable(bad: pd.DataFrame) -> None:
        by_error(bad, "unreadable", "error", "expected complete DICOM images")

    def ignored(bad: pd.DataFrame) -> None:
        by_error(bad, "unreadable_other", "warning", "file(s) outside the series ignored")

    unreadable(rows[~rows["readable"]])
    copies = index[index["instance"].isin(rows["instance"].dropna()) & ~index["path"].isin(rows["path"])]
    if not copies.empty:
        copied = _format_files(copies["path"], names=names)
        add("duplicate_file", "warning", f"{copied}: copies of images in the series, used once")
    # Unreadable DICOM files outside the chosen files: an image whose header names this series (and that is not a
    # copy of a chosen image) leaves the series incomplete; one cut before its header names a series is taken for
    # the missing slices when the series has a gap (below); the others are ignored.
    others = index[index["is_dicom"] & ~index["readable"] & ~index["path"].isin(rows["path"])]
    lost = others["series"].isin(series_keys) & ~others["instance"].isin(rows["instance"].dropna())
    unreadable(others[lost])
    others, lost = others[~lost], bool(lost.any())

    ignored(others)
    non_ct = rows[rows["modality"] != "CT"]
    if not non_ct.empty:
        mods = ", ".join(sorted({str(m) for m in non_ct["modality"]}))
        add("non_ct", "error", f"modality {mods} in {_format_files(non_ct['path'], names=names)}; expected CT")
    if len(rows) < min_slices:
        add("too_few_slices", "error", f"{len(rows)} slices; expected at least {min_slices}")
    thick = rows["slice_thickness"].dropna()
    if not thick.empty and thick.max() > max_slice_thickness_mm:
        add("too_thick", "error", f"slices {thick.max():g} mm thick; expected at most {max_slice_thickness_mm:g} mm")
    elif not thick.empty and thick.max() > warn_slice_thickness_mm:
        add(
            "thick_slices",
            "warning",
            f"slices {thick.max():g} mm thick, more than {warn_slice_thickness_mm:g} mm: ground glass, small lesions "
            "and the lung's edges are averaged with the tissue around them (partial volume); compare its opacity "
            "with thin-slice scans with care",
        )

    siblings = _image_rows(index)
    siblings = siblings[siblings["series"].isin(series_keys)]
    for column, code, what in (
        ("_matrix", "mixed_matrix", "matrix"),
        ("_orient", "mixed_orientation", "orientation"),
    ):
        values = pd.concat([rows.assign(_in=True), siblings[~siblings["path"].isin(rows["path"])].assign(_in=False)])
        if column == "_matrix":
            values[column] = [f"{r:.0f}x{c:.0f}" for r, c in zip(values["rows"], values["columns"], strict=True)]
        else:
            values[column] = [
                "missing" if k is None else "\\".join(f"{v:g}" for v in k)
                for k in _orientation_keys(values["orientation"])
            ]
        main = values.loc[values["_in"], column].mode()
        if values[column].nunique(dropna=False) > 1 and not main.empty:
            odd = values[values[column] != main.iloc[0]]
            inside = bool(odd["_in"].any())
            shown = odd[column].iloc[0]
            where = "in the chosen files" if inside else "in the same series, set aside"
            add(
                code,
                "error" if inside else "warning",
                f"mixed {what} {where}: {_format_files(odd['path'], names=names)} ({shown}); expected {main.iloc[0]}",
            )
    missing = rows[rows["orientation"].isna() | rows["position"].isna() | rows["pixel_spacing"].isna()]
    if not missing.empty:
        add(
            "missing_geometry",
            "error",
            f"ImagePositionPatient, ImageOrientationPatient or PixelSpacing missing or malformed in "
            f"{_format_files(missing['path'], names=names)}; expected numbers",
        )
        return issues
    if any(i.code == "mixed_orientation" and i.severity == "error" for i in issues) or len(rows) < 2:
        return issues

    geo = _geometry(rows)
    by_path = rows.set_index("path")
    dup = np.flatnonzero(np.abs(geo.steps) < 1e-3)
    for i in dup:
        same = by_path.at[geo.files[i], "instance"] == by_path.at[geo.files[i + 1], "instance"]
        a, b = name(geo.files[i]), name(geo.files[i + 1])
        if same:
            add("duplicate_file", "error", f"{a} and {b} are copies of the same image; expected each slice once")
        else:
            add("duplicate_position", "error", f"{a} and {b} have the same position; expected one slice per position")
    steps = np.delete(geo.steps, dup)
    gap = False
    if steps.size:
        median = float(np.median(steps))
        tol = spacing_tolerance * median + 0.01
        for i, step in enumerate(geo.steps):
            if i in dup or abs(step - median) <= tol:
                continue
            a, b = name(geo.files[i]), name(geo.files[i + 1])
            ratio = step / median
            if ratio > 1.5 and abs(ratio - round(ratio)) * median <= tol:
                if lost or others["series"].isna().any():
                    gap = True  # an unreadable file of this or of no known series: reported as such instead
                    continue
                add(
                    "missing_slices",
                    "error",
                    f"{round(ratio) - 1} slice(s) missing between {a} and {b}: {step:.2f} mm apart; "
                    f"expected {median:.2f} mm",
                )
            else:
                add("uneven_spacing", "error", f"{a} and {b} are {step:.2f} mm apart; expected {median:.2f} mm")
    if gap:
        issues[:] = [i for i in issues if i.code != "unreadable_other"]
        unreadable(others[others["series"].isna()])
        ignored(others[others["series"].notna()])
    tag = rows["gantry_tilt"].dropna()
    tag_tilt = float(tag.abs().max()) if not tag.empty else 0.0
    if geo.tilt_deg > tilt_tolerance_deg:
        add(
            "gantry_tilt",
            "warning",
            f"gantry tilt {geo.tilt_deg:.1f} degrees (table step along z, slices tilted; GantryDetectorTilt "
            f"{tag_tilt:g}); slice spacing measured along the slice normal, volume not resampled",
        )
    elif tag_tilt > tilt_tolerance_deg:
        add(
            "gantry_tilt",
            "warning",
            f"GantryDetectorTilt is {tag_tilt:g} degrees but ImagePositionPatient/ImageOrientationPatient describe "
            "an orthogonal stack; geometry taken from the positions",
        )
    return issues
