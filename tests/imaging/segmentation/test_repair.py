"""Tests for lungtrial.imaging.segmentation.repair's geometry: the plane hulls and the depths below the skin agree
with scikit-image and scipy. What the repair does to a segmentation (consolidation against the mediastinum, on the
dome, in the recess) is tested on whole chests in test_consolidation.py and test_anatomy.py."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage


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
