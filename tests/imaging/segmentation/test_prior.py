"""The serial prior (``lungtrial.imaging.segmentation.prior``): another timepoint's lungs, registered onto a scan,
bring back consolidation as dense as the wall that the scan alone cannot tell from it (phantoms of
``tests/phantoms.py``: consolidation of 48 HU filling the right posterior recess on the diaphragm, along the left
lateral wall, against the mediastinum and around the hilum).

The prior is the library's own segmentation of the same chest without lesions, moved by up to one voxel (2.5 mm)
along an axis: the residual error of a lung-masked registration."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from lungtrial.imaging.segmentation import segment
from lungtrial.imaging.segmentation.prior import prior_additions
from phantoms import fraction_inside, leak, make_chest

LESIONS = ("ground_glass", "recess", "lateral", "mediastinal")
SHIFTS = {"aligned": (0, 0, 0), "2.5mm-up": (1, 0, 0), "2.5mm-left": (0, 0, 1)}


@functools.lru_cache(maxsize=None)
def chest(lesions: tuple[str, ...] = ()):
    return make_chest(table="flat", lesions=lesions)


@functools.lru_cache(maxsize=None)
def alone_labels(lesions: tuple[str, ...]) -> np.ndarray:
    phantom = chest(lesions)
    return segment(phantom.hu, phantom.spacing).labels


@functools.lru_cache(maxsize=None)
def prior(shift: tuple[int, int, int]) -> np.ndarray:
    return np.roll(alone_labels(()), shift, axis=(0, 1, 2))


@pytest.mark.parametrize("shift", list(SHIFTS.values()), ids=list(SHIFTS))
def test_prior_brings_back_dense_consolidation(shift):
    """At least 85 % of each lesion inside the lungs with an aligned prior, 70 % with one moved by a voxel (the
    recess's thin lower edge lies below a prior moved up; what the prior does not cover is not added)."""
    least = 0.85 if shift == (0, 0, 0) else 0.7
    for lesions, sites in ((LESIONS, ("recess", "lateral", "mediastinal")), (("perihilar",), ("perihilar",))):
        phantom = chest(lesions)
        labels = segment(phantom.hu, phantom.spacing, prior=prior(shift)).labels
        for site in sites:
            inside = fraction_inside(phantom.sites[site], labels)
            assert inside >= least, f"{site}: {100 * inside:.1f} % inside the lungs with the prior"


@pytest.mark.parametrize("shift", list(SHIFTS.values()), ids=list(SHIFTS))
def test_prior_adds_nothing_to_lesion_free_lungs(shift):
    """A lesion-free chest with a misregistered prior of itself: under 1 % of the lungs added, none of it liver,
    spleen, stomach or chest wall beyond what the scan alone takes."""
    phantom = chest()
    alone = alone_labels(())
    seg = segment(phantom.hu, phantom.spacing, prior=prior(shift))
    lungs_ml = phantom.ml(alone > 0)
    assert seg.prior_ml < 0.01 * lungs_ml, f"prior added {seg.prior_ml:.1f} ml to {lungs_ml:.0f} ml of lung"
    for names in (("liver", "spleen"), ("stomach_wall", "stomach_fluid", "stomach_gas")):
        assert leak(seg.labels, phantom, *names)["ml"] <= leak(alone, phantom, *names)["ml"] + 1.0, names


def test_prior_never_removes_lung_and_keeps_sides():
    phantom = chest(LESIONS)
    alone = alone_labels(LESIONS)
    seg = segment(phantom.hu, phantom.spacing, prior=prior((0, 0, 0))).labels
    assert np.array_equal(seg[alone > 0], alone[alone > 0])
    added = (seg > 0) & (alone == 0)
    assert added.any()
    # the recess is in the right lung, the lateral band along the left wall
    assert np.all(seg[added & phantom.sites["recess"]] == 1)
    assert np.all(seg[added & phantom.sites["lateral"]] == 2)


def test_prior_additions_checks_grids_and_ignores_bone_and_gas():
    hu = np.full((20, 30, 30), 40, np.int16)
    labels = np.zeros(hu.shape, np.uint8)
    labels[:, 5:25, 5:12] = 1
    hu[labels > 0] = -850
    with pytest.raises(ValueError, match="grid"):
        prior_additions(hu, labels, np.zeros((2, 2, 2), np.uint8), (2.0, 2.0, 2.0))
    prior = np.zeros_like(labels)
    prior[:, 5:25, 5:22] = 1  # 10 voxels (20 mm) beyond the aerated lung: dense tissue, then bone, then gas
    hu[:, :, 16:18] = 700
    hu[:, :, 18:22] = -1000
    add = prior_additions(hu, labels, prior, (2.0, 2.0, 2.0))
    assert add[:, 6:24, 12:16].all() and not add[..., 16:].any()
    assert set(np.unique(add)) == {0, 1}
