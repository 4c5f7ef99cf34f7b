"""Gas in a hollow organ joined to a lung on the coarse grid (:mod:`lungtrial.imaging.segmentation.viscus`): the
stomach's gas under the left dome, behind a diaphragm thinner than a coarse block, is taken out of the lung; lung
that a neck parts from the rest (holding vessels, or above the lung's middle) is kept. Hand-built volumes of 1 mm
voxels on a 3 mm coarse grid; nothing here is drawn like the demo's chests.
"""

from __future__ import annotations

import numpy as np

from lungtrial.imaging.segmentation._grid import _block_reduce
from lungtrial.imaging.segmentation.viscus import VISCUS_MIN_ML, drop_viscus_gas

SPACING = (1.0, 1.0, 1.0)
FACTORS = (3, 3, 3)


def _lung_over(lower_hu: float, lower_vessels: bool, lung_hu: float = -850.0, seed: int = 0):
    """A lung (z 40-89) over a pocket (z 6-37) filling the same columns, parted by a 2 mm sheet of tissue (z 38-39)
    except for a 2 x 2 mm hole in it; the coarse lung label covers both, as the coarse grid joins them."""
    rng = np.random.default_rng(seed)
    shape = (96, 66, 66)
    hu = np.full(shape, 40.0)
    vessels = rng.random(shape) < 0.006  # a vessel every few mm, everywhere in the lung
    lung = hu[40:90, 6:60, 6:60]
    lung[...] = lung_hu
    lung[vessels[40:90, 6:60, 6:60]] = 40.0
    lower = hu[6:38, 6:60, 6:60]
    lower[...] = lower_hu
    if lower_vessels:
        lower[vessels[6:38, 6:60, 6:60]] = 40.0
    hu[38:40, 30:32, 30:32] = lower_hu  # the neck: partial volume through the sheet
    hu += rng.normal(0.0, 8.0, shape)
    coarse = _block_reduce(hu, FACTORS)
    picked = np.zeros(coarse.shape, np.uint8)
    picked[2:30, 2:20, 2:20] = 2  # lung and pocket: one coarse region, as the coarse grid joins them
    picked[coarse >= -500] = 0
    return np.round(hu).astype(np.int16), coarse, picked


def test_gas_under_the_dome_is_taken_out():
    hu, coarse, picked = _lung_over(-990.0, lower_vessels=False)
    assert (picked[2:12] == 2).any()  # joined on the coarse grid
    out, removed = drop_viscus_gas(hu, coarse, picked, FACTORS, SPACING)
    assert not (out[2:12] == 2).any()  # the stomach's gas (z 6-37: coarse 2-12)
    assert (out[14:30] == 2).sum() == (picked[14:30] == 2).sum()  # the lung above, whole
    assert np.array_equal(removed, (picked == 2) & (out == 0))
    removed_ml, gas_ml = removed.sum() * 27 / 1000.0, 32 * 54 * 54 / 1000.0
    assert VISCUS_MIN_ML < removed_ml and abs(removed_ml - gas_ml) < 0.25 * gas_ml


def test_lung_parted_by_a_neck_is_kept():
    """A lower part as dark as emphysema but holding vessels is lung; so is a pocket of gas as dark as the stomach's
    lying in the lung's upper half (a bulla at the apex: the same volume turned upside down)."""
    hu, coarse, picked = _lung_over(-960.0, lower_vessels=True)
    out, removed = drop_viscus_gas(hu, coarse, picked, FACTORS, SPACING)
    assert not removed.any() and np.array_equal(out, picked)
    hu, coarse, picked = _lung_over(-990.0, lower_vessels=False)
    out, removed = drop_viscus_gas(hu[::-1].copy(), coarse[::-1].copy(), picked[::-1].copy(), FACTORS, SPACING)
    assert not removed.any()


def test_lung_as_dark_as_the_gas_is_kept():
    """No contrast between the pocket and the lung (severe emphysema all through): nothing is taken out."""
    hu, coarse, picked = _lung_over(-990.0, lower_vessels=False, lung_hu=-975.0)
    out, removed = drop_viscus_gas(hu, coarse, picked, FACTORS, SPACING)
    assert not removed.any()
