"""Slice geometry: the slice normal, files ordered along it, and the reoriented volume's shape, spacing, origin
and direction."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd


def _normal(orientation: Sequence[float]) -> np.ndarray:
    row = np.asarray(orientation[:3], float)
    col = np.asarray(orientation[3:], float)
    n = np.cross(row, col)
    return n / np.linalg.norm(n)


def _subseries_label(orientation: Sequence[float] | None) -> str:
    if orientation is None:
        return "unknown"
    axis = int(np.argmax(np.abs(_normal(orientation))))
    return ("sagittal", "coronal", "axial")[axis]


def _order(rows: pd.DataFrame) -> tuple[list[str], np.ndarray]:
    """Files ordered by position along the slice normal and those positions (mm)."""
    orientation = rows["orientation"].iloc[0]
    n = _normal(orientation)
    s = np.array([float(np.dot(p, n)) for p in rows["position"]])
    order = np.argsort(s, kind="stable")
    return list(rows["path"].to_numpy()[order]), s[order]


@dataclass
class _Geometry:
    files: list[str]
    positions: np.ndarray  # (n, 3) LPS mm, in file order
    steps: np.ndarray  # projected distances between consecutive slices, mm
    tilt_deg: float


def _geometry(rows: pd.DataFrame) -> _Geometry:
    files, s = _order(rows)
    by_path = rows.set_index("path")
    positions = np.array([by_path.at[f, "position"] for f in files], float)
    n = _normal(rows["orientation"].iloc[0])
    tilt = 0.0
    if len(files) > 1:
        step = positions[-1] - positions[0]
        length = np.linalg.norm(step)
        if length > 0:
            tilt = math.degrees(math.acos(min(1.0, abs(float(np.dot(step, n))) / length)))
    return _Geometry(files, positions, np.diff(s), tilt)


def _reorientation(orientation: Sequence[float]) -> tuple[tuple[int, ...], tuple[bool, ...]]:
    """Axis permutation and flips that bring the (slice, row, column) array to (superior, posterior, left).

    Returns ``perm`` (for output axis k = z, y, x, the input axis) and ``flip`` (per output axis).
    """
    row = np.asarray(orientation[:3], float)
    col = np.asarray(orientation[3:], float)
    n = _normal(orientation)
    # direction of increasing index for input axes (slice, row index, column index) in LPS
    axes = np.stack([n, col, row])  # input axis i -> LPS vector
    targets = (2, 1, 0)  # output z <- LPS z (S), y <- LPS y (P), x <- LPS x (L)
    best = max(itertools.permutations(range(3)), key=lambda p: sum(abs(axes[p[k], targets[k]]) for k in range(3)))
    flip = tuple(bool(axes[best[k], targets[k]] < 0) for k in range(3))
    return best, flip


def _output_geometry(rows_cols: tuple[int, int], n: int, orientation, pixel_spacing, dz: float, first, last):
    """Shape, spacing, origin and direction of the reoriented volume (see :func:`read_volume`)."""
    row = np.asarray(orientation[:3], float)
    col = np.asarray(orientation[3:], float)
    normal = _normal(orientation)
    perm, flip = _reorientation(orientation)
    in_shape = (n, rows_cols[0], rows_cols[1])
    in_spacing = (dz, float(pixel_spacing[0]), float(pixel_spacing[1]))
    in_vectors = [normal, col, row]  # unit vectors of increasing input index
    shape = tuple(in_shape[p] for p in perm)
    spacing = tuple(in_spacing[p] for p in perm)
    origin = np.asarray(first, float).copy()
    direction = np.zeros((3, 3))
    for k, p in enumerate(perm):
        v = in_vectors[p]
        if flip[k]:
            # the last slice's own position keeps a tilted (sheared) stack's origin on its first voxel
            origin = origin + (np.asarray(last, float) - first if p == 0 else v * in_spacing[p] * (in_shape[p] - 1))
            v = -v
        direction[:, 2 - k] = v  # direction columns in (x, y, z) order, as in ITK
    return shape, spacing, origin, direction


def _geometry_summary(rows: pd.DataFrame) -> dict:
    geo = _geometry(rows)
    by_path = rows.set_index("path")
    first = by_path.loc[geo.files[0]]
    dz = float(np.median(geo.steps))
    shape, spacing, origin, direction = _output_geometry(
        (int(first["rows"]), int(first["columns"])),
        len(geo.files),
        first["orientation"],
        first["pixel_spacing"],
        dz,
        geo.positions[0],
        geo.positions[-1],
    )
    slopes = pd.to_numeric(rows["rescale_slope"]).fillna(1.0)
    intercepts = pd.to_numeric(rows["rescale_intercept"]).fillna(0.0)
    rescale = {
        "pairs": sorted({(float(a), float(b)) for a, b in zip(slopes, intercepts, strict=True)}),
        "modality_lut_sequence": bool(rows["modality_lut"].any()),
        "pixel_representation": sorted({int(v) for v in rows["pixel_representation"].dropna()}),
        "bits_stored": sorted({int(v) for v in rows["bits_stored"].dropna()}),
        "padding_value": sorted({int(v) for v in rows["padding_value"].dropna()}),
    }
    rescale["pairs"] = [list(p) for p in rescale["pairs"]]
    return {
        "shape": [int(v) for v in shape],
        "spacing": [round(float(v), 6) for v in spacing],
        "origin": [round(float(v), 4) for v in origin],
        "direction": [[round(float(v), 6) for v in r] for r in direction],
        "tilt_deg": round(geo.tilt_deg, 3),
        "orientation": _subseries_label(first["orientation"]),
        "image_orientation_patient": [round(float(v), 6) for v in first["orientation"]],
        "slice_thickness_mm": None if pd.isna(first["slice_thickness"]) else float(first["slice_thickness"]),
        "kernel": first["kernel"],
        "rescale": rescale,
        "transfer_syntax": sorted({str(v) for v in rows["transfer_syntax"].dropna()}),
    }
