"""Tests for lungtrial.imaging.segmentation.body on small coarse grids: the body holds what it encloses, not the
table it lies on. Whole chests on boards and trays: test_anatomy.py."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

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


def test_a_wall_thinner_than_the_cut_in_a_few_slices_still_holds_the_lungs():
    """A thin patient: in two slices the anterior chest wall over both lungs is one voxel (5 mm) thick over about
    150 mm, longer than the in-plane regrowth reaches from either end; the slices above and below have a full wall,
    and the wall goes on from slice to slice (a real case: a cachectic patient's wall over the upper lobes)."""
    hu, chest, lungs = coarse_chest()
    y, x = np.mgrid[: hu.shape[1], : hu.shape[2]]
    big = np.zeros(hu.shape[1:], bool)
    for cx in (20, 44):
        big |= ((y - 27) / 12.0) ** 2 + ((x - cx) / 10.0) ** 2 < 1
    big &= ((y - 30) / 15.0) ** 2 + ((x - 32) / 25.0) ** 2 < 1  # one voxel of wall left in front of them
    big &= ~((np.abs(x - 32) <= 1) & (y < 30))  # the anterior junction (mediastinum) stays tissue
    hu[2:4][:, big] = -850.0
    assert (((y - 30) / 16.0) ** 2 + ((x - 32) / 26.0) ** 2 < 1)[big].all()
    body = body_mask(hu, CSP)
    assert body[2:4][:, big].all()
    assert not body[:, :10, :].any()


def test_a_body_cut_by_the_reconstruction_circle_still_holds_its_lungs():
    """A patient wider than the scanner's reconstruction circle: beyond it the image holds padding (-1024 HU in
    every slice), and the right lung runs into the circle's edge rather than into the image's."""
    hu, chest, lungs = coarse_chest()
    y, x = np.mgrid[: hu.shape[1], : hu.shape[2]]
    beyond = (y - 30.0) ** 2 + (x - 40.0) ** 2 > 23.0**2  # the circle cuts the right flank and the right lung
    hu[:, beyond] = -1024.0
    cut = lungs & ~ndimage.binary_dilation(beyond)  # (the blocks across the circle's edge are neither)
    assert (lungs & beyond).any()
    body = body_mask(hu, CSP)
    assert body[:, cut].all()
    assert not body[:, beyond].any()
    assert not body[:, :2, :].any()  # the air above the chest


def test_flat_air_of_another_shape_is_not_a_reconstruction_circle():
    """Air a scanner stores flat at -1024 HU around the body is not padding beyond a circle: the image edge stays
    the field of view's, and the body is what it was."""
    hu, chest, lungs = coarse_chest()
    flat = hu.copy()
    outside = ~chest
    outside[47] = False  # the table
    flat[:, outside] = -1024.0
    noisy = hu.copy()
    noisy[:, outside] = -1000.0
    assert np.array_equal(body_mask(flat, CSP), body_mask(noisy, CSP))
