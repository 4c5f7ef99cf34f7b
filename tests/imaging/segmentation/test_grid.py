"""The coarse-to-fine helpers (:mod:`lungtrial.imaging.segmentation._grid`, the hulls and depths of
:mod:`~lungtrial.imaging.segmentation.repair`) agree with the reference implementations of scipy and
scikit-image.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage


def test_block_reduce_matches_reference():
    from lungtrial.imaging.segmentation._grid import _block_reduce, _block_sum

    rng = np.random.default_rng(5)
    vol = rng.integers(-1024, 1500, size=(13, 17, 22)).astype(np.int16)
    for factors in [(1, 1, 1), (2, 3, 4), (4, 5, 5), (3, 2, 7)]:
        fz, fy, fx = factors
        ref = np.zeros([-(-n // f) for n, f in zip(vol.shape, factors)])
        for idx in np.ndindex(*ref.shape):
            ref[idx] = vol[
                idx[0] * fz : (idx[0] + 1) * fz, idx[1] * fy : (idx[1] + 1) * fy, idx[2] * fx : (idx[2] + 1) * fx
            ].mean()
        np.testing.assert_allclose(_block_reduce(vol, factors), ref, rtol=1e-5, atol=1e-3)
        mask = vol > 200
        counts = _block_sum(mask, factors)
        assert counts.dtype.kind == "u"
        np.testing.assert_array_equal(counts, _block_sum(mask.astype(np.int16), factors))


@pytest.mark.parametrize("pix", [(3.5, 3.5), (4.0, 3.2), (2.0, 5.0)])
def test_plane_hulls_match_scikit_image(pix):
    """The discrete-orientation hull of every plane at once agrees with scikit-image's convex hull to a sliver."""
    from skimage.morphology import convex_hull_image

    from lungtrial.imaging.segmentation.repair import _hull_planes

    rng = np.random.default_rng(11)
    planes = ndimage.gaussian_filter(rng.random((6, 40, 50)), (0, 3, 3)) > 0.55
    planes[0] = False
    planes[1, 20, 25] = True
    hull = _hull_planes(planes, pix)
    assert not hull[0].any()
    for k in range(1, planes.shape[0]):
        ref = convex_hull_image(planes[k])
        assert not (ref & ~hull[k]).any()
        assert (hull[k] & ~ref).sum() <= 0.03 * ref.sum() + 2  # slivers at the corners of the 128-gon


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


def test_depth_planes_match_scipy():
    """The in-plane depth below the skin (all planes in one 2-D transform) equals scipy's distance transform plane
    by plane: axial planes with their borders outside, coronal planes with their x borders outside only."""
    from lungtrial.imaging.segmentation.repair import _depth, _depths

    rng = np.random.default_rng(4)
    body = ndimage.gaussian_filter(rng.random((12, 30, 34)), (1, 4, 4)) > 0.45
    body[:2] = False  # planes above the body
    body[5, :, :3] = True  # the body cut by the field of view
    csp = np.array([4.0, 3.5, 3.2])
    axial, coronal = _depths(body, csp)
    for z in range(body.shape[0]):
        ref = ndimage.distance_transform_edt(np.pad(body[z], 1), sampling=csp[1:])[1:-1, 1:-1]
        np.testing.assert_allclose(_depth(body, csp, 0)[z], ref, atol=1e-3)
        np.testing.assert_allclose(axial[z][body[z]], ref[body[z]], atol=1e-3)
    for y in range(body.shape[1]):
        ref = ndimage.distance_transform_edt(np.pad(body[:, y], ((0, 0), (1, 1))), sampling=csp[[0, 2]])[:, 1:-1]
        np.testing.assert_allclose(_depth(body, csp, 1)[:, y], ref, atol=1e-3)
        np.testing.assert_allclose(coronal[:, y][body[:, y]], ref[body[:, y]], atol=1e-3)


def test_segmentation_with_scipy_morphology_is_the_same(monkeypatch, chest, seg):
    """Switched off (``_morphology.ENABLED``, for the speed benchmark), scipy.ndimage does every morphological
    operation: the segmentation does not change."""
    from lungtrial.imaging.segmentation import _morphology, segment_lungs

    monkeypatch.setattr(_morphology, "ENABLED", False)
    np.testing.assert_array_equal(segment_lungs(chest.hu, chest.spacing), seg)
