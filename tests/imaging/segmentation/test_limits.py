"""The anatomical limits of what the repair may add (:mod:`lungtrial.imaging.segmentation.limits`), on small coarse
grids drawn here: the diaphragm floor, and what is held back below it."""

from __future__ import annotations

import numpy as np
import pytest

from lungtrial.imaging.segmentation.limits import (
    DIAPHRAGM_MARGIN_MM,
    diaphragm_floor,
    limit_additions,
    viscus_pieces,
)

SPACING = (4.0, 4.0, 4.0)  # mm, about the coarse grid's voxel
SHAPE = (20, 30, 30)
BASE = 10  # lowest slice of the aerated lung
POCKET = (slice(3, 9), slice(8, 22), slice(8, 22))  # an addition under the lung's base


def _lung_over(under_hu: np.ndarray | float):
    """Coarse HU and labels: aerated right lung (label 1) from slice BASE up, ``under_hu`` below it; the repair
    added POCKET (below the floor) to the lung."""
    coarse = np.full(SHAPE, -850.0, np.float32)
    coarse[:BASE] = under_hu if np.ndim(under_hu) == 0 else under_hu[:BASE]
    picked = np.zeros(SHAPE, np.uint8)
    picked[BASE:, 4:26, 4:26] = 1
    coarse[BASE:][:, ~picked[BASE].astype(bool)] = 40.0  # the wall around the lung
    repaired = picked.copy()
    repaired[POCKET] = 1
    return coarse, picked, repaired


def _kept(coarse, picked, repaired) -> float:
    aerated = np.where(coarse < -500, picked, 0).astype(np.uint8)
    out, beyond = limit_additions(repaired, picked, aerated, coarse, SPACING, cage=np.ones(SHAPE, bool))
    assert (out[picked > 0] == picked[picked > 0]).all()  # what the lung picked itself is never taken away
    assert not (beyond & (picked > 0)).any()
    return float((out[POCKET] > 0).mean())


def test_floor_follows_the_lung_base_and_drops_bumps():
    aerated = np.zeros((30, 40, 40), bool)
    z0 = np.full((40, 40), 8)
    z0[18:21, 18:21] = 14  # a bump 12 mm wide: consolidation lying on the diaphragm
    for y in range(40):
        for x in range(40):
            aerated[z0[y, x] :, y, x] = True
    aerated[:, :, :12] = False
    floor = diaphragm_floor(aerated, SPACING)
    margin = DIAPHRAGM_MARGIN_MM / SPACING[0]
    assert np.isinf(floor[:, :12]).all()  # columns outside the lung's footprint have no floor
    assert np.allclose(floor[:, 12:], 8 - margin)  # the bump is opened away, the base kept


@pytest.mark.parametrize(
    "name, under, kept",
    [
        ("liver", 55.0, False),  # as dense as water or denser: organs under the diaphragm
        ("fat", -100.0, False),  # as light as fat: the fat under the diaphragm
        ("partly aerated", -45.0, True),  # between fat and water: partly aerated lung
    ],
)
def test_below_the_floor_only_partly_aerated_tissue_is_added(name, under, kept):
    share = _kept(*_lung_over(under))
    assert (share > 0.9) if kept else (share == 0.0), (name, share)


def test_fat_holding_a_thin_wall_is_not_partly_aerated():
    """Fat crossed by a thin wall (bowel, stomach, a vessel: one coarse voxel of +60 HU every third plane) averages
    to between fat and water next to the wall, but most of the voxels around it are fat: none of it is added."""
    under = np.full(SHAPE, -100.0, np.float32)
    under[:, :, 9::3] = 60.0
    around = np.mean([-100.0] * 18 + [60.0] * 9)
    assert -80.0 < around < -10.0  # the mean of the 3 x 3 x 3 voxels around a wall voxel reads as partly aerated
    assert _kept(*_lung_over(under)) == 0.0


def test_gas_that_is_not_lung_holds_back_partly_aerated_tissue():
    """The partial volume of the stomach's or the bowel's gas and fluid is not partly aerated lung."""
    coarse, picked, repaired = _lung_over(-45.0)
    coarse[5, 14:16, 14:16] = -950.0  # gas in the pocket, not picked as lung
    aerated = np.where(coarse < -500, picked, 0).astype(np.uint8)
    out, _ = limit_additions(repaired, picked, aerated, coarse, SPACING, cage=np.ones(SHAPE, bool))
    assert not out[4:7, 13:17, 13:17].any()


def test_a_viscus_under_the_dome_that_reaches_gas_is_left_out_whole():
    """Consolidation continued by its density that reaches the gas of a viscus and lies below the diaphragm floor
    (the colon's wall and content under a dome) is left out whole; a piece that lies mostly above the floor (a
    recess filled with consolidation, the lung's own base running into it), that reaches no gas or only a single
    air voxel (smaller than a viscus's gas) is kept."""
    aerated = np.zeros(SHAPE, np.uint8)
    aerated[BASE:, 4:26, 4:26] = 1
    sides = aerated.copy()
    continued = np.zeros(SHAPE, bool)
    continued[3:9, 8:14, 8:14] = True  # under the dome: all of it below the floor
    continued[6:16, 18:24, 18:24] = True  # a recess's consolidation: most of it above the floor
    continued[3:9, 8:14, 20:22] = True  # under the dome, but away from any gas
    sides[continued] = 1
    gas = np.zeros(SHAPE, bool)
    gas[1:3, 6:8, 6:8] = True  # the colon's gas (8 voxels of 64 mm3: 0.5 ml) touches the first piece's corner
    gas[2:6, 20:26, 24:28] = True  # gas beside the recess's lowest part
    tiny = np.zeros(SHAPE, bool)
    tiny[2, 7, 7] = True  # one air voxel: no viscus
    assert not viscus_pieces(continued, sides, aerated, gas, SPACING).any()  # 0.5 ml is no viscus's gas either
    gas[1:3, 4:8, 4:8] = True  # 32 voxels: 2 ml
    out = viscus_pieces(continued, sides, aerated, gas, SPACING)
    assert out[3:9, 8:14, 8:14].all()
    assert not out[6:16, 18:24, 18:24].any() and not out[3:9, 8:14, 20:22].any()
    assert not viscus_pieces(continued, sides, aerated, tiny, SPACING).any()
    assert not viscus_pieces(continued, sides, aerated, np.zeros(SHAPE, bool), SPACING).any()
