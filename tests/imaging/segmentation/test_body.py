"""Tests for lungtrial.imaging.segmentation.body on small coarse grids: the body holds what it encloses, not the
table it lies on. Whole chests on boards and trays: test_anatomy.py."""

from __future__ import annotations

import numpy as np
import pytest

from lungtrial.imaging.segmentation.body import body_mask

CSP = (5.0, 5.0, 5.0)


def coarse_chest():
    """An elliptic chest (soft tissue) with two lungs, lying on a 5 mm table that spans the image; air around."""
    nz, ny, nx = 6, 64, 64
    y, x = np.mgrid[:ny, :nx]
    hu = np.full((nz, ny, nx), -1000.0)
    chest = ((y - 30) / 16.0) ** 2 + ((x - 32) / 26.0) ** 2 < 1
    lungs = np.zeros((ny, nx), bool)
    for cx in (22, 42):
        lungs |= ((y - 30) / 10.0) ** 2 + ((x - cx) / 7.0) ** 2 < 1
    hu[:, chest] = 30.0
    hu[:, lungs] = -850.0
    hu[:, 47, :] = 200.0  # the table, touching the back of the chest
    return hu, chest, lungs


def test_body_holds_the_lungs_and_not_the_table():
    hu, chest, lungs = coarse_chest()
    body = body_mask(hu, CSP)
    assert body.dtype == bool and body.shape == hu.shape
    assert body[:, lungs].all()  # enclosed air is inside
    assert body[:, chest].mean() > 0.98
    table_far = np.zeros(hu.shape[1:], bool)
    table_far[47, :4] = table_far[47, -4:] = True  # the table beyond the regrowth distance
    assert not body[:, table_far].any()
    assert not body[:, :10, :].any()  # the air above the chest


def test_no_tissue_is_no_body():
    with pytest.raises(ValueError, match="no body found"):
        body_mask(np.full((3, 8, 8), -900.0), CSP)
