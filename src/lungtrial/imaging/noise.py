"""The noise of a CT volume's aerated lung, and the in-plane smoothing that brings a sharp-kernel reconstruction's
noise down to a soft kernel's before opacity is measured.

Sharp ("lung") reconstruction kernels (Philips L, Siemens B60f-B70f, GE LUNG) add noise and edge overshoot to the
same acquisition. Opacity and aeration are read voxel by voxel from HU thresholds, so that noise moves faint ground
glass (about -650 HU) below -700 HU and normal lung below -900 HU: on one acquisition of the public Lung-PET-CT-Dx
collection reconstructed twice (Philips, 5 mm, kernels L and B), the lungs read 0.93 against 1.96 % opacity and
34 against 8 % hyperinflation. Soft and standard kernels at routine dose measure 9-19 HU of noise in aerated lung
(Philips B, Siemens B40f, GE STANDARD of LIDC-IDRI, the demo's scans), sharp ones 30-45 HU on 5-8 mm slices and more
on thin ones. A scan noisier than :data:`NOISE_CEILING_HU` is measured on HU smoothed in-plane by the smallest
Gaussian that brings its noise down to that ceiling; the segmentation itself does not need it (it gives the same
lungs on both kernels).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

#: HU. Noise in aerated lung above which opacity is measured on smoothed HU, and the level the smoothing brings it
#: to: above every soft or standard kernel at routine dose (9-19 HU), below sharp kernels (30 HU and more).
NOISE_CEILING_HU = 20.0
#: mm. The largest in-plane Gaussian sigma used: a soft kernel's point spread is about this much wider than a sharp
#: one's; more would blur small lesions and vessels into ground glass.
MAX_SMOOTHING_MM = 1.5
#: mm. Precision to which the smoothing is chosen.
SMOOTHING_TOLERANCE_MM = 0.05
#: HU. Aerated lung: the range where neighbouring voxels' differences are noise (vessels and walls are denser).
AERATED_RANGE_HU = (-1000.0, -700.0)
#: Slices on which the noise is measured (evenly spaced through the lungs; each holds some 10^5 pairs of aerated
#: voxels, so the median is stable).
SAMPLE_SLICES = 12


def lung_noise_hu(hu: np.ndarray, lungs: np.ndarray) -> float:
    """Noise of aerated lung (HU): a robust standard deviation of the differences between neighbouring voxels along
    x, where both lie in the lungs (two voxels in from their edge in the slice) and read as aerated lung
    (:data:`AERATED_RANGE_HU`), divided by sqrt(2). NaN when there are fewer than 100 such pairs.

    Parameters
    ----------
    hu : (z, y, x) array
        CT volume (or slices of it) in HU.
    lungs : (z, y, x) array
        Lung mask or labels (non-zero is lung), the same shape.
    """
    lo, hi = AERATED_RANGE_HU
    inside = np.asarray(lungs) > 0
    core = inside.copy()  # two voxels in from the lungs' edge in the slice
    for step in (1, 2):
        core[:, step:] &= inside[:, :-step]
        core[:, :-step] &= inside[:, step:]
        core[:, :, step:] &= inside[:, :, :-step]
        core[:, :, :-step] &= inside[:, :, step:]
    a, b = hu[:, :, 1:], hu[:, :, :-1]
    pair = core[:, :, 1:] & core[:, :, :-1] & (a > lo) & (a < hi) & (b > lo) & (b < hi)
    d = a[pair].astype(np.float32) - b[pair].astype(np.float32)
    if d.size < 100:
        return float("nan")
    return float(1.4826 * np.median(np.abs(d - np.median(d))) / np.sqrt(2.0))


def smooth_in_plane(hu: np.ndarray, spacing, sigma_mm: float, within: np.ndarray | None = None) -> np.ndarray:
    """``hu`` smoothed in each slice by a Gaussian of ``sigma_mm`` (mm), rounded to the input's integer type (a new
    array; slices are not mixed). With ``within`` (a mask or labels of ``hu``'s shape, non-zero inside), only its
    bounding box is smoothed (with the filter's reach around it) and the rest is copied. Slices are smoothed a slab
    at a time, two slabs at once when two threads are allowed: beside the output, only the slabs' float copies are
    held."""
    sp = np.asarray(spacing, float)
    sigma = (0.0, sigma_mm / sp[1], sigma_mm / sp[2])
    out = hu.copy()
    z0, z1, rows, cols = 0, hu.shape[0], slice(None), slice(None)
    if within is not None:
        zs = np.flatnonzero(np.any(within, axis=(1, 2)))
        if not zs.size:
            return out
        z0, z1 = int(zs[0]), int(zs[-1]) + 1
        plane = np.any(within[z0:z1], axis=0)
        ys, xs = np.flatnonzero(plane.any(axis=1)), np.flatnonzero(plane.any(axis=0))
        ry, rx = (int(np.ceil(4.0 * s)) + 1 for s in sigma[1:])
        rows = slice(max(0, int(ys[0]) - ry), int(ys[-1]) + 1 + ry)
        cols = slice(max(0, int(xs[0]) - rx), int(xs[-1]) + 1 + rx)
    integer = np.issubdtype(hu.dtype, np.integer)
    lo, hi = (np.iinfo(hu.dtype).min, np.iinfo(hu.dtype).max) if integer else (None, None)
    from lungtrial.parallel import in_halves

    starts = range(z0, z1, _SLAB)

    def work(items: range) -> None:
        for k in items:
            slab = (slice(starts[k], min(starts[k] + _SLAB, z1)), rows, cols)
            smooth = ndimage.gaussian_filter(hu[slab].astype(np.float32), sigma, mode="nearest")
            if integer:
                np.clip(np.rint(smooth, out=smooth), lo, hi, out=smooth)
            out[slab] = smooth

    in_halves(work, len(starts), min_items=2)
    return out


#: Slices smoothed at a time by :func:`smooth_in_plane` (bounds its float copy).
_SLAB = 16


def smoothing_for(
    hu: np.ndarray, lungs: np.ndarray, spacing, ceiling: float = NOISE_CEILING_HU
) -> tuple[float, float, float]:
    """The in-plane Gaussian sigma (mm) that brings the aerated lung's noise down to ``ceiling`` HU (0 when it is
    not above it), that noise before smoothing and after (HU; NaN without enough aerated lung).

    Measured on up to :data:`SAMPLE_SLICES` slices through the lungs, cropped to their bounding box; the sigma is
    found by bisection to :data:`SMOOTHING_TOLERANCE_MM` and is at most :data:`MAX_SMOOTHING_MM` (the noise left may
    then stay above ``ceiling``). The noise is :func:`lung_noise_hu`: from neighbouring voxels' differences, it
    reads below the voxels' standard deviation where the noise is correlated between neighbours (soft kernels).
    """
    lungs = np.asarray(lungs)
    zs = np.flatnonzero(lungs.reshape(lungs.shape[0], -1).any(axis=1))
    if not zs.size:
        return 0.0, float("nan"), float("nan")
    pick = zs[np.unique(np.linspace(0, zs.size - 1, min(SAMPLE_SLICES, zs.size)).round().astype(int))]
    footprint = lungs[pick].any(axis=0)
    ys, xs = np.flatnonzero(footprint.any(axis=1)), np.flatnonzero(footprint.any(axis=0))
    sp = np.asarray(spacing, float)
    pad = [int(np.ceil(4 * MAX_SMOOTHING_MM / s)) for s in sp[1:]]
    rows = slice(max(0, ys[0] - pad[0]), ys[-1] + 1 + pad[0])
    cols = slice(max(0, xs[0] - pad[1]), xs[-1] + 1 + pad[1])
    sample, mask = hu[pick, rows, cols], lungs[pick, rows, cols]
    before = lung_noise_hu(sample, mask)
    if not np.isfinite(before) or before <= ceiling:
        return 0.0, before, before
    low, high = 0.0, MAX_SMOOTHING_MM
    left = lung_noise_hu(smooth_in_plane(sample, spacing, high), mask)
    if left > ceiling:
        return high, before, left
    while high - low > SMOOTHING_TOLERANCE_MM:
        mid = 0.5 * (low + high)
        at_mid = lung_noise_hu(smooth_in_plane(sample, spacing, mid), mask)
        if at_mid > ceiling:
            low = mid
        else:
            high, left = mid, at_mid
    return round(high, 2), before, left


def measured_hu(hu: np.ndarray, lungs: np.ndarray, spacing) -> tuple[np.ndarray, float, float, float]:
    """The HU opacity is read from: ``hu`` itself, or smoothed in-plane (within ``lungs``) by :func:`smoothing_for`'s
    sigma when the aerated lung is noisier than :data:`NOISE_CEILING_HU`. Returns ``(hu, sigma_mm, noise_before,
    noise_after)`` as :func:`smoothing_for` (sigma 0: ``hu`` unchanged)."""
    sigma_mm, before, after = smoothing_for(hu, lungs, spacing)
    if sigma_mm > 0:
        hu = smooth_in_plane(hu, spacing, sigma_mm, lungs)
    return hu, sigma_mm, before, after
