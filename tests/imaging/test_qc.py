"""The QC picture (:mod:`lungtrial.imaging.qc`): what it draws where, on a small synthetic volume."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from lungtrial.imaging.qc import COLOURS, _outline, qc_figure
from lungtrial.imaging.segmentation import Segmentation

SPACING = (2.5, 1.5, 1.5)


def _volume():
    """A slab of two box lungs in soft tissue, a ground-glass patch in the right lung, and a block of tissue under
    the left lung that a segmentation left out at its limits."""
    hu = np.full((40, 80, 100), 40, np.int16)
    lungs = np.zeros(hu.shape, np.uint8)
    lungs[8:36, 20:60, 12:45] = 1
    lungs[8:36, 20:60, 55:88] = 2
    hu[lungs > 0] = -850
    opacity = np.zeros(hu.shape, np.uint8)
    opacity[15:25, 30:45, 20:35] = 1
    hu[opacity == 1] = -500
    held = np.zeros(hu.shape, bool)
    held[3:8, 25:55, 60:80] = True  # under the left lung's base
    return hu, lungs, opacity, held


def _pixels(path, colour: str) -> np.ndarray:
    """(row, column) of the picture's pixels of exactly ``colour``."""
    rgb = np.asarray(Image.open(path).convert("RGB")).astype(int)
    want = [int(colour[i : i + 2], 16) for i in (1, 3, 5)]
    return np.argwhere((rgb == want).all(axis=2))


def test_outline_is_the_inner_boundary():
    mask = np.zeros((7, 8), bool)
    mask[1:6, 2:8] = True  # touches the right edge: the image edge is not outside
    inner = np.zeros_like(mask)
    inner[2:5, 3:8] = True
    assert (_outline(mask) == (mask & ~inner)).all()


def test_held_back_outlined_in_the_soft_tissue_row_only(tmp_path):
    hu, lungs, opacity, held = _volume()
    qc_figure(hu, lungs, opacity, SPACING, "S1 day 0", tmp_path / "with.png", held_back=held, dpi=60)
    qc_figure(hu, lungs, opacity, SPACING, "S1 day 0", tmp_path / "without.png", dpi=60)
    blue = _pixels(tmp_path / "with.png", COLOURS["held_back"])
    green = _pixels(tmp_path / "with.png", COLOURS["outline"])
    assert len(blue) > 0 and not len(_pixels(tmp_path / "without.png", COLOURS["held_back"]))
    # below the lung window's row: the soft-tissue row and the legend (the outline of its patch)
    row2_top = np.median(green[:, 0])  # the lung outline is drawn in both rows, about as much in each
    assert (blue[:, 0] > row2_top).all()


def test_prior_added_outlined_over_the_lung_outline_in_the_soft_tissue_row(tmp_path):
    hu, lungs, opacity, held = _volume()
    added = np.zeros(hu.shape, bool)
    added[8:36, 50:60, 55:88] = True  # the left lung's posterior part, as a serial prior adds it
    hu[added] = 40
    qc_figure(hu, lungs, opacity, SPACING, "S1 day 7", tmp_path / "with.png", held_back=held, prior_added=added,
              dpi=60)
    purple = _pixels(tmp_path / "with.png", COLOURS["prior_added"])
    green = _pixels(tmp_path / "with.png", COLOURS["outline"])
    assert len(purple) > 0 and len(_pixels(tmp_path / "with.png", COLOURS["held_back"])) > 0
    row2_top = np.median(green[:, 0])
    assert (purple[:, 0] > row2_top).all()  # soft-tissue row and legend only
    qc_figure(hu, lungs, opacity, SPACING, "S1 day 7", tmp_path / "none.png", prior_added=np.zeros_like(added),
              dpi=60)
    assert not len(_pixels(tmp_path / "none.png", COLOURS["prior_added"]))  # nothing added: no legend entry


def test_held_back_mask_at_the_scan_resolution():
    labels = np.zeros((5, 7, 9), np.uint8)
    coarse = np.zeros((3, 3, 3), bool)
    coarse[2, 0, 1] = True
    seg = Segmentation(labels=labels, held_back=coarse, coarse_factors=(2, 3, 4))
    mask = seg.held_back_mask()
    full = mask.full()
    assert full.shape == labels.shape
    expected = np.zeros(labels.shape, bool)
    expected[4:5, 0:3, 4:8] = True  # the last block is cut by the volume's edge
    assert (full == expected).all()
    up = slice(4, None, -1)  # head up, as the QC picture reads its coronal and sagittal planes
    for index in ((4, slice(0, 6), slice(2, 9)), (up, 1, slice(None)), (up, slice(1, 7), 5), (slice(None),) * 3):
        np.testing.assert_array_equal(mask[index], expected[index])
    np.testing.assert_array_equal(np.asarray(mask), expected)
    for bad in ((Ellipsis, 0), (0, 0, 0, 0), (None, 0)):
        with pytest.raises(IndexError):
            mask[bad]
    assert Segmentation(labels=labels).held_back_mask() is None
    assert Segmentation(labels=labels, held_back=np.zeros((3, 3, 3), bool)).held_back_mask() is None
