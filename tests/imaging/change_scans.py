"""Tiny synthetic scan pairs of the change-map tests (test_change_pairs.py, test_change_picture.py): a follow-up
shifted against its baseline, one lesion resolved, one new, one grown into consolidation."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
from scipy import ndimage

SPACING = (3.0, 3.0, 3.0)
SHAPE = (40, 48, 64)


def _ball(centre, radius_mm):
    z, y, x = np.meshgrid(*[np.arange(n) * s for n, s in zip(SHAPE, SPACING)], indexing="ij")
    cz, cy, cx = centre
    return (z - cz) ** 2 + (y - cy) ** 2 + (x - cx) ** 2 < radius_mm**2


def _scan(lesions: dict, shift_mm: float = 0.0, seed: int = 1):
    """A tiny chest (two ellipsoid lungs with vessel-like texture in soft tissue) shifted by ``shift_mm`` along x
    (through its origin), with lesions {name: (centre mm, radius mm, class 1 or 2)}; CT, lungs, opacity."""
    rng = np.random.default_rng(seed)
    z, y, x = np.meshgrid(*[np.arange(n) * s for n, s in zip(SHAPE, SPACING)], indexing="ij")
    lungs = np.zeros(SHAPE, np.uint8)
    for label, cx in ((1, 55.0), (2, 137.0)):
        lungs[((z - 60) / 48) ** 2 + ((y - 72) / 50) ** 2 + ((x - cx) / 34) ** 2 < 1] = label
    texture = ndimage.gaussian_filter(np.random.default_rng(7).standard_normal(SHAPE), 1.0)
    texture /= texture.std()
    hu = np.where(lungs > 0, -860.0 + np.clip(texture - 1.0, 0, None) * 400.0, 40.0)
    opacity = np.zeros(SHAPE, np.uint8)
    for centre, radius, cls in lesions.values():
        ball = _ball(centre, radius) & (lungs > 0)
        hu[ball] = -500.0 if cls == 1 else 20.0
        opacity[ball] = cls
    hu += rng.normal(0, 8, SHAPE)
    ct = SimpleNamespace(
        hu=np.rint(hu).astype(np.int16), spacing=SPACING, origin=(shift_mm, 0.0, 0.0), direction=np.eye(3)
    )
    return ct, lungs, opacity


BASE_LESIONS = {"resolving": ((60, 60, 50), 12, 1), "growing": ((60, 80, 140), 12, 1)}
FOLLOW_LESIONS = {"growing": ((60, 80, 140), 12, 2), "new": ((80, 90, 60), 10, 1)}
FAST = {"demons_iterations": (10, 5), "affine_iterations": 50, "grid_mm": 3.0, "min_dice": 0.8}
