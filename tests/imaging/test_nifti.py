"""nifti: the masks' NIfTI geometry, lesion masks on and off the CT grid."""

import numpy as np
import pytest
import SimpleITK as sitk

from lungtrial.errors import InputError
from lungtrial.imaging.nifti import load_lesion_mask, write_nifti

SHAPE = (6, 8, 10)
SPACING = (2.5, 0.7, 0.6)
ORIGIN = (-150.0, -120.0, 300.0)
DIRECTION = np.eye(3)


def test_nifti_keeps_ct_geometry(tmp_path):
    labels = np.zeros(SHAPE, np.uint8)
    labels[1, 2, 3] = 2
    direction = np.array([[1.0, 0, 0], [0, 0.6, -0.8], [0, 0.8, 0.6]])  # tilted, still orthonormal
    write_nifti(labels, tmp_path / "m.nii.gz", SPACING, ORIGIN, direction)
    img = sitk.ReadImage(str(tmp_path / "m.nii.gz"))
    assert img.GetSize() == (10, 8, 6)
    assert np.allclose(img.GetSpacing(), (0.6, 0.7, 2.5))
    assert np.allclose(img.GetOrigin(), ORIGIN, atol=1e-4)
    assert np.allclose(np.reshape(img.GetDirection(), (3, 3)), direction, atol=1e-5)
    assert (sitk.GetArrayFromImage(img) == labels).all()
    assert [p.name for p in tmp_path.iterdir()] == ["m.nii.gz"]  # no temporary file left


def test_lesion_mask_on_grid_and_reoriented(tmp_path):
    mask = np.zeros(SHAPE, np.uint8)
    mask[2:4, 3:5, 1:6] = 7  # any non-zero value is lesion
    write_nifti(mask, tmp_path / "same.nii.gz", SPACING, ORIGIN, DIRECTION)
    got = load_lesion_mask(tmp_path / "same.nii.gz", SHAPE, SPACING, ORIGIN, DIRECTION)
    assert got.dtype == bool and (got == (mask > 0)).all()
    # the same mask stored with flipped x and y axes (another orientation of the same physical space)
    flipped = mask[:, ::-1, ::-1]
    origin = (ORIGIN[0] + 9 * 0.6, ORIGIN[1] + 7 * 0.7, ORIGIN[2])
    write_nifti(np.ascontiguousarray(flipped), tmp_path / "flip.nii.gz", SPACING, origin, np.diag([-1.0, -1.0, 1.0]))
    got = load_lesion_mask(tmp_path / "flip.nii.gz", SHAPE, SPACING, ORIGIN, DIRECTION)
    assert (got == (mask > 0)).all()


def test_lesion_mask_mismatch_is_a_clear_error(tmp_path):
    write_nifti(np.zeros((3, 8, 10), np.uint8), tmp_path / "short.nii.gz", SPACING, ORIGIN, DIRECTION)
    with pytest.raises(InputError, match="short.nii.gz.*does not cover the CT volume"):
        load_lesion_mask(tmp_path / "short.nii.gz", SHAPE, SPACING, ORIGIN, DIRECTION)
    (tmp_path / "bad.nii.gz").write_bytes(b"not an image")
    with pytest.raises(InputError, match="bad.nii.gz.*cannot be read"):
        load_lesion_mask(tmp_path / "bad.nii.gz", SHAPE, SPACING, ORIGIN, DIRECTION)
