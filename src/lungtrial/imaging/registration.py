"""Registration of a follow-up chest CT onto the same patient's baseline CT (SimpleITK).

The baseline is the *fixed* image, the follow-up the *moving* one. A registration is the transform ``T`` that maps
a point of the baseline (LPS, mm) to the same anatomy in the follow-up (ITK's resampling convention), so the
follow-up's HU and masks are brought onto the baseline grid by sampling the follow-up at ``T(x)`` for every
baseline voxel centre ``x``. ``T`` is the composition of two stages, both saved as ITK transform files:

1. **affine** (12 parameters), started from the lungs' centres of mass (patients lie at other table positions
   and in other postures on each visit), then optimised by Mattes mutual information, sampled inside the baseline
   lungs widened by ``mask_margin_mm``, on two levels of the working grid;
2. **deformable**: a dense displacement field found by symmetric-forces demons on the follow-up already moved by
   the affine stage, on two levels of the working grid, the field smoothed by a Gaussian of ``smoothing_mm``
   after every iteration, kept on a grid of about ``field_mm``. Demons compare HU directly, which CT allows (the
   same calibrated unit on both visits). Both images read ``clip_hu`` outside their own widened lungs (the
   lung-masked stage): the lungs slide along the chest wall while breathing, and the ribs, heart and abdomen
   must not pull the lung transform with them.

The images are first averaged down to a working grid of about ``grid_mm`` voxels and clipped to
-1000..``clip_hu`` HU, which keeps the lung's contrast (aerated lung, vessels, lesions, the pleura) and drops
bone's.

Why a displacement field and not a B-spline: on real chest CT moved by a known breath-hold field both reached the
same accuracy (median error 0.8-1.0 mm inside the lungs, 95th percentile about 3 mm, see
``docs/registration.md``), but SimpleITK's B-spline registration evaluates the full parameter Jacobian at every
sample, so a 40 mm mesh over the chest took minutes (186 s of CPU on LIDC-IDRI-0001) against 15-25 s of CPU for
the whole registration with demons.

Lesions: demons (like any intensity-driven registration) would move the lung around a lesion that appears or
resolves, to make the densities agree, and so shrink the change. Given the opacity labels of both scans
(``fixed_opacity``, ``moving_opacity``), opacity voxels read as the surrounding lung's median HU: the lesions
then neither pull nor push, and the lung's outline and vessels around them place the field.

QC (:attr:`Registration.qc`): Dice of the warped follow-up lung mask with the baseline lung mask, the range of
the Jacobian determinant of ``T`` inside the baseline lungs (below 0 the transform folds space: the anatomy is
turned inside out and the pair cannot be compared), and ``failed`` with a ``reason`` when the Dice is below
``min_dice``, the Jacobian reaches ``min_jacobian`` or the optimiser stopped on an error. A failed pair must be
left out of change statistics with its reason.

Conventions: volumes are ``(z, y, x)`` numpy arrays; ``spacing`` is ``(dz, dy, dx)`` in mm; ``origin`` is the
LPS ``(x, y, z)`` position of voxel ``[0, 0, 0]`` in mm; ``direction`` is 3 x 3 with column j the LPS direction
of index axis x, y, z (as :class:`lungtrial.imaging.dicom.CTVolume` gives them). Lung labels: 0 background, 1 right,
2 left (:func:`lungtrial.imaging.segmentation.segment`).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lungtrial import parallel
from lungtrial.errors import InputError

#: File names of the two stages written by :meth:`Registration.save` and read by :func:`load_transform`.
TRANSFORM_FILES = ("affine.tfm", "deformable.h5")


@dataclass(frozen=True)
class Grid:
    """Where a (z, y, x) volume lies in patient space.

    Attributes
    ----------
    shape : (nz, ny, nx) voxels.
    spacing : (dz, dy, dx) mm.
    origin : LPS (x, y, z) mm of voxel [0, 0, 0].
    direction : 9 floats, row-major 3 x 3; column j is the LPS direction of index axis x, y, z.
    """

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    direction: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)

    @classmethod
    def of(cls, array: np.ndarray, spacing, origin=None, direction=None) -> Grid:
        """The grid of ``array`` (checked: 3-D, three positive spacings, a 3 x 3 direction)."""
        shape = tuple(int(n) for n in np.shape(array))
        if len(shape) != 3:
            raise ValueError(f"expected a 3-D (z, y, x) volume, got shape {shape}")
        sp = tuple(float(s) for s in spacing)
        if len(sp) != 3 or not all(np.isfinite(sp)) or min(sp) <= 0:
            raise ValueError(f"spacing: expected three positive voxel sizes (dz, dy, dx) in mm, got {spacing}")
        org = (0.0, 0.0, 0.0) if origin is None else tuple(float(o) for o in origin)
        d = np.eye(3) if direction is None else np.asarray(direction, float).reshape(3, 3)
        return cls(shape, sp, org, tuple(float(v) for v in d.ravel()))

    def image(self, array: np.ndarray | None = None):
        """SimpleITK image of ``array`` (zeros of uint8 when None) on this grid."""
        sitk = parallel.simpleitk()
        img = sitk.GetImageFromArray(np.zeros(self.shape, np.uint8) if array is None else array)
        self.place(img)
        return img

    def position(self, index) -> tuple[float, float, float]:
        """LPS (x, y, z) mm of the voxel at ``index`` (z, y, x)."""
        ijk = np.asarray(index, float)[::-1] * np.asarray(self.spacing, float)[::-1]
        return tuple(float(v) for v in np.asarray(self.origin) + np.asarray(self.direction).reshape(3, 3) @ ijk)

    def place(self, img) -> None:
        """Give the SimpleITK image ``img`` this grid's spacing, origin and direction."""
        img.SetSpacing(tuple(reversed(self.spacing)))
        img.SetOrigin(self.origin)
        img.SetDirection(self.direction)


@dataclass
class Registration:
    """A follow-up registered onto its baseline (:func:`register`).

    Attributes
    ----------
    affine : SimpleITK.AffineTransform
        Baseline point -> follow-up point, the global part.
    deformable : SimpleITK.DisplacementFieldTransform
        Baseline point -> point given to ``affine`` (the field on a grid of about ``field_mm``), applied first.
    fixed : Grid
        The baseline's grid (resampling target).
    qc : dict
        ``dice`` (warped follow-up lungs vs baseline lungs, on the working grid), ``dice_affine`` (the same after
        the affine stage alone), ``jacobian_min``, ``jacobian_max``, ``jacobian_p01``, ``jacobian_p99``
        (determinant of the transform's Jacobian inside the baseline lungs, on the working grid; 1 = volume kept,
        < 1 the follow-up's lung is smaller there), ``folded_pct`` (% of lung voxels with determinant <=
        ``min_jacobian``), ``metric_affine`` (final Mattes mutual information of the affine stage, lower is
        better), ``seconds``
        (``affine``, ``deformable``, ``qc``), ``failed`` (bool) and ``reason`` (why it failed; "" when not).
    """

    affine: object
    deformable: object
    fixed: Grid
    qc: dict = field(default_factory=dict)

    @property
    def transform(self):
        """The whole transform (baseline point -> follow-up point) as one SimpleITK CompositeTransform."""
        return _compose(self.affine, self.deformable)

    def save(self, folder: str | os.PathLike) -> list[Path]:
        """Write the two stages as ITK transform files into ``folder`` (created if needed); returns their paths.

        ``affine.tfm`` and ``deformable.h5`` (ITK's transform formats: text for the affine, HDF5 for the
        displacement field, about 7 MB for a 512 x 512 chest at ``field_mm`` 5; 3D Slicer and ANTs read both). The whole transform applies ``deformable`` first, then
        ``affine`` (:func:`load_transform`).
        """
        return save_transform(self.affine, self.deformable, folder)

    def warp(
        self, volume: np.ndarray, moving: Grid, *, kind: str = "linear", default: float = 0, region=None
    ) -> np.ndarray:
        """``volume`` (on the follow-up grid ``moving``) resampled onto the baseline grid; see :func:`warp`."""
        return warp(volume, moving, self.fixed, self.transform, kind=kind, default=default, region=region)


def _compose(affine, deformable):
    sitk = parallel.simpleitk()
    # ITK applies the transforms of a composite last-added first: the deformable stage, then the affine one
    return sitk.CompositeTransform([t for t in (affine, deformable) if t is not None])


def save_transform(affine, deformable, folder: str | os.PathLike) -> list[Path]:
    """Write ``affine`` and ``deformable`` as :data:`TRANSFORM_FILES` in ``folder``, atomically; their paths."""
    from lungtrial.io import atomic_path, clear_hdf5_times

    sitk = parallel.simpleitk()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, tx in zip(TRANSFORM_FILES, (affine, deformable), strict=True):
        path = folder / name
        with atomic_path(path) as tmp:
            tmp = Path(tmp)
            typed = tmp.with_name(tmp.name + path.suffix)  # ITK picks the writer by the file's extension
            sitk.WriteTransform(tx, str(typed))
            if typed.suffix == ".h5":  # HDF5 stamps its object headers with the time of writing
                clear_hdf5_times(typed)
            typed.replace(tmp)
        paths.append(path)
    return paths


def load_transform(folder: str | os.PathLike):
    """The whole transform (baseline point -> follow-up point) from the files :meth:`Registration.save` wrote.

    Raises :class:`~lungtrial.errors.InputError` naming the file when one is missing or not an ITK transform.
    """
    sitk = parallel.simpleitk()
    parts = []
    for name in TRANSFORM_FILES:
        path = Path(folder) / name
        try:
            tx = sitk.ReadTransform(str(path))
        except RuntimeError:
            raise InputError(f"{name}: cannot be read; expected an ITK transform file written by the registration")
        parts.append(tx)
    affine, deformable = parts
    return _compose(_downcast(affine), _downcast(deformable))


def _downcast(tx):
    """A transform read from a file as its own class (a file holds a one-element composite or the transform)."""
    sitk = parallel.simpleitk()
    if tx.GetName() == "CompositeTransform":
        comp = sitk.CompositeTransform(tx)
        if comp.GetNumberOfTransforms() == 1:
            tx = comp.GetNthTransform(0)
    return tx.Downcast()


def warp(
    volume: np.ndarray,
    moving: Grid,
    fixed: Grid,
    transform,
    *,
    kind: str = "linear",
    default: float = 0,
    region: tuple[slice, slice, slice] | None = None,
) -> np.ndarray:
    """Resample a follow-up volume onto the baseline grid through ``transform`` (baseline point -> follow-up point).

    Parameters
    ----------
    volume : (z, y, x) array on ``moving``: HU (int16 or float) or labels (uint8).
    moving, fixed : the follow-up's and the baseline's :class:`Grid`.
    transform : SimpleITK transform, e.g. :attr:`Registration.transform` or :func:`load_transform`.
    kind : ``"linear"`` (HU: trilinear) or ``"nearest"`` (labels: nearest neighbour, labels stay labels).
    default : value of baseline voxels that fall outside the follow-up's volume (e.g. -1024 HU; 0 for labels).
    region : (z, y, x) slices of ``fixed`` (step 1) to fill, e.g. one plane for a picture; default: all of it.

    Returns
    -------
    (z, y, x) array on ``fixed`` (or its ``region``), of ``volume``'s dtype (linear values rounded for integer
    types).
    """
    sitk = parallel.simpleitk()
    if kind not in ("linear", "nearest"):
        raise ValueError(f"kind: expected 'linear' or 'nearest', got {kind!r}")
    volume = np.asarray(volume)
    if volume.shape != moving.shape:
        raise ValueError(f"volume: expected shape {moving.shape} (the follow-up grid), got {volume.shape}")
    start, size = [0, 0, 0], list(fixed.shape)
    if region is not None:
        bounds = [sl.indices(n) for sl, n in zip(region, fixed.shape)]
        if any(step != 1 or stop <= first for first, stop, step in bounds):
            raise ValueError(f"region: expected (z, y, x) slices with step 1 inside {fixed.shape}, got {region!r}")
        start, size = [first for first, _, _ in bounds], [stop - first for first, stop, _ in bounds]
    img = moving.image(volume)
    f = sitk.ResampleImageFilter()
    f.SetSize([int(n) for n in reversed(size)])
    f.SetOutputSpacing(tuple(reversed(fixed.spacing)))
    f.SetOutputOrigin(fixed.position(start))
    f.SetOutputDirection(fixed.direction)
    f.SetTransform(transform)
    f.SetInterpolator(sitk.sitkLinear if kind == "linear" else sitk.sitkNearestNeighbor)
    f.SetDefaultPixelValue(float(default))
    f.SetOutputPixelType(img.GetPixelID())
    out = f.Execute(img)
    del img
    return sitk.GetArrayFromImage(out)


def _shrink_factors(spacing, grid_mm: float) -> list[int]:
    """Integer block sizes (x, y, z) that bring ``spacing`` (dz, dy, dx) closest to ``grid_mm`` voxels."""
    return [max(1, round(grid_mm / s)) for s in reversed(spacing)]


@dataclass(frozen=True)
class _Working:
    """One scan on the working grid (SimpleITK images).

    Attributes
    ----------
    hu : float32 HU clipped to -1000..``clip_hu``, opacity voxels read as the rest of the lung's median HU.
    lung : float32 fraction of lung (0..1) in each working voxel.
    mask : uint8, lung where the fraction is at least a half.
    keep : uint8, ``mask`` widened by ``mask_margin_mm``: where the images are compared.
    """

    hu: object
    lung: object
    mask: object
    keep: object


def _working(sitk, hu, lungs, grid: Grid, opacity, *, grid_mm: float, clip_hu: float, margin_mm: float) -> _Working:
    """One scan block-averaged to the working grid of about ``grid_mm`` (see :class:`_Working`)."""
    lung = _lung_fraction(sitk, lungs, grid, grid_mm)
    mask = sitk.Cast(lung >= 0.5, sitk.sitkUInt8)
    keep = mask
    if margin_mm > 0:
        radius = [max(1, round(margin_mm / s)) for s in mask.GetSpacing()]
        keep = sitk.BinaryDilate(mask, radius, sitk.sitkBall)
    return _Working(_working_hu(sitk, hu, lungs, grid, grid_mm, clip_hu, opacity), lung, mask, keep)


def _working_hu(sitk, hu: np.ndarray, lungs: np.ndarray, grid: Grid, grid_mm: float, clip_hu: float, opacity=None):
    """HU (float32, clipped to -1000..clip_hu) block-averaged to the working grid; opacity voxels (``opacity``
    labels 1 and 2) read as the median HU of the rest of the lung."""
    factors = _shrink_factors(grid.spacing, grid_mm)
    img = grid.image(np.ascontiguousarray(hu, dtype=np.int16))
    if opacity is not None:
        opacity = np.asarray(opacity)
        if opacity.shape != grid.shape:
            raise ValueError(f"opacity: expected shape {grid.shape} (its CT grid), got {opacity.shape}")
        step = (slice(None), slice(None, None, 2), slice(None, None, 2))  # a quarter of the voxels is plenty
        lung = (np.asarray(lungs)[step] > 0) & ((opacity[step] == 0) | (opacity[step] == 3))
        parenchyma = float(np.median(np.asarray(hu)[step][lung])) if lung.any() else -850.0
        lesion = grid.image(((opacity == 1) | (opacity == 2)).view(np.uint8))
        img = sitk.Mask(img, lesion, outsideValue=round(parenchyma), maskingValue=1)
        del lesion
    img = sitk.BinShrink(img, factors)
    return sitk.Clamp(sitk.Cast(img, sitk.sitkFloat32), sitk.sitkFloat32, -1000.0, float(clip_hu))


def _lung_fraction(sitk, lungs: np.ndarray, grid: Grid, grid_mm: float):
    """The fraction of lung (float32, 0..1) in each voxel of the working grid of about ``grid_mm``."""
    factors = _shrink_factors(grid.spacing, grid_mm)
    lung = grid.image((np.asarray(lungs) > 0).view(np.uint8))
    return sitk.BinShrink(sitk.Cast(lung, sitk.sitkFloat32), factors)


def _last_line(exc: Exception) -> str:
    """The description of an ITK exception (its last non-empty line, without ITK's source paths)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    text = lines[-1] if lines else type(exc).__name__
    return text.split(": ", 1)[-1] if text.startswith(("itk::", "ITK ")) else text


#: Keyword arguments of :func:`lungtrial.imaging.registration.register` that the config's ``registration:``
#: section may set.
REGISTRATION_OPTIONS = (
    "grid_mm",
    "clip_hu",
    "mask_margin_mm",
    "histogram_bins",
    "sampling",
    "affine_iterations",
    "demons_iterations",
    "smoothing_mm",
    "field_mm",
    "min_dice",
    "min_jacobian",
    "seed",
)


def registration_kwargs(options) -> dict:
    """The config's ``registration:`` section as keyword arguments of
    :func:`lungtrial.imaging.registration.register` (``enabled`` and unknown keys dropped, lists made tuples)."""
    out = {}
    for key in REGISTRATION_OPTIONS:
        if options and options.get(key) is not None:
            value = options[key]
            out[key] = tuple(value) if isinstance(value, list) else value
    return out


def register(
    fixed_hu: np.ndarray,
    fixed_lungs: np.ndarray,
    fixed_spacing,
    moving_hu: np.ndarray,
    moving_lungs: np.ndarray,
    moving_spacing,
    *,
    fixed_origin=None,
    fixed_direction=None,
    moving_origin=None,
    moving_direction=None,
    fixed_opacity: np.ndarray | None = None,
    moving_opacity: np.ndarray | None = None,
    grid_mm: float = 2.5,
    clip_hu: float = 100.0,
    mask_margin_mm: float = 10.0,
    histogram_bins: int = 32,
    sampling: float = 0.25,
    affine_iterations: int = 200,
    demons_iterations: tuple[int, int] = (50, 30),
    smoothing_mm: float = 5.0,
    field_mm: float = 5.0,
    min_dice: float = 0.9,
    min_jacobian: float = 0.0,
    seed: int = 20200,
    threads: int | None = None,
) -> Registration:
    """Register a follow-up CT (moving) onto the baseline CT (fixed) of the same patient: affine, then deformable.

    Parameters
    ----------
    fixed_hu, moving_hu : (z, y, x) int16 HU of the baseline and the follow-up.
    fixed_lungs, moving_lungs : (z, y, x) lung labels of each (0 background, 1 right, 2 left; any non-zero is lung).
    fixed_spacing, moving_spacing : (dz, dy, dx) voxel sizes in mm.
    fixed_origin, moving_origin : LPS (x, y, z) mm of voxel [0, 0, 0] (default 0, 0, 0).
    fixed_direction, moving_direction : 3 x 3 index-to-LPS directions (default identity).
    fixed_opacity, moving_opacity : optional (z, y, x) opacity labels of each (:func:`lungtrial.imaging.metrics.opacity_labels`:
        1 and 2 opacity, 3 vessel). Opacity voxels then read as the median HU of the rest of that scan's lung, so
        that a lesion that appears, resolves or changes does not pull the registration (the lung's outline and
        vessels align it); recommended for change maps.
    grid_mm : working voxel size in mm (default 2.5): each volume is averaged over whole blocks of voxels to the
        nearest size (0.7 mm pixels in blocks of 4, 2.5 mm slices as they are). Breathing is smooth over
        centimetres; finer grids cost time without gaining accuracy.
    clip_hu : HU above this are set to it (default 100: bone and contrast would otherwise dominate); HU below
        -1000 are set to -1000.
    mask_margin_mm : the images are compared inside the lungs widened by this (mm, default 10), so that the
        pleura, the lung's edge, is inside; outside it both images read ``clip_hu``.
    histogram_bins : bins of the affine stage's Mattes mutual information (default 32).
    sampling : fraction of the masked working voxels sampled at random by the affine stage (default 0.25).
    affine_iterations : at most this many gradient steps per level of the affine stage (default 200).
    demons_iterations : iterations of the deformable stage on the working grid halved, then as is (default 50, 30).
    smoothing_mm : standard deviation (mm) of the Gaussian that regularises the displacement field after every
        iteration (default 5). Larger is stiffer: it follows less local motion, and lets a lesion that appears or
        resolves pull less on the lung around it.
    field_mm : the displacement field is kept (and saved) on a grid of about this spacing (mm, default 5); it
        is smooth on that scale, and a finer grid only makes the transform file larger.
    min_dice : the registration fails below this Dice of the lung masks (default 0.9).
    min_jacobian : the registration fails when the Jacobian determinant inside the lungs reaches this (default 0:
        folding).
    seed : seed of the affine stage's random sampling. The result does not depend on ``threads``: the same
        inputs give the same transform, byte for byte, on any number of threads.
    threads : SimpleITK threads of the demons stage, the warps and the QC (default
        :func:`lungtrial.parallel.threads`); the affine stage runs on one (see :func:`_affine`).

    Returns
    -------
    Registration
        The two stages, the baseline grid and the QC (see :class:`Registration`). A registration that failed is
        returned with ``qc["failed"]`` true and its ``reason``; it is never raised.

    Raises
    ------
    ValueError
        If a volume is not 3-D, a mask does not match its volume, a spacing or a size parameter is not positive.
    lungtrial.errors.InputError
        If either lung mask is empty.
    """
    fixed = Grid.of(fixed_hu, fixed_spacing, fixed_origin, fixed_direction)
    moving = Grid.of(moving_hu, moving_spacing, moving_origin, moving_direction)
    for name, mask, grid in (("fixed_lungs", fixed_lungs, fixed), ("moving_lungs", moving_lungs, moving)):
        if tuple(np.shape(mask)) != grid.shape:
            raise ValueError(f"{name}: expected shape {grid.shape} (its CT grid), got {np.shape(mask)}")
    for name, mask in (("baseline", fixed_lungs), ("follow-up", moving_lungs)):
        if not np.any(mask):
            raise InputError(f"{name} lungs: the mask is empty; expected the lung labels of the {name} scan")
    for name, value in (
        ("grid_mm", grid_mm),
        ("smoothing_mm", smoothing_mm),
        ("field_mm", field_mm),
        ("sampling", sampling),
    ):
        if not np.isfinite(value) or value <= 0:
            raise ValueError(f"{name}: expected a positive number, got {value!r}")
    if len(tuple(demons_iterations)) != 2 or min(demons_iterations) < 0:
        raise ValueError(f"demons_iterations: expected two iteration counts >= 0, got {demons_iterations!r}")
    with parallel.limit(threads):
        return _register(
            (fixed_hu, fixed_lungs, fixed, fixed_opacity),
            (moving_hu, moving_lungs, moving, moving_opacity),
            grid_mm=float(grid_mm),
            clip_hu=float(clip_hu),
            mask_margin_mm=float(mask_margin_mm),
            histogram_bins=int(histogram_bins),
            sampling=min(float(sampling), 1.0),
            affine_iterations=int(affine_iterations),
            demons_iterations=tuple(int(n) for n in demons_iterations),
            smoothing_mm=float(smoothing_mm),
            field_mm=float(field_mm),
            min_dice=float(min_dice),
            min_jacobian=float(min_jacobian),
            seed=int(seed),
        )


def _affine(sitk, fixed: _Working, moving: _Working, *, bins, sampling, iterations, seed):
    """Affine stage: lungs' centres of mass aligned, then Mattes mutual information inside the baseline's widened
    lungs on two levels (working grid halved, then as is); returns the transform and the final metric value.

    It runs on one thread whatever the thread limit: Mattes mutual information adds each thread's share of its
    joint-histogram derivative into one sum under a lock, in the order the threads arrive, so with two or more
    threads the sums differ in their last bits from run to run and with the number of threads, and the optimiser
    then takes another path (a voxel or two of the change map apart). The random samples depend on ``seed``
    alone. On one thread the affine stage gives the same transform on every run, machine and executor; it is a
    small share of the registration's time (docs/registration.md)."""
    init = sitk.CenteredTransformInitializer(
        fixed.mask, moving.mask, sitk.AffineTransform(3), sitk.CenteredTransformInitializerFilter.MOMENTS
    )
    reg = sitk.ImageRegistrationMethod()
    reg.SetNumberOfThreads(1)
    reg.SetNumberOfWorkUnits(1)
    reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=bins)
    reg.SetMetricFixedMask(fixed.keep)
    reg.SetMetricSamplingStrategy(reg.RANDOM)
    reg.SetMetricSamplingPercentage(sampling, seed)
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetShrinkFactorsPerLevel([2, 1])
    reg.SetSmoothingSigmasPerLevel([1, 0])
    reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOff()
    reg.SetOptimizerAsRegularStepGradientDescent(
        learningRate=4.0,
        minStep=0.01,
        numberOfIterations=iterations,
        relaxationFactor=0.8,
        gradientMagnitudeTolerance=1e-8,
    )
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetInitialTransform(init, inPlace=True)
    reg.Execute(fixed.hu, moving.hu)
    return sitk.AffineTransform(init), float(reg.GetMetricValue())


def _demons(sitk, fixed: _Working, moving: _Working, affine, *, clip_hu, iterations, smoothing_mm, field_mm):
    """Deformable stage: symmetric-forces demons on the follow-up already moved by ``affine``, both images set to
    ``clip_hu`` outside their (widened) lungs, on the working grid halved and then as is; the total field is
    smoothed by a Gaussian of ``smoothing_mm`` after every iteration. Returns the field (baseline point -> point
    given to ``affine``) as a DisplacementFieldTransform on a grid of about ``field_mm``.

    Each level runs its full number of iterations (no stop on a small change of the field): the change is a sum
    over threads whose last bits depend on their number, and a stop decided on it would make the result depend
    on the machine. Every other step of the demons is computed voxel by voxel, the same on any number of threads."""
    f_img = fixed.hu
    moved = sitk.Resample(moving.hu, f_img, affine, sitk.sitkLinear, float(clip_hu), sitk.sitkFloat32)
    moved_keep = sitk.Resample(moving.keep, f_img, affine, sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    fixed_masked = sitk.Mask(f_img, fixed.keep, float(clip_hu))
    moved_masked = sitk.Mask(moved, moved_keep, float(clip_hu))
    field = None
    for shrink, n in zip((2, 1), iterations):
        fixed_l = sitk.BinShrink(fixed_masked, [shrink] * 3) if shrink > 1 else fixed_masked
        moved_l = sitk.BinShrink(moved_masked, [shrink] * 3) if shrink > 1 else moved_masked
        if field is None:
            field = sitk.Image(fixed_l.GetSize(), sitk.sitkVectorFloat64)
            field.CopyInformation(fixed_l)
        else:
            field = sitk.Resample(field, fixed_l, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkVectorFloat64)
        if n == 0:
            continue
        demons = sitk.FastSymmetricForcesDemonsRegistrationFilter()
        demons.SetNumberOfIterations(n)
        demons.SetMaximumRMSError(0.0)
        demons.SetSmoothDisplacementField(True)
        demons.SetStandardDeviations([smoothing_mm / s for s in fixed_l.GetSpacing()])  # voxels, per axis
        field = demons.Execute(fixed_l, moved_l, field)
    # kept on a coarser grid covering the baseline volume: the field is smooth on the scale of ``smoothing_mm``
    size = f_img.GetSize()
    spacing = f_img.GetSpacing()
    factors = [max(1, round(field_mm / s)) for s in spacing]
    coarse_spacing = [s * k for s, k in zip(spacing, factors)]
    coarse_size = [int(np.ceil((n - 1) * s / c)) + 2 for n, s, c in zip(size, spacing, coarse_spacing)]
    origin = f_img.TransformContinuousIndexToPhysicalPoint([-(k - 1) / 2.0 for k in factors])  # first sample
    ref = sitk.Image(coarse_size, sitk.sitkUInt8)
    ref.SetSpacing(coarse_spacing)
    ref.SetOrigin(origin)
    ref.SetDirection(f_img.GetDirection())
    coarse = sitk.Resample(field, ref, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkVectorFloat64)
    return sitk.DisplacementFieldTransform(coarse)


def _register(
    fixed_scan: tuple,
    moving_scan: tuple,
    *,
    grid_mm,
    clip_hu,
    mask_margin_mm,
    histogram_bins,
    sampling,
    affine_iterations,
    demons_iterations,
    smoothing_mm,
    field_mm,
    min_dice,
    min_jacobian,
    seed,
) -> Registration:
    sitk = parallel.simpleitk()
    seconds = {}
    t0 = time.perf_counter()
    # each scan as (HU, lung labels, its Grid, opacity labels or None)
    grid = {"grid_mm": grid_mm, "clip_hu": clip_hu, "margin_mm": mask_margin_mm}
    f = _working(sitk, *fixed_scan, **grid)
    m = _working(sitk, *moving_scan, **grid)
    fixed = fixed_scan[2]
    qc: dict = {"failed": False, "reason": ""}
    affine = sitk.AffineTransform(3)
    deformable = None
    try:
        affine, qc["metric_affine"] = _affine(
            sitk, f, m, bins=histogram_bins, sampling=sampling, iterations=affine_iterations, seed=seed
        )
        seconds["affine"] = time.perf_counter() - t0
        t1 = time.perf_counter()
        deformable = _demons(
            sitk, f, m, affine, clip_hu=clip_hu, iterations=demons_iterations, smoothing_mm=smoothing_mm,
            field_mm=field_mm,
        )
        seconds["deformable"] = time.perf_counter() - t1
    except RuntimeError as exc:
        qc.update(failed=True, reason=f"registration stopped: {_last_line(exc)}")
    if deformable is None:  # an identity field, so that the transform is complete and can be saved
        empty = sitk.Image([2, 2, 2], sitk.sitkVectorFloat64)
        empty.SetOrigin(f.hu.GetOrigin())
        empty.SetSpacing([(n - 1) * s for n, s in zip(f.hu.GetSize(), f.hu.GetSpacing())])
        empty.SetDirection(f.hu.GetDirection())
        deformable = sitk.DisplacementFieldTransform(empty)

    t2 = time.perf_counter()
    assessed = _assess(sitk, _compose(affine, deformable), f.lung, m.lung, min_dice, min_jacobian)
    affine_only = sitk.Resample(m.lung, f.lung, affine, sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    assessed["dice_affine"] = _dice(
        sitk.GetArrayViewFromImage(f.lung) >= 0.5, sitk.GetArrayViewFromImage(affine_only) >= 0.5
    )
    seconds["qc"] = time.perf_counter() - t2
    if qc["failed"]:
        assessed.update(failed=True, reason=qc["reason"])
    qc.update(assessed)
    qc["seconds"] = {k: round(v, 2) for k, v in seconds.items()}
    return Registration(affine=affine, deformable=deformable, fixed=fixed, qc=qc)


def assess(
    transform,
    fixed_lungs: np.ndarray,
    fixed: Grid,
    moving_lungs: np.ndarray,
    moving: Grid,
    *,
    grid_mm: float = 2.5,
    min_dice: float = 0.9,
    min_jacobian: float = 0.0,
) -> dict:
    """Registration QC of ``transform`` (baseline point -> follow-up point), as :func:`register` reports it.

    Parameters
    ----------
    transform : SimpleITK transform (e.g. :func:`load_transform`).
    fixed_lungs, moving_lungs : lung labels of the baseline and the follow-up on their grids ``fixed``, ``moving``.
    grid_mm, min_dice, min_jacobian : as for :func:`register`.

    Returns
    -------
    dict with ``dice``, ``jacobian_min``, ``jacobian_max``, ``jacobian_p01``, ``jacobian_p99``, ``folded_pct``,
    ``failed`` and ``reason`` (see :class:`Registration`), computed on the working grid of about ``grid_mm``.
    """
    sitk = parallel.simpleitk()
    f_lung = _lung_fraction(sitk, fixed_lungs, fixed, grid_mm)
    m_lung = _lung_fraction(sitk, moving_lungs, moving, grid_mm)
    return _assess(sitk, transform, f_lung, m_lung, min_dice, min_jacobian)


def _assess(sitk, transform, f_lung, m_lung, min_dice: float, min_jacobian: float) -> dict:
    """QC of ``transform`` from the lung fractions of both scans on their working grids (see :func:`assess`)."""
    inside = sitk.GetArrayViewFromImage(f_lung) >= 0.5
    warped = sitk.Resample(m_lung, f_lung, transform, sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    qc = {"dice": _dice(inside, sitk.GetArrayViewFromImage(warped) >= 0.5)}
    qc.update(_jacobian(sitk, transform, f_lung, inside, min_jacobian))
    reasons = []
    if not qc["dice"] >= min_dice:
        reasons.append(f"lung masks overlap with Dice {qc['dice']:.3f} after registration (expected >= {min_dice:g})")
    if not qc["jacobian_min"] > min_jacobian:
        reasons.append(
            f"the transform folds space inside the lungs (Jacobian determinant down to {qc['jacobian_min']:.3f}, "
            f"<= {min_jacobian:g} in {qc['folded_pct']:.2f} % of the lung; expected > {min_jacobian:g})"
        )
    qc["failed"] = bool(reasons)
    qc["reason"] = "; ".join(reasons)
    return qc


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(np.count_nonzero(a)) + int(np.count_nonzero(b))
    return 2.0 * int(np.count_nonzero(a & b)) / total if total else float("nan")


def _jacobian(sitk, transform, reference, inside: np.ndarray, min_jacobian: float = 0.0) -> dict:
    """Jacobian determinant statistics of ``transform`` over the ``inside`` voxels of the ``reference`` grid."""
    f = sitk.TransformToDisplacementFieldFilter()
    f.SetReferenceImage(reference)
    f.SetOutputPixelType(sitk.sitkVectorFloat64)
    det = sitk.DisplacementFieldJacobianDeterminant(f.Execute(transform))
    values = sitk.GetArrayViewFromImage(det)[inside]
    if values.size == 0:
        nan = float("nan")
        return dict.fromkeys(("jacobian_min", "jacobian_max", "jacobian_p01", "jacobian_p99", "folded_pct"), nan)
    p01, p99 = np.percentile(values, [1, 99])
    return {
        "jacobian_min": float(values.min()),
        "jacobian_max": float(values.max()),
        "jacobian_p01": float(p01),
        "jacobian_p99": float(p99),
        "folded_pct": 100.0 * float(np.count_nonzero(values <= min_jacobian)) / values.size,
    }


def warp_follow_up(
    registration: Registration,
    moving: Grid,
    hu: np.ndarray,
    lungs: np.ndarray,
    opacity: np.ndarray,
    *,
    outside_hu: int = -1024,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The follow-up's HU, lung labels and opacity labels on the baseline grid.

    Parameters
    ----------
    registration : what :func:`register` returned for this pair.
    moving : the follow-up's :class:`Grid`.
    hu : (z, y, x) int16 HU of the follow-up; resampled trilinearly (values truncated to int16). None: not
        resampled (None returned in its place), e.g. when only a few planes are wanted (:meth:`Registration.warp`
        with ``region``).
    lungs : (z, y, x) uint8 lung labels (0-3) of the follow-up; resampled by nearest neighbour.
    opacity : (z, y, x) uint8 opacity labels (0-3, :func:`lungtrial.imaging.metrics.opacity_labels`, or 0-7 with
        the lesions' reach of :func:`lungtrial.imaging.change.lesion_reach`); nearest neighbour.
    outside_hu : HU of baseline voxels outside the follow-up's volume (their labels are 0).

    Returns
    -------
    (hu, lungs, opacity) on the baseline grid: int16, uint8, uint8.
    """
    for name, arr in (("lungs", lungs), ("opacity", opacity)):
        if tuple(np.shape(arr)) != moving.shape:
            raise ValueError(f"{name}: expected shape {moving.shape} (the follow-up grid), got {np.shape(arr)}")
    lungs = np.asarray(lungs)
    opacity = np.asarray(opacity)
    if (lungs.size and lungs.max() > 3) or (opacity.size and opacity.max() > 7):
        raise ValueError("lungs and opacity: expected labels 0-3 and 0-7")
    packed = (lungs.astype(np.uint8) << 3) | opacity.astype(np.uint8)  # both labels in one nearest-neighbour pass
    warped_labels = registration.warp(packed, moving, kind="nearest", default=0)
    del packed
    warped_hu = None
    if hu is not None:
        warped_hu = registration.warp(np.asarray(hu, dtype=np.int16), moving, kind="linear", default=outside_hu)
    return warped_hu, warped_labels >> 3, warped_labels & 7
