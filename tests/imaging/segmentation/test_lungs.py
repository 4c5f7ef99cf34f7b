"""Tests for lungtrial.imaging.segmentation.lungs.pick_lungs on small coarse grids: the lungs are the air regions
hanging from the airway, sided by the body's midline; without an airway, the largest pair. Whole chests:
test_pipeline.py and test_anatomy.py."""

from __future__ import annotations

import numpy as np
import pytest

from lungtrial.imaging.segmentation.lungs import LEFT, MIN_LUNG_ML, RIGHT, pick_lungs

CSP = (5.0, 5.0, 5.0)  # 0.125 mL per voxel
SHAPE = (20, 40, 60)


def box(z, y, x):
    m = np.zeros(SHAPE, bool)
    m[z, y, x] = True
    return m


BODY = box(slice(None), slice(2, 38), slice(5, 55))  # midline at x = 29.5
RIGHT_LUNG = box(slice(4, 16), slice(10, 30), slice(10, 25))  # 3600 voxels, 450 mL
LEFT_LUNG = box(slice(4, 16), slice(10, 30), slice(34, 48))
GAS = box(slice(17, 20), slice(5, 35), slice(8, 52))  # below the lungs, larger than either: bowel gas
TRACHEA = box(slice(0, 5), slice(18, 21), slice(28, 31))
BRONCHI = box(slice(4, 5), slice(18, 21), slice(20, 40))


def test_lungs_hang_from_the_airway_and_are_sided_by_the_midline():
    cand = (RIGHT_LUNG | LEFT_LUNG | GAS).astype(np.uint8)
    labels, anchored = pick_lungs(cand, BODY, TRACHEA | BRONCHI, CSP)
    assert anchored and labels.dtype == np.uint8
    assert (labels[RIGHT_LUNG] == RIGHT).all() and (labels[LEFT_LUNG] == LEFT).all()
    assert not labels[GAS].any()  # larger than a lung, but not on the airway
    assert RIGHT == 1 and LEFT == 2  # right lung at low x


def test_without_an_airway_the_largest_pair_is_taken():
    cand = (RIGHT_LUNG | LEFT_LUNG).astype(np.uint8)
    labels, anchored = pick_lungs(cand, BODY, np.zeros(SHAPE, bool), CSP)
    assert not anchored
    assert (labels[RIGHT_LUNG] == RIGHT).all() and (labels[LEFT_LUNG] == LEFT).all()


def test_no_air_region_large_enough_is_no_lung():
    with pytest.raises(ValueError, match="no air region"):
        pick_lungs(np.zeros(SHAPE, np.uint8), BODY, TRACHEA, CSP)
    small = box(slice(4, 8), slice(10, 14), slice(10, 14))  # 64 voxels, 8 mL
    assert 64 * 0.125 < MIN_LUNG_ML
    with pytest.raises(ValueError, match="smaller than 20 ml"):
        pick_lungs(small.astype(np.uint8), BODY, TRACHEA, CSP)
