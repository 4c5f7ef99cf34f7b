"""Consolidation grown beyond the lung's outline (step 6 of :mod:`lungtrial.imaging.segmentation`) under strong correlated image
noise on grids finer than the coarse one: the recess and paravertebral consolidation is kept, not only its part
near the outline, and the growth does not leak into the noisy wall.

The phantoms are the analytic chests of ``tests/test_segment.py`` (not the demo generator) with correlated noise of
35-40 HU (see ``tests/test_segment_noise.py``), in poses and noise draws that module does not use.
"""

from __future__ import annotations

import pytest
from scipy import ndimage

from lungtrial.imaging.segmentation import segment_lungs

from test_segment import dice, make_chest
from test_segment_noise import _correlated_noise

CASES = {
    # coarse voxels of 2 x 3 x 3 scan voxels (4 x 3.75 x 3.75 mm)
    "2mm-slices-40hu": dict(
        make=dict(spacing=(2.0, 1.25, 1.25), offset_x=-10.0, rotation_deg=-3.0, lung_gap=10.0),
        noise=(40.0, 1.5, 1),
    ),
    # coarse voxels of 3 x 2 x 2 scan voxels (3.75 x 3 x 3 mm)
    "1.25mm-slices-35hu-coarser-noise": dict(
        make=dict(spacing=(1.25, 1.5, 1.5), offset_x=15.0, rotation_deg=4.0),
        noise=(35.0, 2.0, 2),
    ),
}


@pytest.fixture(scope="module", params=sorted(CASES))
def case(request):
    case = CASES[request.param]
    c = make_chest(lesions=False, noise=0.0, sites=("recess", "paravertebral"), cons_hu=-30.0, **case["make"])
    c = _correlated_noise(c, *case["noise"])
    return c, segment_lungs(c.hu, c.spacing)


def test_grown_consolidation_kept_under_noise(case):
    c, seg = case
    kept = (seg > 0)[c.lesions].mean()
    assert kept >= 0.95, kept
    for label in (1, 2):  # 1: recess, 2: paravertebral
        site = c.lesions & (c.lungs == label)
        assert (seg > 0)[site].mean() >= 0.93, (label, (seg > 0)[site].mean())
        assert dice(seg == label, c.lungs == label) >= 0.99, label
        assert abs((seg == label).sum() / (c.lungs == label).sum() - 1.0) < 0.01, label


def test_kept_consolidation_does_not_leak(case):
    c, seg = case
    shell = ndimage.binary_dilation(c.lungs > 0, ndimage.generate_binary_structure(3, 1))
    beyond = (seg > 0) & ~shell & ~c.airway
    assert beyond.sum() <= 0.0125 * c.lesions.sum(), beyond.sum() / c.lesions.sum()
    assert not (seg > 0)[c.outside].any()


def test_clean_consolidation_kept_in_full():
    """Without noise the whole recess and paravertebral consolidation is grown (was 0.91 paravertebral)."""
    c = make_chest(
        spacing=(2.0, 1.25, 1.25),
        lesions=False,
        noise=0.0,
        sites=("recess", "paravertebral"),
        offset_x=-10.0,
        rotation_deg=-3.0,
        lung_gap=10.0,
    )
    seg = segment_lungs(c.hu, c.spacing)
    for label in (1, 2):
        site = c.lesions & (c.lungs == label)
        assert (seg > 0)[site].mean() >= 0.98, (label, (seg > 0)[site].mean())
