"""Tests for lungtrial.imaging.segmentation._morphology: binary and grey morphology by unions of centred boxes equal
scipy.ndimage's, and switched off the segmentation does not change."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage


def test_morphology_helpers_match_scipy():
    from lungtrial.imaging.segmentation._grid import (
        _CROSS,
        _PLANE4,
        _PLANE8,
        _ball,
        _dilate,
        _disk,
        _erode,
        _grey_grow,
        _open,
    )

    rng = np.random.default_rng(2)
    mask = ndimage.gaussian_filter(rng.random((20, 30, 40)), 2) > 0.5
    within = rng.random(mask.shape) > 0.3
    labels = ndimage.label(mask)[0].astype(np.int32)
    footprints = [_CROSS, _PLANE4, _PLANE8, _disk(20.0, (3.5, 3.2)), _ball(4.0, np.array([2.0, 2.1, 2.1]))]
    footprints += [_ball(4.0, np.array([1.2, 2.4, 2.4])), _ball(4.0, np.array([5.0, 2.0, 2.0]))]
    for fp in footprints:
        np.testing.assert_array_equal(_erode(mask, fp), ndimage.binary_erosion(mask, fp, border_value=0))
        np.testing.assert_array_equal(_dilate(mask, fp), ndimage.binary_dilation(mask, fp))
        np.testing.assert_array_equal(_open(mask, fp), ndimage.binary_opening(mask, fp))
        np.testing.assert_array_equal(
            _dilate(mask, fp, iterations=3, within=within), ndimage.binary_dilation(mask, fp, 3, mask=within)
        )
        np.testing.assert_array_equal(
            _grey_grow(labels, fp), ndimage.grey_dilation(labels, footprint=fp, mode="constant")
        )


def test_segmentation_with_scipy_morphology_is_the_same(monkeypatch, chest, seg):
    """Switched off (``_morphology.ENABLED``, for the speed benchmark), scipy.ndimage does every morphological
    operation: the segmentation does not change."""
    from lungtrial.imaging.segmentation import _morphology, segment_lungs

    monkeypatch.setattr(_morphology, "ENABLED", False)
    np.testing.assert_array_equal(segment_lungs(chest.hu, chest.spacing), seg)


def test_box_parts_of_a_cross_and_a_box():
    from lungtrial.imaging.segmentation._morphology import _box_parts

    cross = ndimage.generate_binary_structure(2, 1)
    assert sorted(_box_parts(cross)) == [(0, 1), (1, 0)]
    assert _box_parts(np.ones((3, 5), bool)) == [(1, 2)]
    ring = np.ones((3, 3), bool)
    ring[1, 1] = False  # not a union of centred boxes
    with pytest.raises(ValueError, match="union of centred boxes"):
        _box_parts(ring)


def test_erosion_treats_outside_as_background():
    from lungtrial.imaging.segmentation._morphology import _dilate, _erode

    mask = np.ones((1, 5, 5), bool)
    fp = np.ones((1, 3, 3), bool)
    eroded = _erode(mask, fp)
    assert eroded[0, 1:4, 1:4].all() and eroded.sum() == 9
    point = np.zeros((1, 5, 5), bool)
    point[0, 0, 0] = True
    assert _dilate(point, fp).sum() == 4  # clipped at the array's edge
