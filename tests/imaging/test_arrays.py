"""Tests for lungtrial.imaging._arrays: each axial slice's holes filled, a label volume's bounding box."""

from __future__ import annotations

import numpy as np

from lungtrial.imaging._arrays import PLANE4, fast_bbox, fill_holes_2d


def test_plane4_connects_within_a_slice_only():
    assert PLANE4.sum() == 5 and not PLANE4[0].any() and not PLANE4[2].any()


def test_holes_of_each_slice_are_filled():
    mask = np.zeros((3, 7, 7), bool)
    mask[0, 1:6, 1:6] = True
    mask[0, 3, 3] = False  # a hole: filled
    mask[1, 1:6, 1:6] = True
    mask[1, 3, 0:4] = False  # a notch open to the border: kept
    mask[2, 2:5, 2:5] = True
    mask[2, 3, 3] = False
    mask[1, 3, 3] = False  # hole of slice 2 reached through slice 1: still a hole of its own slice
    out = fill_holes_2d(mask)
    assert out[0, 3, 3] and out[2, 3, 3]
    assert not out[1, 3, 0:4].any()
    assert (out | mask).sum() == out.sum()  # only adds
    assert out.dtype == bool and out.shape == mask.shape


def test_a_diagonal_gap_does_not_open_a_hole():
    """4-connectivity: background touching the outside only by a corner is a hole."""
    mask = np.ones((1, 5, 5), bool)
    mask[0, 2, 2] = False
    mask[0, 1, 1] = False
    mask[0, 0, 0] = False  # the border's corner, diagonal to (1, 1)
    out = fill_holes_2d(mask)
    assert out[0, 2, 2] and out[0, 1, 1] and not out[0, 0, 0]


def test_bbox():
    labels = np.zeros((6, 8, 9), np.uint8)
    assert fast_bbox(labels) is None
    labels[2, 3, 4] = 1
    labels[4, 1, 7] = 2
    assert fast_bbox(labels) == (slice(2, 5), slice(1, 4), slice(4, 8))
    box = fast_bbox(labels)
    assert np.count_nonzero(labels[box]) == np.count_nonzero(labels)
