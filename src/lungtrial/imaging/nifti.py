"""NIfTI label volumes in the CT's physical space: the per-scan masks and change maps written, lesion masks read.

:func:`write_nifti` writes a (z, y, x) label volume as gzip-compressed NIfTI-1 (``masks/lungs.nii.gz`` and
``masks/opacity.nii.gz`` of :func:`lungtrial.imaging.quantify.quantify_scan`, the change maps of
:mod:`lungtrial.imaging.change`) with the same bytes in every run; :func:`load_lesion_mask` reads a lesion mask onto
the CT grid. Placement follows ITK conventions: ``spacing`` (dz, dy, dx) mm, ``origin`` LPS (x, y, z) mm of voxel
[0, 0, 0], ``direction`` 3 x 3 with column j the LPS direction of index axis x, y, z.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from lungtrial import io
from lungtrial.errors import InputError


def _image(array: np.ndarray, spacing, origin, direction):
    """SimpleITK image of a (z, y, x) array with (dz, dy, dx) spacing, LPS origin (x, y, z) and ITK direction."""
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(array)
    img.SetSpacing([float(s) for s in reversed(tuple(spacing))])
    img.SetOrigin([float(o) for o in origin])
    img.SetDirection([float(d) for d in np.asarray(direction, float).ravel()])
    return img


def nifti_affine(spacing, origin, direction) -> np.ndarray:
    """The NIfTI (RAS) voxel-to-world affine of a (z, y, x) volume placed by ITK conventions: ``spacing``
    (dz, dy, dx) mm, ``origin`` LPS (x, y, z) mm of voxel [0, 0, 0], ``direction`` 3 x 3 with column j the LPS
    direction of index axis x, y, z. NIfTI voxel indices run (i, j, k) = (x, y, z)."""
    lps_to_ras = np.diag([-1.0, -1.0, 1.0])
    affine = np.eye(4)
    affine[:3, :3] = lps_to_ras @ np.asarray(direction, float).reshape(3, 3) @ np.diag(tuple(spacing)[::-1])
    affine[:3, 3] = lps_to_ras @ np.asarray(origin, float)
    return affine


def write_nifti(array: np.ndarray, path: str | os.PathLike, spacing, origin, direction) -> None:
    """Write a (z, y, x) uint8 label volume as gzip-compressed NIfTI-1, atomically, in the CT's physical space.

    ``spacing`` (dz, dy, dx) mm, ``origin`` LPS (x, y, z) mm of voxel [0, 0, 0], ``direction`` 3 x 3 with column j
    the LPS direction of index axis x, y, z (ITK); the header's qform and sform (both "scanner") hold the same
    RAS affine (:func:`nifti_affine`), as ITK writes them, so 3D Slicer, ITK-SNAP and SimpleITK place the mask
    over the CT. nibabel writes the header and the voxels straight from ``array`` (no copy: the (z, y, x)
    C-ordered array is the NIfTI's (x, y, z) Fortran order); ISA-L's gzip (``isal``) compresses at level 1,
    several times faster than zlib: label masks are mostly runs and compress well even so. The gzip header carries
    no file name and a zero modification time, so the same mask gives the same bytes in every run.
    """
    import nibabel as nib
    from isal import igzip

    volume = np.asarray(array)
    if volume.dtype != np.uint8:
        volume = volume.astype(np.uint8)
    image = nib.Nifti1Image(volume.T, nifti_affine(spacing, origin, direction))
    image.set_data_dtype(np.uint8)
    image.header.set_xyzt_units("mm", "sec")
    image.set_qform(image.affine, code="scanner")
    image.set_sform(image.affine, code="scanner")
    with (
        io.atomic_path(path) as tmp,
        open(tmp, "wb") as raw,
        igzip.IGzipFile(filename="", mode="wb", compresslevel=1, fileobj=raw, mtime=0) as fp,
    ):
        holder = nib.fileholders.FileHolder(fileobj=fp)
        image.to_file_map({"image": holder, "header": holder})


def load_lesion_mask(path: str | os.PathLike, shape, spacing, origin, direction) -> np.ndarray:
    """A lesion mask (NIfTI or any SimpleITK image; non-zero = lesion) on the CT grid, as bool (z, y, x).

    A mask on the CT grid is used as is; a mask on another grid of the same physical space (other orientation,
    spacing or field) is resampled by nearest neighbour. Raises :class:`~lungtrial.errors.InputError` naming the
    file if it cannot be read, is not 3-D, or does not cover the CT volume.
    """
    import SimpleITK as sitk

    name = Path(path).name
    try:
        img = sitk.ReadImage(os.fspath(path))
    except RuntimeError:
        raise InputError(f"lesion mask {name}: cannot be read; expected a NIfTI image (.nii or .nii.gz)") from None
    if img.GetDimension() != 3 or img.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(f"lesion mask {name}: expected a 3-D single-channel image, got {img.GetDimension()}-D")
    size = tuple(int(s) for s in reversed(shape))
    ref = _image(np.zeros((1, 1, 1), np.uint8), spacing, origin, direction)
    same = (
        img.GetSize() == size
        and np.allclose(img.GetSpacing(), ref.GetSpacing(), rtol=1e-3)
        and np.allclose(img.GetOrigin(), ref.GetOrigin(), atol=1e-2 * min(spacing))
        and np.allclose(img.GetDirection(), ref.GetDirection(), atol=1e-4)
    )
    mask = sitk.Cast(img != 0, sitk.sitkUInt8)
    if not same:
        corners = [
            ref.TransformContinuousIndexToPhysicalPoint([float(c) for c in corner])
            for corner in np.array(np.meshgrid(*[[0, s - 1] for s in size])).reshape(3, -1).T
        ]
        idx = np.array([img.TransformPhysicalPointToContinuousIndex(p) for p in corners])
        tol = 0.5 + 1e-3
        if (idx < -tol).any() or (idx > np.array(img.GetSize()) - 1 + tol).any():
            raise InputError(
                f"lesion mask {name}: grid (size {img.GetSize()}, spacing "
                f"{tuple(round(s, 3) for s in img.GetSpacing())} mm) does not cover the CT volume (size {size}, "
                f"spacing {tuple(round(float(s), 3) for s in reversed(tuple(spacing)))} mm); expected a mask "
                "drawn on this scan"
            )
        ref = _image(np.zeros(tuple(shape), np.uint8), spacing, origin, direction)
        mask = sitk.Resample(mask, ref, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    return sitk.GetArrayFromImage(mask).astype(bool)
