"""Array helpers shared by the imaging modules (the segmentation's stages, the metrics, the plausibility checks):
each axial slice's holes filled, the bounding box of a label volume. Conventions: (z, y, x) arrays."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

# in-plane (axial) 4-connectivity for 3D arrays: each plane (axis 0) is labelled on its own
PLANE4 = np.zeros((3, 3, 3), dtype=bool)
PLANE4[1] = ndimage.generate_binary_structure(2, 1)


def fill_holes_2d(mask: np.ndarray) -> np.ndarray:
    """``mask`` with the holes of each axial slice filled (background not 4-connected to the slice's border)."""
    lab, n = ndimage.label(~mask, structure=PLANE4)
    border = np.zeros(n + 1, dtype=bool)
    for edge in (lab[:, 0, :], lab[:, -1, :], lab[:, :, 0], lab[:, :, -1]):
        border[edge] = True
    border[0] = True
    return mask | ~border[lab]


def fast_bbox(labels: np.ndarray) -> tuple[slice, ...] | None:
    """Bounding box of the non-zero voxels of a full-size label volume (None if empty), in two cheap passes."""
    nz = labels.shape[0]
    zs = np.flatnonzero(labels.reshape(nz, -1).max(axis=1))
    if zs.size == 0:
        return None
    plane = labels[zs[0] : zs[-1] + 1].max(axis=0)
    rows, cols = np.flatnonzero(plane.max(axis=1)), np.flatnonzero(plane.max(axis=0))
    return (
        slice(int(zs[0]), int(zs[-1]) + 1),
        slice(int(rows[0]), int(rows[-1]) + 1),
        slice(int(cols[0]), int(cols[-1]) + 1),
    )
