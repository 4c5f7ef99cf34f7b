"""The lung boundary at full resolution (:mod:`lungtrial.imaging.segmentation.refine`) where ground glass lies
against the chest wall (the commonest place of COVID-19 ground glass): the lung keeps it up to the pleura, and the
opacity counts it, edge included (the blob test of :mod:`lungtrial.imaging.segmentation.vessels` judges a block cut
by the pleura by its lung voxels, so the band is not excluded as the pleural rim). The edge of grown consolidation
(``refine._grown_edge``) is tested with the consolidation, in ``test_consolidation.py``."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from lungtrial.imaging.quantify import analyse_volume
from phantoms import make_chest


def _subpleural_ground_glass(level_hu: float = -575.0, depth_mm: float = 8.0, **kw):
    """A lesion-free chest with a band of ground glass (``level_hu``) lining the left lateral wall, ``depth_mm``
    deep, over the middle third of the lung's height: lung HU raised additively (vessels stay brighter), the
    band's edge blurred like the phantom's own PSF, the partial-volume layer of the pleura included. Keywords go to
    :func:`make_chest`."""
    ph = make_chest(table="flat", **kw)
    sp = np.asarray(ph.spacing)
    left = ph.lungs == 2
    depth = ndimage.distance_transform_edt(left, sampling=sp)
    zs = np.flatnonzero(left.any(axis=(1, 2)))
    lo, hi = zs[0] + (zs[-1] - zs[0]) // 3, zs[0] + 2 * (zs[-1] - zs[0]) // 3
    z = np.arange(ph.hu.shape[0])[:, None, None]
    x_mid = np.flatnonzero(left.any(axis=(0, 1))).mean()
    lateral = np.arange(ph.hu.shape[2])[None, None, :] > x_mid
    band = left & (depth <= depth_mm) & (z >= lo) & (z <= hi) & lateral
    w = ndimage.gaussian_filter(band.astype(np.float32), 1.2 / sp)
    w[~left] = 0.0
    lung_hu = float(np.median(ph.hu[left & (depth > 10.0) & (ph.hu < -700)]))
    hu = np.rint(ph.hu + w * (level_hu - lung_hu)).astype(np.int16)
    return ph, hu, band


def test_ground_glass_against_the_wall_is_kept_and_counted():
    """1.25 mm pixels: the pleura's partial-volume layer is a sizeable part of an 8 mm band."""
    ph, hu, band = _subpleural_ground_glass(pixel_mm=1.25, n_xy=320)
    res = analyse_volume(hu, ph.spacing)
    lungs = res["lungs"] > 0
    kept = np.count_nonzero(band & lungs) / np.count_nonzero(band)
    opacity = np.isin(res["labels"], (1, 2))
    counted = np.count_nonzero(band & opacity) / np.count_nonzero(band)
    assert kept >= 0.92, f"only {kept:.1%} of the subpleural ground glass inside the lungs"
    assert counted >= 0.85, f"only {counted:.1%} of the subpleural ground glass counted as opacity"
