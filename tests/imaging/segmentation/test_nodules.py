"""A nodule that the lung wraps but whose contact with the mediastinum the outline leaves out (``nodules.py``)."""

from __future__ import annotations

import numpy as np
import pytest

from lungtrial.imaging.segmentation import nodules

SPACING = (1.25, 0.8, 0.8)
SHAPE = (64, 128, 128)  # 80 x 102 x 102 mm
MEDIASTINUM_X_MM = 30.0  # the mediastinum (soft tissue) lies at x < 30 mm, the right lung beyond


def _grid():
    """(z, y, x) voxel centres in mm, broadcastable to SHAPE."""
    return tuple(
        (np.arange(n) * s).reshape([-1 if i == axis else 1 for i in range(3)])
        for axis, (n, s) in enumerate(zip(SHAPE, SPACING))
    )


def _scan(obj):
    """(hu, labels, object): aerated lung at x >= 30 mm, soft tissue medially, ``obj`` (bool) of soft tissue."""
    _, _, x = _grid()
    lung = np.broadcast_to(x >= MEDIASTINUM_X_MM, SHAPE).copy()
    lung[:4] = lung[-4:] = False  # the lung ends within the scan
    lung[:, :4] = lung[:, -4:] = False
    lung[:, :, -4:] = False
    hu = np.where(lung, -850, 40).astype(np.int16)
    hu[obj] = 40
    labels = (lung & ~obj).astype(np.uint8)
    return hu, labels, obj & lung


def _ball(centre, radius):
    z, y, x = _grid()
    return (z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2 <= radius**2


def test_a_nodule_against_the_mediastinum_comes_back():
    # 14 mm across, reaching 3 mm into the mediastinum: the lung wraps the rest of it
    nodule = _ball((40.0, 50.0, MEDIASTINUM_X_MM + 4.0), 7.0)
    hu, labels, inside = _scan(nodule)
    before = labels.copy()
    ml = nodules.add_wrapped_nodules(hu, labels, SPACING)
    added = (labels == 1) & (before == 0)
    assert np.all(labels[before > 0] == before[before > 0])  # nothing taken away
    share = np.count_nonzero(added & inside) / np.count_nonzero(inside)
    # all but its base within about 2 mm of the mediastinum's flat face, which the closing ball reaches
    assert share >= 0.8, f"{100 * share:.0f} % of the nodule's part in the lung added"
    beyond = np.count_nonzero(added & ~nodule) / np.count_nonzero(inside)
    assert beyond <= 0.1, f"mediastinum added: {100 * beyond:.0f} % of the nodule's volume"
    assert ml == pytest.approx(np.count_nonzero(added) * np.prod(SPACING) / 1000.0)


@pytest.mark.parametrize(
    "what",
    ["mass-40mm", "tube-along-the-mediastinum", "strip-2mm"],
)
def test_what_is_not_a_wrapped_nodule_stays_out(what):
    z, y, x = _grid()
    if what == "mass-40mm":  # larger than a nodule: a mass, or the mediastinum's own convexity
        obj = _ball((40.0, 50.0, MEDIASTINUM_X_MM + 14.0), 20.0)
    elif what == "tube-along-the-mediastinum":  # a vessel running along it (60 mm long)
        obj = np.broadcast_to(
            ((y - 50.0) ** 2 + (x - MEDIASTINUM_X_MM - 3.0) ** 2 <= 6.0**2) & (z > 10.0) & (z < 70.0), SHAPE
        ).copy()
    else:  # a strip of pleura 2 mm thick (the wall's relief): no core
        obj = np.broadcast_to((np.abs(y - 50.0) < 10.0) & (x < MEDIASTINUM_X_MM + 2.0) & (np.abs(z - 40) < 10), SHAPE)
        obj = obj.copy()
    hu, labels, _ = _scan(obj)
    before = labels.copy()
    assert nodules.add_wrapped_nodules(hu, labels, SPACING) == 0.0
    assert np.array_equal(labels, before)
