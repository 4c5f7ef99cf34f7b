"""Plausibility of the lungs found (lungtrial.imaging.plausibility.check_lungs) on small synthetic volumes.

The builders here are deliberately tiny (4 mm voxels, no blur) and independent of any segmentation: a chest with two
lungs, a rib cage with gaps, a spine and a trachea; a head with sinuses; an abdomen with bowel gas. Each implausible
case must give its own reason, with a figure and the expected range.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from lungtrial.imaging.plausibility import (
    MIN_LUNG_ML,
    TOTAL_LUNG_ML,
    TRACHEA_MIN_LENGTH_MM,
    check_lungs,
)

SPACING = (5.0, 4.0, 4.0)
SHAPE = (64, 96, 96)  # 320 x 384 x 384 mm


def _grid(shape=SHAPE, spacing=SPACING):
    """Patient coordinates (mm) of the voxel centres: x = 0 and y = 0 at the image centre, z = 0 at slice 0."""
    nz, ny, nx = shape
    dz, dy, dx = spacing
    z = (np.arange(nz) * dz)[:, None, None]
    y = ((np.arange(ny) - (ny - 1) / 2) * dy)[None, :, None]
    x = ((np.arange(nx) - (nx - 1) / 2) * dx)[None, None, :]
    return z, y, x


def _noise(hu, seed=0, sd=15.0):
    rng = np.random.default_rng(seed)
    return np.rint(hu + rng.normal(0, sd, hu.shape)).astype(np.int16)


def make_chest(*, lung_scale=1.0, trachea=True, ribs=True, seed=0):
    """A chest: torso of soft tissue with a fat layer, ribs (400 HU) in a ring with gaps beside the lungs, spine,
    two lungs (-850 HU, about 2 L each) either side of the midline, a trachea (air, 18 mm) from the lungs' upper
    third to the top slice. Returns (hu int16, lungs uint8)."""
    z, y, x = _grid()
    hu = np.full(SHAPE, -1000.0)
    torso = (x / 165) ** 2 + (y / 120) ** 2 <= 1
    hu[np.broadcast_to(torso, SHAPE)] = -100.0  # fat
    inner = (x / 150) ** 2 + (y / 105) ** 2 <= 1
    hu[np.broadcast_to(inner, SHAPE)] = 40.0
    zc = 150.0  # lungs' centre height (mm)
    lungs = np.zeros(SHAPE, np.uint8)
    for label, cx in ((1, -72.0), (2, 72.0)):
        a, b, c = 58 * lung_scale, 85 * lung_scale, 115 * lung_scale
        lung = ((x - cx) / a) ** 2 + ((y + 5) / b) ** 2 + ((z - zc) / c) ** 2 <= 1
        hu[lung] = -850.0
        lungs[lung] = label
    if ribs:  # a band just outside the lungs, cut by intercostal gaps that move around with z (oblique ribs)
        r = ((np.abs(x) - 72) / 72) ** 2 + ((y + 5) / 98) ** 2
        angle = np.arctan2(y, np.abs(x))
        band = (r > 1.0) & (r <= 1.25) & (np.abs(x) > 40) & (np.cos(3 * angle + z / 20.0) > -0.3)
        band &= (z > zc - 130) & (z < zc + 110)
        hu[band & (lungs == 0)] = 400.0
    spine = (x / 20) ** 2 + ((y - 95) / 20) ** 2 <= 1
    hu[np.broadcast_to(spine, SHAPE)] = 300.0
    if trachea:
        wall = (x**2 + (y + 20) ** 2 <= 12**2) & (z > zc + 20)
        lumen = (x**2 + (y + 20) ** 2 <= 9**2) & (z > zc + 20)
        hu[wall & (lungs == 0)] = 40.0
        hu[lumen & (lungs == 0)] = -1000.0
    return _noise(hu, seed), lungs


def make_head(seed=1):
    """A head: scalp, a closed skull (1200 HU, 7 mm), brain, and below it two maxillary sinuses of air either side
    of the nasal septum, labelled as lungs."""
    shape, spacing = (50, 64, 64), (4.0, 3.5, 3.5)
    z, y, x = _grid(shape, spacing)
    hu = np.full(shape, -1000.0)
    zc = 120.0
    outer = (x / 80) ** 2 + (y / 98) ** 2 + ((z - zc) / 105) ** 2 <= 1
    skull = (x / 75) ** 2 + (y / 93) ** 2 + ((z - zc) / 100) ** 2 <= 1
    brain = (x / 68) ** 2 + (y / 86) ** 2 + ((z - zc) / 93) ** 2 <= 1
    hu[outer] = 40.0
    hu[skull] = 1200.0
    hu[brain] = 35.0
    lungs = np.zeros(shape, np.uint8)
    for label, cx in ((1, -25.0), (2, 25.0)):
        sinus = ((x - cx) / 15) ** 2 + ((y + 45) / 18) ** 2 + ((z - 55) / 18) ** 2 <= 1
        hu[sinus] = -1000.0
        lungs[sinus] = label
    return _noise(hu, seed), lungs, spacing


def make_abdomen(seed=2):
    """An abdomen below the ribs: soft tissue, spine, no trachea, colon gas left and right, labelled as lungs."""
    z, y, x = _grid()
    hu = np.full(SHAPE, -1000.0)
    hu[np.broadcast_to((x / 165) ** 2 + (y / 120) ** 2 <= 1, SHAPE)] = -100.0
    hu[np.broadcast_to((x / 150) ** 2 + (y / 105) ** 2 <= 1, SHAPE)] = 45.0
    hu[np.broadcast_to((x / 20) ** 2 + ((y - 95) / 20) ** 2 <= 1, SHAPE)] = 300.0
    lungs = np.zeros(SHAPE, np.uint8)
    for label, cx in ((1, -95.0), (2, 95.0)):  # ascending and descending colon, gas-filled
        colon = ((x - cx) ** 2 + (y + 10) ** 2 <= 25**2) & (z > 40) & (z < 260)
        hu[colon] = -1000.0
        lungs[colon] = label
    return _noise(hu, seed), lungs


def test_normal_chest_is_plausible():
    hu, lungs = make_chest()
    assert check_lungs(hu, lungs, SPACING) == []
    assert check_lungs(hu.astype(np.float32), lungs, SPACING) == []  # float HU as well


def test_one_lung_only():
    hu, lungs = make_chest()
    lungs[lungs == 2] = 0  # the image still has the left lung: the segmentation lost it
    reasons = check_lungs(hu, lungs, SPACING)
    assert any(r.startswith("left lung missing") for r in reasons), reasons
    assert not any(r.startswith("right lung") for r in reasons), reasons


def test_tiny_lungs():
    hu, lungs = make_chest(lung_scale=0.45)
    reasons = check_lungs(hu, lungs, SPACING)
    for name in ("right", "left"):
        (reason,) = [r for r in reasons if r.startswith(f"{name} lung ") and "mL" in r]
        ml = float(reason.split()[2])
        assert 100 < ml < MIN_LUNG_ML and f"at least {MIN_LUNG_ML:.0f} mL" in reason
    (total,) = [r for r in reasons if r.startswith("lung volume")]
    assert f"expected {TOTAL_LUNG_ML[0] / 1000:.1f}-{TOTAL_LUNG_ML[1] / 1000:.0f} L" in total


def test_no_trachea():
    hu, lungs = make_chest(trachea=False)
    reasons = check_lungs(hu, lungs, SPACING)
    assert len(reasons) == 1 and reasons[0].startswith("no trachea"), reasons
    assert f"at least {TRACHEA_MIN_LENGTH_MM:.0f} mm" in reasons[0]


def test_a_scan_that_starts_below_the_trachea_says_so():
    """A lower chest (or an abdomen with the lung bases): the lungs run through the top slice, so the reason says
    that the scan's range, not the anatomy, leaves the trachea out; a chest without one does not say it."""
    hu, lungs = make_chest()
    z, _, _ = _grid()
    top = int(np.flatnonzero(z[:, 0, 0] < 160.0)[-1]) + 1  # just above the lungs' centre, below the trachea
    reasons = check_lungs(hu[:top], lungs[:top], SPACING)
    (trachea,) = [r for r in reasons if r.startswith("no trachea")]
    assert "its range starts below the trachea" in trachea
    (whole,) = check_lungs(*make_chest(trachea=False), SPACING)
    assert "range" not in whole


def test_small_lungs_that_the_range_cuts_say_so():
    """An upper chest or a neck (the lungs' apices alone): the lungs are small because the scan's range ends above
    their bases, and the reasons say so; small lungs of a whole chest do not."""
    hu, lungs = make_chest()
    z, _, _ = _grid()
    bottom = int(np.flatnonzero(z[:, 0, 0] < 230.0)[-1])  # the lungs' upper part only (0.4 L)
    reasons = check_lungs(hu[bottom:], lungs[bottom:], SPACING)
    small = [r for r in reasons if "mL;" in r or r.startswith("lung volume")]
    assert len(small) == 3 and all("run through the scan's most inferior slice" in r for r in small), reasons
    assert not any("most superior" in r for r in reasons)
    whole = check_lungs(*make_chest(lung_scale=0.45), SPACING)
    assert not any("range" in r for r in whole)


def test_trachea_labelled_as_lung_is_no_trachea_outside_the_lungs():
    hu, lungs = make_chest()
    _, _, x = _grid()
    lungs[(hu < -900) & np.broadcast_to(np.abs(x) < 30, SHAPE) & (lungs == 0)] = 1
    assert any(r.startswith("no trachea") for r in check_lungs(hu, lungs, SPACING))


def test_no_ribs():
    hu, lungs = make_chest(ribs=False)
    reasons = check_lungs(hu, lungs, SPACING)
    assert len(reasons) == 2, reasons
    assert {r.split(":")[0] for r in reasons} == {f"no rib cage beside the {side} lung" for side in ("right", "left")}
    assert "in 0 of " in reasons[0]


def test_swapped_sides():
    hu, lungs = make_chest()
    swapped = np.where(lungs > 0, 3 - lungs, 0).astype(np.uint8)
    reasons = check_lungs(hu, swapped, SPACING)
    assert any(r.startswith("right lung's centre +") for r in reasons), reasons
    assert any(r.startswith("left lung's centre -") for r in reasons), reasons


def test_soft_tissue_labelled_as_lung():
    hu, lungs = make_chest()
    _, y, x = _grid()
    dense = np.broadcast_to((x / 150) ** 2 + (y / 105) ** 2 <= 1, SHAPE) & (hu > -500)  # the whole trunk
    lungs[dense & np.broadcast_to(x < 0, SHAPE)] = 1
    lungs[dense & np.broadcast_to(x >= 0, SHAPE)] = 2
    reasons = check_lungs(hu, lungs, SPACING)
    assert any(r.startswith("lungs ") and "aerated" in r for r in reasons), reasons


def test_head_with_air():
    hu, lungs, spacing = make_head()
    reasons = check_lungs(hu, lungs, spacing)
    assert any(r.startswith("a skull: a closed ring of dense bone") for r in reasons), reasons
    assert any(r.startswith("no trachea") for r in reasons)


def test_abdomen_gas_labelled_as_lungs():
    hu, lungs = make_abdomen()
    reasons = check_lungs(hu, lungs, SPACING)
    assert any(r.startswith("no rib cage beside the right lung") for r in reasons), reasons
    assert any(r.startswith("no rib cage beside the left lung") for r in reasons)
    assert any(r.startswith("no trachea") for r in reasons)
    assert not any(r.startswith("a skull") for r in reasons)


def test_nothing_labelled():
    hu, lungs = make_chest()
    reasons = check_lungs(hu, np.zeros_like(lungs), SPACING)
    assert [r.split(":")[0] for r in reasons] == ["right lung missing", "left lung missing"]


def test_bad_input():
    hu, lungs = make_chest()
    with pytest.raises(ValueError, match="one shape"):
        check_lungs(hu, lungs[1:], SPACING)
    with pytest.raises(ValueError, match="spacing"):
        check_lungs(hu, lungs, (5.0, 0.0, 4.0))


def test_demo_generator_chest_with_large_lungs_is_plausible():
    """The demo trial's phantom (here a narrow body whose lungs fill the chest wall's cavity) stays plausible."""
    from lungtrial.demo.phantom import Lesions, PhantomParams
    from lungtrial.demo.phantom import make_chest as demo_chest

    params = PhantomParams(body_width_mm=287, body_depth_mm=213, lung_width_mm=240, lung_depth_mm=168,
                           lung_height_mm=216, noise_hu=20.0)
    hu, truth = demo_chest(params, (5.0, 3.0, 3.0), extent_mm=(270.0, 400.0, 400.0), lesions=Lesions(10.0, 2.0))
    assert check_lungs(hu, truth.lungs, truth.spacing) == []


# the shared phantoms of tests/phantoms.py (real CT's variations), when they are there
def _phantoms():
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    try:
        import phantoms
    except ImportError:
        return None
    return phantoms


@pytest.mark.parametrize(
    "options",
    [{}, {"table": "curved", "back_air_ml": 300.0}, {"sharp": True}, {"arms": True}, {"fov_cut_mm": 30.0},
     {"contrast": True, "lesions": ("recess", "lateral", "mediastinal")}, {"slice_mm": 5.0}],
    ids=lambda o: ",".join(o) or "default",
)
def test_shared_chest_phantoms_are_plausible(options):
    phantoms = _phantoms()
    if phantoms is None or not hasattr(phantoms, "make_chest"):
        pytest.skip("tests/phantoms.py has no make_chest")
    p = phantoms.make_chest(**options)
    assert check_lungs(p.hu, p.lungs, p.spacing) == []


@pytest.mark.parametrize("builder", ["make_abdomen", "make_head", "make_head_air"])
def test_shared_phantoms_gas_labelled_as_lungs(builder):
    from scipy import ndimage

    phantoms = _phantoms()
    name = builder.removesuffix("_air")
    if phantoms is None or not hasattr(phantoms, name):
        pytest.skip(f"tests/phantoms.py has no {name}")
    p = getattr(phantoms, name)(**({"air_phantom": True} if builder.endswith("_air") else {}))
    body = ndimage.binary_fill_holes(p.hu > -500, structure=np.ones((1, 3, 3)))
    air = (p.hu < -500) & body  # every air pocket in the body, split at the image's midline
    right = np.broadcast_to(np.arange(p.hu.shape[2]) < p.hu.shape[2] / 2, p.hu.shape)
    lungs = np.where(air, np.where(right, 1, 2), 0).astype(np.uint8)
    reasons = check_lungs(p.hu, lungs, p.spacing)
    assert any(r.startswith("no trachea") for r in reasons), reasons
    if name == "make_head":
        assert any(r.startswith("a skull") for r in reasons), reasons
    else:
        assert any(r.startswith(("lung volume", "no rib cage")) for r in reasons), reasons
