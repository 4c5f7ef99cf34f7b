"""Tests for lungtrial.demo.phantom: the demo chest phantom and its truth."""

from __future__ import annotations

import numpy as np
import pytest

from lungtrial.demo.phantom import Lesions, PhantomParams, make_chest


TINY_SPACING = (5.0, 4.0, 4.0)
TINY_SHAPE = (54, 96, 96)


@pytest.fixture(scope="module")
def chest():
    params = PhantomParams(anatomy_seed=1)
    return params, *make_chest(params, TINY_SPACING, TINY_SHAPE, Lesions(12.0, 4.0, seed=2), seed=3)


def test_make_chest_is_deterministic(chest):
    params, hu, truth = chest
    hu2, truth2 = make_chest(params, TINY_SPACING, TINY_SHAPE, Lesions(12.0, 4.0, seed=2), seed=3)
    np.testing.assert_array_equal(hu, hu2)
    np.testing.assert_array_equal(truth.lungs, truth2.lungs)
    np.testing.assert_array_equal(truth.lesions, truth2.lesions)
    hu3, _ = make_chest(params, TINY_SPACING, TINY_SHAPE, Lesions(12.0, 4.0, seed=2), seed=4)
    assert not np.array_equal(hu, hu3)  # other noise


def test_make_chest_anatomy_and_truth(chest):
    params, hu, truth = chest
    assert hu.shape == TINY_SHAPE and hu.dtype == np.float32
    assert truth.lungs.shape == TINY_SHAPE and truth.lesions.shape == TINY_SHAPE
    # right lung (label 1) at low x (LPS: x to the patient's left)
    xs = np.arange(TINY_SHAPE[2])
    x_right = (truth.lungs == 1).sum(axis=(0, 1)) @ xs / (truth.lungs == 1).sum()
    x_left = (truth.lungs == 2).sum(axis=(0, 1)) @ xs / (truth.lungs == 2).sum()
    assert x_right < TINY_SHAPE[2] / 2 < x_left
    # lesions lie in the lungs; volumes follow from the masks and the spacing
    assert not np.any((truth.lesions > 0) & (truth.lungs == 0))
    s = truth.summary()
    voxel_ml = np.prod(TINY_SPACING) / 1000
    assert s["lung_volume_ml"] == pytest.approx(np.count_nonzero(truth.lungs) * voxel_ml)
    assert s["ground_glass_ml"] == pytest.approx(np.count_nonzero(truth.lesions == 1) * voxel_ml)
    assert s["opacity_ml"] == pytest.approx(s["ground_glass_ml"] + s["consolidation_ml"])
    assert s["pct_opacity"] == pytest.approx(100 * s["opacity_ml"] / s["lung_volume_ml"])
    assert 2500 < s["lung_volume_ml"] < 6500
    assert 8 < s["pct_opacity"] < 24 and 1 < s["pct_consolidation"] < 8
    # HU: air outside, lung parenchyma near lung_hu, lesions denser, noise present
    assert np.median(hu[:, :3, :]) == pytest.approx(params.air_hu, abs=30)
    lung_core = (truth.lungs > 0) & (truth.lesions == 0)
    assert np.median(hu[lung_core]) == pytest.approx(params.lung_hu, abs=40)
    assert np.median(hu[truth.lesions == 1]) > -720
    assert np.median(hu[truth.lesions == 2]) > -250
    # top slice above the apices has no lung, the bottom slices hold the diaphragm and abdomen
    assert truth.lungs[-1].sum() == 0 and truth.lungs[0].sum() < truth.lungs[TINY_SHAPE[0] // 2].sum() / 3


def test_make_chest_parameters_vary_the_image():
    sp, shape = (6.0, 5.0, 5.0), (45, 72, 72)
    base, t0 = make_chest(PhantomParams(noise_hu=0.0), sp, shape)
    assert not t0.lesions.any()
    dense, _ = make_chest(PhantomParams(noise_hu=0.0, lung_hu=-780.0), sp, shape)
    core = t0.lungs > 0
    assert np.median(dense[core]) - np.median(base[core]) == pytest.approx(70, abs=10)
    small, t_small = make_chest(PhantomParams(noise_hu=0.0, lung_width_mm=220, lung_height_mm=200), sp, shape)
    assert t_small.summary()["lung_volume_ml"] < 0.85 * t0.summary()["lung_volume_ml"]
    rotated, t_rot = make_chest(PhantomParams(noise_hu=0.0, rotation_deg=5.0, offset_mm=(10.0, 0.0)), sp, shape)
    assert not np.array_equal(t_rot.lungs, t0.lungs)
    assert t_rot.summary()["lung_volume_ml"] == pytest.approx(t0.summary()["lung_volume_ml"], rel=0.05)
    noisy, _ = make_chest(PhantomParams(noise_hu=25.0), sp, shape)
    assert np.std(noisy[:, :3, :]) == pytest.approx(25.0, rel=0.25)
    # a wider point-spread function leaves more voxels between air and soft tissue (partial volume)
    sharp, _ = make_chest(PhantomParams(noise_hu=0.0, psf_sigma_mm=0.1), sp, shape)
    blurred, _ = make_chest(PhantomParams(noise_hu=0.0, psf_sigma_mm=3.0), sp, shape)
    def between(img):
        return np.count_nonzero((img > -700) & (img < -200))

    assert between(blurred) > 1.5 * between(sharp)
    # overlapping reconstruction: slices thicker than their spacing
    thick, t_thick = make_chest(PhantomParams(noise_hu=0.0), sp, shape, thickness_mm=12.0)
    assert t_thick.thickness_mm == 12.0 and np.array_equal(t_thick.lungs, t0.lungs)
    assert not np.array_equal(thick, base)


def test_make_chest_from_extent():
    hu, truth = make_chest(PhantomParams(), (10.0, 8.0, 8.0), extent_mm=(280.0, 360.0, 360.0))
    assert hu.shape == truth.lungs.shape == (28, 45, 45)
    with pytest.raises(ValueError):
        make_chest(PhantomParams(), (10.0, 8.0, 8.0))


def test_lesion_burden_grows_in_place():
    sp, shape = (6.0, 5.0, 5.0), (45, 72, 72)
    p = PhantomParams(noise_hu=0.0)
    _, small = make_chest(p, sp, shape, Lesions(3.0, 0.5, seed=9))
    _, large = make_chest(p, sp, shape, Lesions(20.0, 5.0, seed=9))
    assert small.summary()["pct_opacity"] < large.summary()["pct_opacity"]
    inside = (small.lesions > 0) & (large.lesions == 0)
    assert inside.sum() <= 0.02 * (small.lesions > 0).sum()
