"""Whole-pipeline contract of :func:`lungtrial.imaging.segmentation.segment_lungs` on the simple analytic chest
(``tests/simple_chest.py``): labels and sides, Dice and volume over poses, grids and densities, the field of view
cutting the body or the lungs, the heart, the demo generator's own chest, bad input.
"""

from __future__ import annotations

import numpy as np
import pytest

from lungtrial.imaging.segmentation import opacity_exclusion, segment_lungs
from simple_chest import Chest, dice, make_simple_chest, opacity_pct


def test_labels_dtype_and_sides(chest, seg):
    assert seg.dtype == np.uint8 and seg.shape == chest.hu.shape
    assert set(np.unique(seg)) == {0, 1, 2}
    xs = np.arange(seg.shape[2])
    right_x = xs[np.nonzero(seg == 1)[2]].mean()
    left_x = xs[np.nonzero(seg == 2)[2]].mean()
    assert right_x < left_x  # right lung at low x


def test_dice_and_volume(chest, seg):
    for label in (1, 2):
        assert dice(seg == label, chest.lungs == label) >= 0.97
        err = abs((seg == label).sum() / (chest.lungs == label).sum() - 1.0)
        assert err < 0.02


def test_pleural_lesions_kept(chest, seg):
    kept = (seg > 0)[chest.lesions].mean()
    assert kept > 0.95


def test_excluded_structures(chest, seg):
    inside = seg > 0
    assert not inside[chest.outside].any()  # outside air, table, bowel gas
    assert not inside[chest.trachea].any()
    # main bronchi: only their ends, where they merge with the lung in the axial plane, may be included
    assert inside[chest.airway].mean() < 0.25


def test_opacity_close_to_truth(chest, seg):
    exc = opacity_exclusion(chest.hu, seg, chest.spacing)
    true_pct = 100.0 * chest.lesions.sum() / (chest.lungs > 0).sum()
    assert abs(opacity_pct(chest.hu, seg, exc) - true_pct) < 1.0


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(spacing=(5.0, 1.4, 1.4), lung_hu=-950.0, noise=40.0, lesions=False),
        dict(spacing=(1.25, 2.0, 2.0), offset_x=35.0, rotation_deg=6.0, lung_hu=-700.0, noise=10.0),
        dict(spacing=(3.0, 1.5, 1.5), lung_gap=-6.0, rotation_deg=-4.0),
    ],
    ids=["thick-emphysema-healthy", "thin-offcentre-rotated-dense", "touching-lungs"],
)
def test_variations(kwargs):
    c = make_simple_chest(**kwargs)
    seg = segment_lungs(c.hu, c.spacing)
    for label in (1, 2):
        assert dice(seg == label, c.lungs == label) >= 0.97, label
        assert abs((seg == label).sum() / (c.lungs == label).sum() - 1.0) < 0.02, label
    assert not (seg > 0)[c.outside].any()
    exc = opacity_exclusion(c.hu, seg, c.spacing)
    true_pct = 100.0 * c.lesions.sum() / (c.lungs > 0).sum()
    if kwargs.get("lung_hu", -850) > -750:
        return  # poorly aerated lung reads partly as ground glass by definition of the HU classes
    assert abs(opacity_pct(c.hu, seg, exc) - true_pct) < 1.0


def _with_heart(c: Chest, centre, radii, fov_x_mm) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``c`` with a heart (soft tissue, the wall's HU) indenting the medial side of the lungs, the field of view
    cut at ``fov_x_mm`` (patient x: negative cuts the right side, positive the left) through the body wall.

    Returns the HU, the truth labels and the heart mask, all cut to the field of view."""
    dz, dy, dx = c.spacing
    nz, ny, nx = c.hu.shape
    z = (np.arange(nz) * dz)[:, None, None]
    y = (np.arange(ny) * dy - 140.0)[None, :, None]
    x = (np.arange(nx) * dx - 180.0)[None, None, :]
    (cx, cy, cz), (rx, ry, rz) = centre, radii
    heart = ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 + ((z - cz) / rz) ** 2 <= 1.0
    hu = c.hu.copy()
    rng = np.random.default_rng(11)
    hu[heart] = np.round(40.0 + rng.normal(0.0, 20.0, int(heart.sum()))).astype(np.int16)
    lungs = np.where(heart, 0, c.lungs).astype(np.uint8)
    cut = int(round((fov_x_mm + 180.0) / dx))
    keep = slice(cut, None) if fov_x_mm < 0 else slice(0, cut)
    return hu[..., keep], lungs[..., keep], heart[..., keep]


@pytest.mark.parametrize(
    "spacing, fov_x_mm, centre, radii",
    [
        ((5.0, 2.2, 2.2), 143.0, (20.0, -25.0, 125.0), (55.0, 48.0, 45.0)),
        ((2.5, 1.6, 1.6), -140.0, (30.0, -35.0, 115.0), (60.0, 45.0, 50.0)),
        ((1.25, 2.4, 2.4), None, (15.0, -20.0, 130.0), (50.0, 50.0, 40.0)),
    ],
    ids=["thick-left-cut", "right-cut", "thin-not-cut"],
)
def test_heart_is_not_lung_when_the_field_of_view_cuts_the_body(spacing, fov_x_mm, centre, radii):
    """The heart bulging into the medial side of the left lung lies between the lungs, behind the mediastinal
    pleura: it is not a lesion pocket, also when the field of view cuts the body wall on one side (the lateral skin
    is then just beyond the edge of the image, not on the other side of the body)."""
    c = make_simple_chest(spacing=spacing, lesions=False, seed=7)
    hu, lungs, heart = _with_heart(c, centre, radii, 179.0 if fov_x_mm is None else fov_x_mm)
    assert heart.sum() * np.prod(spacing) > 50_000.0  # mm^3: the heart indents the lungs well
    seg = segment_lungs(hu, spacing)
    assert (seg > 0)[heart].sum() < 0.005 * (lungs > 0).sum()
    for label in (1, 2):
        assert dice(seg == label, lungs == label) >= 0.97, label
        assert abs((seg == label).sum() / (lungs == label).sum() - 1.0) < 0.02, label


def test_no_lungs_raises():
    hu = np.full((20, 40, 40), 40, dtype=np.int16)
    hu[:, :, :3] = -1000
    with pytest.raises(ValueError, match="no lung"):
        segment_lungs(hu, (2.0, 1.0, 1.0))


def test_bad_spacing():
    with pytest.raises(ValueError, match="spacing"):
        segment_lungs(np.zeros((4, 4, 4), np.int16), (1.0, 0.0, 1.0))


def test_demo_generator_healthy_rotated():
    """The demo generator's chest (another anatomy than the phantom here): healthy lungs read near zero opacity."""
    phantom = pytest.importorskip("lungtrial.demo.phantom")
    sp = (3.0, 1.6, 1.6)
    params = phantom.PhantomParams(rotation_deg=4.0, offset_mm=(20.0, 0.0))
    hu, truth = phantom.make_chest(params, sp, phantom.grid_shape((330, 360, 400), sp), None, seed=2)
    seg = segment_lungs(np.round(hu).astype(np.int16), sp)
    for label in (1, 2):
        assert dice(seg == label, truth.lungs == label) >= 0.97
        assert abs((seg == label).sum() / (truth.lungs == label).sum() - 1.0) < 0.02
    exc = opacity_exclusion(hu, seg, sp)
    assert opacity_pct(hu, seg, exc) < 0.5


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(spacing=(2.0, 2.5, 2.5), lesions=False),
        dict(spacing=(1.5, 0.7, 0.7), lesions=False, rotation_deg=3.0),
        dict(spacing=(5.0, 1.4, 1.4), lung_hu=-950.0, noise=40.0, lesions=False),
    ],
    ids=["coarse-pixels", "fine-pixels-rotated", "thick-emphysema"],
)
def test_healthy_volume_unbiased(kwargs):
    """No outward bias at the boundary: the edge threshold is half-way between the measured parenchyma and the
    tissue around it, and the staircase of a convex lung on the coarse grid is not taken for lesion pockets."""
    c = make_simple_chest(**kwargs)
    seg = segment_lungs(c.hu, c.spacing)
    for label in (1, 2):
        assert abs((seg == label).sum() / (c.lungs == label).sum() - 1.0) < 0.01, label
        assert dice(seg == label, c.lungs == label) >= 0.99, label


def test_lungs_cut_by_the_field_of_view():
    """Lungs reaching the first and last slices, with a slice count that leaves a partial block of the coarse grid
    at both ends, are labelled up to the edge of the volume."""
    c = make_simple_chest(spacing=(1.5, 1.5, 1.5), lesions=False)
    zs = np.flatnonzero(c.lungs.any(axis=(1, 2)))
    lo, hi = int(zs[0]) + 7, int(zs[-1]) - 6
    if (hi - lo) % 2 == 0:
        hi -= 1
    hu, lungs = c.hu[lo:hi], c.lungs[lo:hi]
    seg = segment_lungs(hu, c.spacing)
    for label in (1, 2):
        assert dice(seg == label, lungs == label) >= 0.97, label
    assert (seg[0] > 0).sum() > 0.9 * (lungs[0] > 0).sum()
    assert (seg[-1] > 0).sum() > 0.9 * (lungs[-1] > 0).sum()


def test_finer_coarse_grid(chest):
    """A finer coarse grid is a speed/accuracy choice of the caller: same contract, lesions kept at least as well."""
    seg = segment_lungs(chest.hu, chest.spacing, coarse_mm=2.5)
    for label in (1, 2):
        assert dice(seg == label, chest.lungs == label) >= 0.97
    assert (seg > 0)[chest.lesions].mean() > 0.95
    assert not (seg > 0)[chest.outside].any()
    with pytest.raises(ValueError, match="coarse_mm"):
        segment_lungs(chest.hu, chest.spacing, coarse_mm=0.0)


@pytest.mark.parametrize(
    "cut",
    ["right", "left", "both", "posterior", "anterior"],
)
def test_lungs_cut_by_the_field_of_view_are_still_lungs(cut):
    """A field of view targeted on the lungs (or a large patient) can cut through a lung: its air then runs into
    the image edge and is no hole of the body, yet it is lung."""
    c = make_simple_chest(spacing=(3.0, 1.8, 1.6), offset_x=8.0, rotation_deg=4.0, seed=5)
    ys = np.flatnonzero((c.lungs > 0).any(axis=(0, 2)))
    xs = np.flatnonzero((c.lungs > 0).any(axis=(0, 1)))
    into = {1: round(12.0 / c.spacing[1]), 2: round(12.0 / c.spacing[2])}  # 12 mm into the lung
    rows, cols = slice(None), slice(None)
    if cut in ("right", "both"):
        cols = slice(xs[0] + into[2], None if cut == "right" else xs[-1] - into[2])
    if cut == "left":
        cols = slice(None, xs[-1] - into[2])
    if cut == "posterior":
        rows = slice(None, ys[-1] - into[1])
    if cut == "anterior":
        rows = slice(ys[0] + into[1], None)
    hu = np.ascontiguousarray(c.hu[:, rows, cols])
    truth = c.lungs[:, rows, cols]
    got = segment_lungs(hu, c.spacing)
    for side in (1, 2):  # right, left
        assert dice(got == side, truth == side) >= 0.97, cut
    assert abs(np.count_nonzero(got) / np.count_nonzero(truth) - 1) < 0.02
