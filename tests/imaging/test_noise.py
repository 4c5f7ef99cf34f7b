"""Noise of aerated lung and the smoothing of sharp-kernel reconstructions (:mod:`lungtrial.imaging.noise`), and
that a sharp and a soft reconstruction of one chest read the same opacity (:func:`analyse_volume`)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from lungtrial.imaging import noise

SPACING = (2.5, 0.7, 0.7)


def _lung_slab(sd: float, seed: int = 0, shape=(12, 120, 140)):
    rng = np.random.default_rng(seed)
    lungs = np.zeros(shape, np.uint8)
    lungs[:, 10:110, 10:130] = 1
    hu = np.where(lungs > 0, -850.0, 40.0) + rng.normal(0.0, sd, shape)
    return np.rint(hu).astype(np.int16), lungs


@pytest.mark.parametrize("sd", [8.0, 30.0, 45.0])
def test_noise_of_white_noise_is_its_sd(sd):
    hu, lungs = _lung_slab(sd)
    assert noise.lung_noise_hu(hu, lungs) == pytest.approx(sd, rel=0.08)


def test_noise_is_nan_without_aerated_lung():
    hu, lungs = _lung_slab(10.0)
    assert np.isnan(noise.lung_noise_hu(np.full_like(hu, 40), lungs))


def test_soft_kernel_noise_is_left_alone_and_sharp_noise_brought_to_the_ceiling():
    hu, lungs = _lung_slab(12.0)
    assert noise.smoothing_for(hu, lungs, SPACING)[0] == 0.0
    hu, lungs = _lung_slab(60.0, seed=1)
    sigma_mm, before, left = noise.smoothing_for(hu, lungs, SPACING)
    # (pairs must both read as aerated lung: the estimate of so wide a noise is a little low)
    assert before == pytest.approx(60.0, rel=0.2) and 0.0 < sigma_mm < noise.MAX_SMOOTHING_MM
    after = noise.lung_noise_hu(noise.smooth_in_plane(hu, SPACING, sigma_mm), lungs)
    assert left <= noise.NOISE_CEILING_HU
    assert noise.NOISE_CEILING_HU * 0.7 < after <= noise.NOISE_CEILING_HU * 1.02


def test_smoothing_by_slabs_equals_smoothing_the_box_at_once():
    hu, lungs = _lung_slab(50.0, shape=(40, 60, 70))
    within = np.zeros(hu.shape, bool)
    within[3:37, 10:50, 10:60] = True
    whole = np.rint(ndimage.gaussian_filter(hu.astype(np.float32), (0, 1.0, 1.0), mode="nearest")).astype(np.int16)
    out = noise.smooth_in_plane(hu, (2.0, 0.7, 0.7), 0.7, within)
    np.testing.assert_array_equal(out[3:37, 10:50, 10:60], whole[3:37, 10:50, 10:60])
    assert (out[:3] == hu[:3]).all() and (out[37:] == hu[37:]).all()


def test_smoothing_stays_in_its_slice_and_box():
    hu, lungs = _lung_slab(50.0)
    hu[5] = -850  # a uniform slice between noisy ones: unchanged if slices are not mixed
    within = np.zeros(hu.shape, bool)
    within[:, 40:60, 40:60] = True
    out = noise.smooth_in_plane(hu, SPACING, 0.7, within)
    assert out.dtype == hu.dtype and (out[5] == -850).all()
    assert (out[:, :20] == hu[:, :20]).all()  # beyond the box and the filter's reach
    assert out[:, 45:55, 45:55].std() < 0.6 * hu[:, 45:55, 45:55].std()


def test_sharp_and_soft_reconstructions_read_the_same_opacity(monkeypatch):
    """One chest with faint ground glass (-640 HU) reconstructed twice: soft (noise 10 HU) and sharp (100 HU, fine
    grained); opacity within 1 point of each other, the sharp one measured on smoothed HU and saying so. Read from
    the sharp scan's own HU, the ground glass would lose a quarter of its voxels to the noise."""
    from lungtrial.imaging.quantify import analyse_volume

    shape = (16, 160, 200)
    lungs = np.zeros(shape, np.uint8)
    lungs[:, 20:140, 15:95] = 1
    lungs[:, 20:140, 105:185] = 2
    clean = np.where(lungs > 0, -860.0, 40.0)
    clean[:, 60:100, 30:70] = -640.0  # ground glass, 8 % of the lungs
    rng = np.random.default_rng(4)
    soft = np.rint(ndimage.gaussian_filter(clean, (0, 1.5, 1.5)) + rng.normal(0, 10.0, shape)).astype(np.int16)
    sharp = np.rint(clean + rng.normal(0, 100.0, shape)).astype(np.int16)
    a = analyse_volume(soft, SPACING, lungs=lungs, measure_implausible=True)  # (a slab: no trachea nor ribs)
    b = analyse_volume(sharp, SPACING, lungs=lungs, measure_implausible=True)
    assert not any("noisy aerated lung" in w for w in a["warnings"])
    assert any(w.startswith("noisy aerated lung (") and "smoothed in-plane" in w for w in b["warnings"])
    soft_pct, sharp_pct = a["scan"]["pct_opacity"], b["scan"]["pct_opacity"]
    assert abs(soft_pct - sharp_pct) <= 1.0, (soft_pct, sharp_pct)
    monkeypatch.setattr(noise, "smoothing_for", lambda *args, **kwargs: (0.0, float("nan"), float("nan")))
    raw_pct = analyse_volume(sharp, SPACING, lungs=lungs, measure_implausible=True)["scan"]["pct_opacity"]
    assert soft_pct - raw_pct > 1.5, (soft_pct, raw_pct)
