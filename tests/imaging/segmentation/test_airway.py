"""Trachea and main bronchi (:mod:`lungtrial.imaging.segmentation.airway`) are never lung: the main bronchi are
followed below where they merge with the lung in the axial plane (thick slices, the coarse grid), and past a carina
that the coarse grid narrows to a pixel. Chests built here or from ``tests/simple_chest.py``, with geometry and
densities the demo generator does not use (other carina heights and bronchus courses, thick and anisotropic grids,
dark lungs).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from lungtrial.imaging.segmentation import segment_lungs
from lungtrial.imaging.segmentation.airway import _bronchus_ends
from simple_chest import dice, tube


def _coarse_case(lung_hu: float = -850.0):
    """Coarse grid (5 x 3 x 3 mm): a trachea down to slice 30, main bronchi that run laterally into the lungs."""
    shape, cspacing = (40, 60, 80), np.array([5.0, 3.0, 3.0])
    coarse = np.full(shape, 40.0)
    coarse[:30, 10:50, 4:37] = lung_hu  # right lung (low x), its medial edge next to the trachea
    coarse[:30, 10:50, 43:77] = lung_hu  # left lung
    coarse[30:, 20:25, 38:43] = -1000.0  # trachea, 5 x 5 pixels
    bronchi = np.zeros(shape, dtype=bool)
    for k, z in enumerate(range(29, 17, -1)):  # 3 x 4 pixels, one pixel sideways per slice: in the lungs at once
        bronchi[z, 21:24, 35 - k : 39 - k] = True
        bronchi[z, 21:24, 42 + k : 46 + k] = True
    coarse[bronchi] = -1000.0
    inner = coarse < -500.0
    airway = np.zeros(shape, dtype=bool)
    airway[30:, 20:25, 38:43] = True  # what _airways follows: the trachea only (the bronchi merge at once)
    return coarse, inner, airway, bronchi, cspacing


def test_bronchus_followed_into_the_lung_down_to_25_mm_below_the_carina():
    coarse, inner, airway, bronchi, cspacing = _coarse_case()
    ends = _bronchus_ends(airway, inner, coarse, cspacing)
    assert not (ends & airway).any()
    # the carina lies in slice 29 (below the trachea's last slice, 30): slices 29..24 are within 25 mm of it
    assert ends[24:30][bronchi[24:30]].all()
    assert not ends[:24].any()  # never beyond: the intrapulmonary bronchi belong to the lung
    # the lung is never taken wholesale: only the lumen and the ring next to both the lumen and the wall
    near = ndimage.binary_dilation(bronchi, np.array([[[0, 1, 0], [1, 1, 1], [0, 1, 0]]], dtype=bool))
    assert not (ends & ~near).any()
    lungs = coarse == -850.0
    assert (ends & lungs).sum() <= 0.5 * (ends & bronchi).sum()


def test_bronchus_ends_need_contrast_between_lumen_and_lung():
    """Lungs almost as dark as the lumen (emphysema): the lumen cannot be told from the lung; nothing is cut."""
    coarse, inner, airway, _, cspacing = _coarse_case(lung_hu=-975.0)
    assert not _bronchus_ends(airway, inner, coarse, cspacing).any()


def _chest(spacing, carina_z, drop_mm, lung_hu, seed):
    """Chest with lungs that reach the mediastinum right beside the trachea: the main bronchi (lumen radius 6 mm,
    2 mm wall) leave the carina at ``carina_z`` and reach the hilum ``drop_mm`` lower, inside the lungs; lobar
    bronchi (radius 3.5 mm) go on inside the lungs. Truth: the lungs without trachea and main bronchi."""
    rng = np.random.default_rng(seed)
    dz, dy, dx = spacing
    shape = (int(260 / dz), int(240 / dy), int(340 / dx))
    z = np.arange(shape[0]) * dz
    y = np.arange(shape[1]) * dy - 120.0
    x = np.arange(shape[2]) * dx - 170.0
    zz, yy, xx = np.meshgrid(z, y, x, indexing="ij")
    y2, x2 = np.meshgrid(y, x, indexing="ij")
    hu = np.full(shape, -1000.0, dtype=np.float32)
    body = (xx / 150.0) ** 2 + (yy / 100.0) ** 2 <= 1.0
    hu[body] = 40.0
    lungs = np.zeros(shape, dtype=np.uint8)
    for label, sign in ((1, -1.0), (2, 1.0)):
        cx = sign * 68.0  # medial edges 8 mm from the midline: the bronchi enter the lungs at once
        inside = ((xx - cx) / 60.0) ** 2 + ((yy + 5.0) / 72.0) ** 2 + ((zz - 140.0) / 100.0) ** 2 <= 1.0
        lungs[inside & (zz > 60.0) & (lungs == 0)] = label
    hu[lungs > 0] = lung_hu
    carina = (0.0, -10.0, carina_z)
    trachea = tube(x2, y2, z, (0.0, -10.0, 260.0), carina, 8.0)
    hila = [(sign * 30.0, -5.0, carina_z - drop_mm) for sign in (-1.0, 1.0)]
    main = trachea.copy()
    lumen = trachea.copy()
    for hilum in hila:
        main |= tube(x2, y2, z, carina, hilum, 8.0)  # lumen and wall
        lumen |= tube(x2, y2, z, carina, hilum, 6.0)
    hu[main & body] = 40.0
    hu[lumen] = -1000.0
    for hilum in hila:  # lobar bronchi, inside the lungs (lung in the truth)
        sign = np.sign(hilum[0])
        for end in ((sign * 70.0, -20.0, hilum[2] + 20.0), (sign * 65.0, 10.0, hilum[2] - 50.0)):
            lobar = tube(x2, y2, z, hilum, end, 3.5) & (lungs > 0) & ~main
            hu[lobar] = -1000.0
    lungs[main] = 0
    sig = (0.42, 0.8 / dy, 0.8 / dx)  # voxels: a slice profile about one slice wide, in-plane blur
    hu = ndimage.gaussian_filter(hu, sig) + rng.normal(0.0, 15.0, shape)
    bronchi = main & ~trachea & (zz < carina_z)  # main bronchi below the carina
    return np.round(hu).astype(np.int16), lungs, bronchi, lumen & ~trachea, hila


@pytest.mark.parametrize(
    "spacing, carina_z, drop_mm, lung_hu",
    [
        ((5.0, 2.0, 2.0), 170.0, 22.0, -860.0),  # 2 x 2 pixels per coarse voxel in the plane
        ((5.0, 2.6, 2.6), 178.0, 20.0, -850.0),  # the coarse grid is the scan's own
        ((2.5, 3.0, 3.0), 166.0, 22.0, -870.0),  # thinner slices, coarse pixels
    ],
)
def test_main_bronchi_excluded_on_thick_slices(spacing, carina_z, drop_mm, lung_hu):
    hu, truth, bronchi, lumen, hila = _chest(spacing, carina_z, drop_mm, lung_hu, seed=int(carina_z))
    seg = segment_lungs(hu, spacing)
    # the main bronchi's lumen below the carina is not lung (at most a fifth of it is let in)
    in_lung = ((seg > 0) & lumen & bronchi).sum()
    assert in_lung <= 0.2 * (lumen & bronchi).sum(), in_lung / (lumen & bronchi).sum()
    for label in (1, 2):
        assert dice(seg == label, truth == label) >= 0.97
        assert abs((seg == label).sum() / (truth == label).sum() - 1.0) < 0.02
    # below the hilum the lung (with its lobar bronchi) is kept
    zc = np.arange(hu.shape[0]) * spacing[0]
    deep = (truth > 0) & (zc[:, None, None] < min(h[2] for h in hila) - 10.0)
    assert (seg > 0)[deep].mean() > 0.99


def test_airway_followed_past_a_narrow_carina():
    """On the coarse grid the carina's spur and the bronchial walls can narrow each main bronchus to a pixel or two
    for one slice; the main bronchi below are still airway (not lung), the lungs are not."""
    from lungtrial.imaging.segmentation.airway import _airways

    shape, cspacing = (40, 60, 80), np.array([4.0, 3.5, 3.5])
    inner = np.zeros(shape, dtype=bool)
    body = np.ones(shape, dtype=bool)
    inner[:31, 10:50, 4:28] = True  # right lung (low x)
    inner[:31, 10:50, 53:77] = True  # left lung
    inner[25:, 20:25, 38:43] = True  # trachea, 5 x 5 pixels (306 mm^2)
    inner[24, 22, 38] = inner[24, 22, 42] = True  # the carina: one pixel (12 mm^2) per bronchus
    bronchi = np.zeros(shape, dtype=bool)
    for k, z in enumerate(range(23, 17, -1)):  # main bronchi, 3 x 4 pixels (147 mm^2), running laterally
        bronchi[z, 21:24, 35 - k : 39 - k] = True
        bronchi[z, 21:24, 42 + k : 46 + k] = True
    bronchi &= ~inner  # never touching a lung in their plane (x 30..50)
    inner |= bronchi
    airway = _airways(inner, body, cspacing)
    assert airway[25:34, 20:25, 38:43].all()  # the trachea (followed caudally from the most superior 10 mm)
    assert airway[bronchi].all()
    lungs = np.zeros(shape, dtype=bool)
    lungs[:31, 10:50, 4:28] = lungs[:31, 10:50, 53:77] = True
    assert not (airway & lungs).any()


def test_trachea_found_below_a_larynx_that_thick_slices_close():
    """The scan starts at the larynx: a wide medial air space in the top slice, then vocal cords that close the
    lumen on a 5 mm slice, then the trachea. The short air column on top is not the trachea; the trachea below is
    (and the lungs hang from it)."""
    from lungtrial.imaging.segmentation.airway import TRACHEA_MIN_LENGTH_MM, _airways

    shape, cspacing = (40, 60, 80), np.array([5.0, 3.5, 3.5])
    inner = np.zeros(shape, dtype=bool)
    body = np.ones(shape, dtype=bool)
    inner[:31, 10:50, 4:28] = True  # right lung (low x)
    inner[:31, 10:50, 53:77] = True  # left lung
    inner[39, 18:26, 36:45] = True  # the larynx above the vocal cords: 8 x 9 pixels (882 mm^2), one slice
    # slice 38: the closed glottis, no air
    inner[25:38, 20:25, 38:43] = True  # the trachea, 5 x 5 pixels (306 mm^2), 65 mm long
    airway = _airways(inner, body, cspacing)
    assert airway[25:35, 20:25, 38:43].all()  # followed caudally from the most superior 10 mm of the trachea
    assert not airway[39].any()
    assert (13 * 5.0) >= TRACHEA_MIN_LENGTH_MM
    lungs = np.zeros(shape, dtype=bool)
    lungs[:31, 10:50, 4:28] = lungs[:31, 10:50, 53:77] = True
    assert not (airway & lungs).any()
    # a medial air column as short as the larynx alone, and nothing below: it is still taken (the lungs' check
    # that a trachea was seen is the plausibility's, not this one's)
    short = np.zeros(shape, dtype=bool)
    short[39, 18:26, 36:45] = True
    assert _airways(short, body, cspacing)[39, 18:26, 36:45].all()


def test_trachea_found_below_the_nasal_cavity_of_a_scan_that_starts_at_the_head():
    """A head-and-neck scan running down into the chest: the topmost medial air column (the nasal cavity and the
    pharynx, 40 mm long) ends far above the lungs; the trachea below it, which reaches them, is the airway."""
    from lungtrial.imaging.segmentation.airway import _airways

    shape, cspacing = (60, 60, 80), np.array([4.0, 3.5, 3.5])
    inner = np.zeros(shape, dtype=bool)
    body = np.ones(shape, dtype=bool)
    inner[:31, 10:50, 4:28] = True  # right lung (low x), top at slice 30
    inner[:31, 10:50, 53:77] = True  # left lung
    inner[50:60, 18:24, 36:44] = True  # nasal cavity and pharynx: 6 x 8 pixels (588 mm^2), 40 mm long
    # slices 45-49: the larynx closed on the coarse grid
    inner[25:45, 20:25, 38:43] = True  # the trachea, down between the lungs
    airway = _airways(inner, body, cspacing)
    assert airway[25:42, 20:25, 38:43].all()
    assert not airway[50:].any()
    lungs = np.zeros(shape, dtype=bool)
    lungs[:31, 10:50, 4:28] = lungs[:31, 10:50, 53:77] = True
    assert not (airway & lungs).any()
