"""Grid, block-averaging and morphology helpers of the lung segmentation (coarse grid where topology is decided;
full-resolution passes in slabs on two threads). Conventions: (z, y, x) arrays, spacing (dz, dy, dx) mm."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from lungtrial import parallel
from lungtrial.imaging._arrays import PLANE4

from ._morphology import _box_parts, _dilate, _erode, _grey_grow, _open  # noqa: F401 - the stages import them from here

AIR_HU = -500.0  # half-way between aerated lung (about -850 HU) and soft tissue (about 40 HU)
BONE_HU = 150.0  # denser than any consolidation
HAZY_HU = -250.0  # ground glass stays below; fat (about -100 HU) and every solid tissue lie above
FAT_FLOOR_HU = -80.0  # consolidation grown beyond the lung's outline is denser than this (fat: about -100 HU)
RIGHT, LEFT = 1, 2
COARSE_MM = 3.5  # voxel size of the coarse grid where topology is decided
BLOB_GRID_MM = 2.0  # voxel size of the grid where blob-like opacities are told from thin structures
_AERATED_HU = -700.0  # default upper bound of aerated lung in opacity_exclusion
_HULL_DIRECTIONS = 128  # sides of the discrete-orientation convex hull of a plane
_FAR = 1.0e6  # mm; a spacing that keeps distance transforms within planes

# in-plane (axial) connectivity structures for 3D arrays: each plane (axis 0) is labelled on its own
_PLANE4 = PLANE4
_PLANE8 = np.zeros((3, 3, 3), dtype=bool)
_PLANE8[1] = True
_CROSS = ndimage.generate_binary_structure(3, 1)


def _check(hu: np.ndarray, spacing) -> tuple[np.ndarray, np.ndarray]:
    hu = np.asarray(hu)
    if hu.ndim != 3:
        raise ValueError(f"hu must be a 3D (z, y, x) array, got shape {hu.shape}")
    sp = np.asarray(spacing, dtype=float)
    if sp.shape != (3,) or not np.all(np.isfinite(sp)) or np.any(sp <= 0):
        raise ValueError(f"spacing must be three positive numbers (dz, dy, dx) in mm, got {spacing!r}")
    return hu, sp


def _block_factors(spacing: np.ndarray, target_mm: float) -> np.ndarray:
    """Integer block size per axis so that blocks are about ``target_mm`` wide (nearest integer)."""
    return np.maximum(1, np.round(target_mm / np.asarray(spacing, dtype=float))).astype(int)


def _coarse_factors(spacing: np.ndarray, target_mm: float) -> np.ndarray:
    """Block size per axis of the coarse grid: of the two integers around ``target_mm / spacing``, the one whose
    block width is nearer to ``target_mm`` by ratio, unless the larger block would exceed ``1.25 * target_mm``
    (0.78 mm pixels give 3.9 mm rather than 3.1 mm blocks: 36 % fewer coarse voxels)."""
    ratio = target_mm / np.asarray(spacing, dtype=float)
    lo = np.maximum(1, np.floor(ratio))
    hi = lo + 1
    pick_hi = (np.log(hi / ratio) < np.log(ratio / lo)) & (hi * spacing <= 1.25 * target_mm)
    return np.where(pick_hi, hi, lo).astype(int)


def _sum_type(dtype, block_voxels: int):
    """Accumulator type of :func:`_block_sum`: counts of a bool volume fit in 8 or 16 bits (narrower sums read less
    memory); int32 for integers, float64 for floats."""
    if np.dtype(dtype).kind == "f":
        return np.float64
    if np.dtype(dtype) == bool and block_voxels < 65535:
        return np.uint8 if block_voxels < 255 else np.uint16
    return np.int32


def _slab_sum(slab: np.ndarray, fy: int, fx: int, rows: np.ndarray, out: np.ndarray) -> None:
    """Add the block sums of one slab ``(k, ny, nx)`` to the coarse plane ``out`` (``(ceil(ny / fy), ceil(nx / fx))``).

    The slab is summed over its first axis (contiguous rows), then rows and columns are added by strided views.
    ``rows`` is scratch of shape ``(ceil(ny / fy) * fy, nx)`` in the accumulator type, zero beyond row ``ny``.
    """
    ny, nx = slab.shape[1:]
    if rows.dtype.kind == "f":
        np.sum(slab, axis=0, dtype=rows.dtype, out=rows[:ny])
        plane = rows.reshape(out.shape[0], fy, nx).sum(axis=1, dtype=rows.dtype)
    else:  # exact integer sums: slice by slice and row by row is faster than numpy's reductions over an axis
        acc = rows[:ny]
        if slab.shape[0] == 1:
            np.copyto(acc, slab[0])
        else:
            np.add(slab[0], slab[1], out=acc, dtype=rows.dtype)
            for k in range(2, slab.shape[0]):
                np.add(acc, slab[k], out=acc, dtype=rows.dtype)
        plane = rows[0::fy].copy()
        for k in range(1, fy):
            plane += rows[k::fy]
    for k in range(fx):
        part = plane[:, k::fx]
        out[:, : part.shape[1]] += part


def _block_sum(vol: np.ndarray, factors) -> np.ndarray:
    """Block sums of ``vol`` (int32, float64 for float input; counts of a bool volume in uint8/uint16): edge blocks
    hold the voxels they cover.

    One slab of ``fz`` slices at a time (:func:`_slab_sum`), so no volume-sized temporary is made and the volume is
    read once; two threads take half of the slabs each.
    """
    fz, fy, fx = (int(f) for f in factors)
    nz, ny, nx = vol.shape
    ncy, ncx = -(-ny // fy), -(-nx // fx)
    acc_type = _sum_type(vol.dtype, fz * fy * fx)
    acc = np.zeros((-(-nz // fz), ncy, ncx), dtype=acc_type)

    def slabs(czs: range) -> None:
        rows = np.zeros((ncy * fy, nx), dtype=acc_type)
        for cz in czs:
            _slab_sum(vol[cz * fz : (cz + 1) * fz], fy, fx, rows, acc[cz])

    parallel.in_halves(slabs, acc.shape[0])
    return acc


def _block_counts(shape, factors) -> np.ndarray:
    """Number of voxels of each block of :func:`_block_sum` (float32, coarse shape)."""
    out = np.ones((1, 1, 1), dtype=np.float32)
    for axis, (n, f) in enumerate(zip(shape, factors)):
        first = np.arange(-(-n // int(f))) * int(f)
        count = (np.minimum(first + int(f), n) - first).astype(np.float32)
        out = out * count.reshape([-1 if a == axis else 1 for a in range(3)])
    return out


def _block_reduce(vol: np.ndarray, factors) -> np.ndarray:
    """Block mean of ``vol`` as float32; edge blocks are averaged over the voxels they hold."""
    return _block_sum(vol, factors) / _block_counts(vol.shape, factors)


def _up2(plane: np.ndarray, fy: int, fx: int, ny: int, nx: int) -> np.ndarray:
    """Nearest-neighbour upsampling of one coarse plane to ``(ny, nx)`` (block replication)."""
    return np.repeat(np.repeat(plane, fy, axis=0)[:ny], fx, axis=1)[:, :nx]


def _ball(radius_mm: float, spacing: np.ndarray) -> np.ndarray:
    """Ellipsoidal structuring element of physical radius ``radius_mm`` on a grid of ``spacing`` (mm)."""
    r = np.maximum(0, np.floor(radius_mm / spacing + 1e-6)).astype(int)
    grids = np.ogrid[tuple(slice(-int(k), int(k) + 1) for k in r)]
    d2 = sum((g * s / radius_mm) ** 2 for g, s in zip(grids, spacing))
    return d2 <= 1.0 + 1e-9


def _bbox(mask: np.ndarray, margin=(0, 0, 0)) -> tuple[slice, ...]:
    """Bounding box of a non-empty mask grown by ``margin`` voxels per axis (clipped), as slices."""
    mask = np.asarray(mask)
    # one pass over the whole mask for the first axis, the other axes within its extent only
    first = np.flatnonzero(mask.reshape(mask.shape[0], -1).any(axis=1))
    rest = mask[first[0] : first[-1] + 1].any(axis=0)
    ranges = [first] + [
        np.flatnonzero(rest.any(axis=tuple(a for a in range(rest.ndim) if a != axis))) for axis in range(rest.ndim)
    ]
    sl = []
    for axis, idx in enumerate(ranges):
        m = int(margin[axis])
        sl.append(slice(max(0, int(idx[0]) - m), min(mask.shape[axis], int(idx[-1]) + 1 + m)))
    return tuple(sl)


def _edt(mask: np.ndarray, sampling) -> np.ndarray:
    """Distance (mm) of each non-zero voxel of ``mask`` to the nearest zero voxel (float32; 0 on zero voxels).

    SimpleITK's multi-threaded Maurer transform (exact, like ``scipy.ndimage.distance_transform_edt``).
    """
    sitk = parallel.simpleitk()

    img = sitk.GetImageFromArray(np.logical_not(mask).view(np.uint8))
    img.SetSpacing([float(s) for s in reversed(tuple(sampling))])
    dist = sitk.SignedMaurerDistanceMap(img, insideIsPositive=False, squaredDistance=False, useImageSpacing=True)
    out = sitk.GetArrayFromImage(dist)
    np.maximum(out, 0.0, out=out)
    return out


def _disk(radius_mm: float, pix) -> np.ndarray:
    """In-plane disk of pixel centres within ``radius_mm`` of the centre, as a (1, r, c) structuring element."""
    r = [int(np.floor(radius_mm / p + 1e-6)) for p in pix]
    gr, gc = np.ogrid[-r[0] : r[0] + 1, -r[1] : r[1] + 1]
    return ((gr * pix[0]) ** 2 + (gc * pix[1]) ** 2 <= radius_mm**2 + 1e-6)[None]


def _plane_grow(mask: np.ndarray, reach_mm: float, pix) -> np.ndarray:
    """Voxels within ``reach_mm`` (Euclidean, in their plane) of ``mask`` (bool)."""
    return _dilate(mask, _disk(reach_mm, pix))


def _plane_shrink(mask: np.ndarray, reach_mm: float, pix) -> np.ndarray:
    """Voxels of ``mask`` more than ``reach_mm`` (in their plane) from any voxel outside it (bool)."""
    return _erode(mask, _disk(reach_mm, pix))


def _robust_sd(values: np.ndarray) -> float:
    """1.4826 times the median absolute deviation (the standard deviation of normal data; inf when empty)."""
    if values.size == 0:
        return float("inf")
    values = values.astype(np.float64)
    return 1.4826 * float(np.median(np.abs(values - np.median(values))))


def _box3(a: np.ndarray) -> np.ndarray:
    """Sums over the 3 x 3 x 3 box around each voxel (zero outside the array), in ``a``'s dtype (a new array)."""
    out = a
    for axis in range(a.ndim):
        n = a.shape[axis]
        lo, hi = [slice(None)] * a.ndim, [slice(None)] * a.ndim
        lo[axis], hi[axis] = slice(0, n - 1), slice(1, n)
        nxt = out.copy()
        nxt[tuple(hi)] += out[tuple(lo)]
        nxt[tuple(lo)] += out[tuple(hi)]
        out = nxt
    return out


def _tissue_mean(hu: np.ndarray, tissue: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean HU (float32) of the ``tissue`` voxels in the 3 x 3 x 3 box around each voxel, and how many of the box's
    27 voxels they are (uint8). The box mean lowers the noise of single voxels about five-fold while a planar edge
    between two tissues still crosses half-way between them where it did."""
    count = _box3(tissue.view(np.uint8))
    total = _box3(np.multiply(hu, tissue, dtype=np.float32))
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = total / count
    return mean, count


class BlockMask:
    """A coarse boolean mask read as the full-resolution mask it stands for (each coarse block covers ``factors``
    voxels; ``shape`` is the full volume's): ``mask[index]`` with up to three integers or slices gives the
    full-resolution values there, without making the whole volume; ``numpy.asarray(mask)`` makes it."""

    def __init__(self, coarse: np.ndarray, factors, shape):
        self.coarse = np.asarray(coarse, dtype=bool)
        self.factors = tuple(int(f) for f in factors)
        self.shape = tuple(int(n) for n in shape)

    def __getitem__(self, index) -> np.ndarray:
        index = index if isinstance(index, tuple) else (index,)
        if len(index) > 3 or not all(isinstance(i, (int, np.integer, slice)) for i in index):
            raise IndexError(f"a BlockMask takes up to three integers or slices, got {index!r}")
        index = index + (slice(None),) * (3 - len(index))
        picks = [np.arange(n)[i] // f for i, n, f in zip(index, self.shape, self.factors)]
        kept = [p.size for p in picks if p.ndim]
        return self.coarse[np.ix_(*[np.atleast_1d(p) for p in picks])].reshape(kept)

    def full(self) -> np.ndarray:
        """The whole mask at full resolution, (z, y, x) bool."""
        return self[:, :, :]

    def __array__(self, dtype=None, copy=None):
        full = self.full()
        return full if dtype is None else full.astype(dtype)
