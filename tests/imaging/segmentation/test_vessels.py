"""Vessels and the voxels never counted as opacity (:mod:`lungtrial.imaging.segmentation.vessels`): the fast
slab-wise implementation agrees with whole-volume scipy morphology, and the work shared between
``segment_vessels`` and ``opacity_exclusion`` is never reused for other arrays nor keeps them alive.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from lungtrial.imaging.segmentation import opacity_exclusion, segment_lungs, segment_vessels
from simple_chest import dice, make_simple_chest


def test_vessels_vs_planted(chest, seg):
    ves = segment_vessels(chest.hu, seg, chest.spacing)
    assert ves.dtype == bool
    truth = chest.vessels & (seg > 0)
    assert dice(ves, truth) > 0.6
    # consolidation is not vessel
    assert ves[chest.lesions].mean() < 0.1


def test_vessels_and_exclusion_recomputed_for_new_arrays(chest, seg):
    """The work shared between segment_vessels and opacity_exclusion is never reused for other arrays."""
    ves = segment_vessels(chest.hu, seg, chest.spacing)
    exc = opacity_exclusion(chest.hu, seg, chest.spacing, vessels=ves)
    other = make_simple_chest(lesions=False, seed=4)
    other_seg = segment_lungs(other.hu, other.spacing)
    ves2 = segment_vessels(other.hu, other_seg, other.spacing)
    exc2 = opacity_exclusion(other.hu, other_seg, other.spacing, vessels=ves2)
    # the same inputs again, as copies (new objects): identical results
    hu, lungs = chest.hu.copy(), seg.copy()
    np.testing.assert_array_equal(segment_vessels(hu, lungs, chest.spacing), ves)
    np.testing.assert_array_equal(opacity_exclusion(hu, lungs, chest.spacing, vessels=ves.copy()), exc)
    np.testing.assert_array_equal(opacity_exclusion(hu, lungs, chest.spacing), exc)
    assert not exc2[other_seg == 0].any() and exc2[ves2].all()
    # a vessel mask given by the caller is restricted to the lungs
    assert not opacity_exclusion(hu, lungs, chest.spacing, vessels=np.ones(hu.shape, bool))[lungs == 0].any()


def test_shared_work_keeps_no_volume_alive():
    """The cache shared by segment_vessels and opacity_exclusion holds weak references only."""
    import gc
    import weakref

    c = make_simple_chest(spacing=(3.0, 2.0, 2.0), lesions=False)
    hu = c.hu.copy()
    lungs = segment_lungs(hu, c.spacing)
    vessels = segment_vessels(hu, lungs, c.spacing)
    excluded = opacity_exclusion(hu, lungs, c.spacing, vessels=vessels)
    refs = [weakref.ref(a) for a in (hu, lungs, vessels, excluded)]
    del hu, lungs, vessels, excluded
    gc.collect()
    assert all(r() is None for r in refs)


def _reference_thin(hu, lungs, spacing, threshold_hu, blob_radius_mm=4.0):
    """Dense lung voxels that are not blob-like, the straightforward way (scipy morphology over the lungs'
    bounding box, where the blob grid starts; a block is solid when at least half of its lung voxels are dense)."""
    from lungtrial.imaging.segmentation._grid import BLOB_GRID_MM, _ball, _block_factors

    sp = np.asarray(spacing, float)
    f = _block_factors(sp, BLOB_GRID_MM)
    box = ndimage.find_objects((lungs > 0).astype(np.uint8))[0]
    out = np.zeros(hu.shape, dtype=bool)
    out[box] = _thin_box(hu[box], lungs[box], sp, f, threshold_hu, blob_radius_mm, _ball)
    return out


def _thin_box(hu, lungs, sp, f, threshold_hu, blob_radius_mm, _ball):
    dense = (hu > threshold_hu) & (lungs > 0)
    pad = [(0, -n % int(k)) for n, k in zip(dense.shape, f)]
    padded = np.pad(dense, pad)
    shape6 = sum(((n // int(k), int(k)) for n, k in zip(padded.shape, f)), ())
    blocks = padded.reshape(shape6)
    counts = np.pad(lungs > 0, pad).reshape(blocks.shape).sum(axis=(1, 3, 5))  # lung voxels per block
    solid = (blocks.sum(axis=(1, 3, 5)) >= 0.5 * counts) & (counts > 0)
    ball = _ball(blob_radius_mm, sp * f)
    blob = ndimage.binary_dilation(ndimage.binary_opening(solid, ball), ball)
    up = blob.repeat(f[0], 0).repeat(f[1], 1).repeat(f[2], 2)[: dense.shape[0], : dense.shape[1], : dense.shape[2]]
    return dense & ~up


@pytest.mark.parametrize("spacing", [(2.5, 1.5, 1.5), (1.25, 0.7, 0.7)], ids=["thick", "fine"])
def test_vessels_and_exclusion_match_reference(spacing):
    """The slab-wise counting, the voxel-by-voxel vessel test and the work handed from segment_vessels to
    opacity_exclusion agree with whole-volume scipy morphology, also with partial blocks at every edge, non-default
    thresholds and a bool lung mask."""
    c = make_simple_chest(spacing=spacing, seed=3)
    hu = np.ascontiguousarray(c.hu[1:-2, 2:-1, 1:-4])  # partial blocks of the blob grid at the edges
    lungs = segment_lungs(hu, spacing)
    inner = ndimage.binary_erosion(lungs > 0, ndimage.generate_binary_structure(3, 1), border_value=0)
    ves_ref = _reference_thin(hu, lungs, spacing, -300.0) & inner
    exc_ref = _reference_thin(hu, lungs, spacing, -700.0) | ves_ref
    ves = segment_vessels(hu, lungs, spacing)
    np.testing.assert_array_equal(ves, ves_ref)
    np.testing.assert_array_equal(opacity_exclusion(hu, lungs, spacing, vessels=ves), exc_ref)
    np.testing.assert_array_equal(opacity_exclusion(hu, lungs, spacing, vessels=ves), exc_ref)  # again: recomputed
    mask = lungs > 0
    ves2 = segment_vessels(hu, mask, spacing, threshold_hu=-250.0, blob_radius_mm=5.0)
    ves2_ref = _reference_thin(hu, lungs, spacing, -250.0, 5.0) & inner
    np.testing.assert_array_equal(ves2, ves2_ref)
    exc2 = opacity_exclusion(hu, mask, spacing, vessels=ves2, aerated_hu=-650.0, blob_radius_mm=5.0)
    np.testing.assert_array_equal(exc2, _reference_thin(hu, lungs, spacing, -650.0, 5.0) | ves2_ref)
