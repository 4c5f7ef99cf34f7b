"""Header index, series choice and checks together: the content of ``series.json`` (:func:`ingest`)."""

from __future__ import annotations

import math
import os

import numpy as np
import pandas as pd

from lungtrial.errors import InputError, ScanExcluded

from ._checks import check_series
from ._geometry import _geometry_summary
from ._index import _names, index_folder
from ._series import choose_series
from ._values import _shown_kernel


def ingest(
    folder: str | os.PathLike,
    scan_id: str,
    *,
    strict: bool = False,
    index: pd.DataFrame | None = None,
    **series_options,
) -> dict:
    """Index a scan folder, choose and check its series: the content of ``series.json``.

    Parameters
    ----------
    folder : path
        Scan folder (searched recursively).
    scan_id : str
        Trial scan ID, used in messages.
    strict : bool
        Raise :class:`lungtrial.errors.ScanExcluded` instead of returning status "excluded".
    index : pandas.DataFrame, optional
        ``index_folder(folder)`` when the caller already has it (and passes it on to :func:`read_volume`).
    **series_options
        ``min_slices``, ``max_slice_thickness_mm``, ``prefer``, ``prefer_kernels`` (see :func:`choose_series`) and
        ``warn_slice_thickness_mm`` (see :func:`check_series`).

    Returns
    -------
    dict
        JSON-serialisable: ``scan_id``, ``status`` ("ok" | "excluded"), ``reasons`` (why excluded; like the
        ``warnings`` they do not repeat the scan's name),
        ``warnings``, ``series`` (sub-series key), ``reason`` (one sentence: why this series, or why none),
        ``files`` (the series' files ordered along the slice normal, by number: ``file N``, ``file N frame K``
        for the frames of an enhanced multi-frame object; see :func:`index_folder`), ``geometry`` (empty when
        excluded;
        ``shape`` (z, y, x), ``spacing`` (dz, dy, dx) mm, ``origin`` (x, y, z) LPS mm and ``direction`` of the
        reoriented volume, ``tilt_deg``, ``orientation``, ``image_orientation_patient``, ``rescale``,
        ``transfer_syntax``, ``slice_thickness_mm``, ``kernel``), ``candidates`` (one dict per image
        sub-series) and ``n_files_indexed``.
    """
    allowed = {"min_slices", "max_slice_thickness_mm", "warn_slice_thickness_mm", "prefer", "prefer_kernels"}
    unknown = set(series_options) - allowed
    if unknown:
        raise TypeError(f"unknown series option(s): {', '.join(sorted(unknown))}")
    warn, most = series_options.get("warn_slice_thickness_mm"), series_options.get("max_slice_thickness_mm")
    if warn is not None and most is not None and warn > most:
        raise InputError(
            f"imaging.series.warn_slice_thickness_mm is {warn:g} mm, above max_slice_thickness_mm ({most:g} mm); "
            "expected at most the maximum (thicker series are not measured at all)"
        )
    if index is None:
        index = index_folder(folder)
    choice = choose_series(index, **{k: v for k, v in series_options.items() if k != "warn_slice_thickness_mm"})
    names = _names(index)
    known = series_options.get("prefer_kernels") or ()  # kernel names the user typed: shown as they are
    out = {
        "scan_id": scan_id,
        "status": "ok",
        "reasons": [],
        "warnings": [],
        "series": choice.series,
        "reason": choice.reason,
        "files": [names[f] for f in choice.files],
        "geometry": {},
        "candidates": [{**c, "kernel": _shown_kernel(c.get("kernel"), known)} for c in _records(choice.candidates)],
        "n_files_indexed": len(index),
    }
    if choice.series is None:
        out["status"] = "excluded"
        out["reasons"] = [choice.reason]
    else:
        checked = ("min_slices", "max_slice_thickness_mm", "warn_slice_thickness_mm")
        check_options = {k: v for k, v in series_options.items() if k in checked}
        issues = check_series(index, choice.files, scan_id=scan_id, names=names, **check_options)
        out["reasons"] = [i.message for i in issues if i.severity == "error"]
        out["warnings"] = [i.message for i in issues if i.severity == "warning"]
        if out["reasons"]:
            out["status"] = "excluded"
        else:
            out["geometry"] = _geometry_summary(index.set_index("path").loc[choice.files].reset_index())
            out["geometry"]["kernel"] = _shown_kernel(out["geometry"].get("kernel"), known)
    if strict and out["status"] == "excluded":
        raise ScanExcluded(scan_id, out["reasons"])
    return out


def _records(df: pd.DataFrame) -> list[dict]:
    def clean(v):
        if isinstance(v, (np.integer,)):
            return int(v)
        if isinstance(v, (np.floating, float)):
            return None if not math.isfinite(v) else float(v)
        if isinstance(v, np.bool_):
            return bool(v)
        return v

    return [{k: clean(v) for k, v in rec.items()} for rec in df.to_dict("records")]
