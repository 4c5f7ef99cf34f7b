"""Lung segmentation (right/left labels, airways excluded, lesions repaired), vessel and opacity-exclusion masks.

Conventions (see ``docs/architecture.md``): volumes are ``(z, y, x)`` arrays in HU, ``spacing`` is ``(dz, dy, dx)``
in mm, x increases to the patient's left, y to posterior and z to superior, so the right lung lies at low x.

Method of :func:`segment_lungs` (coarse to fine; all thresholds are physical HU values or mm, no scanner- or
phantom-specific numbers). All topology work happens on a block-averaged grid of about 3.5 mm voxels (``coarse``,
20-60 times fewer voxels than the scan); the full-resolution volume is read once to build that grid and once more,
only in the blocks of the lungs and of their boundary, to refine the boundary. Morphology on the coarse grid uses
separable shifted logical operations (structuring elements decomposed into centred boxes), distance maps use
SimpleITK's multi-threaded Maurer transform, and the independent plane stacks of the repair and the full-resolution
passes run on two threads (numpy releases the GIL in its loops); fewer under :func:`lungtrial.parallel.limit`.

1. The body is the largest connected region denser than -500 HU, its holes filled slice by slice; air inside it
   (< -500 HU) is lung, airway or bowel gas. Outside air, the table and the air inside a hollow table are thereby
   excluded. Where the field of view cuts the body, a lung may run into the image edge: in those slices the air
   inside the body's convex hull that reaches the edge is inside the body too.
2. The trachea is found as a small, medial air region in the most superior slices and followed caudally through
   small air regions that are separate from the lungs in the axial plane (trachea, main bronchi in the
   mediastinum), also through the slice where the carina's spur narrows a bronchus to a pixel or two on the
   coarse grid. Where a main bronchus merges with the lung in the axial plane (thick slices, the coarse grid),
   it is followed on as a tube of air darker than half-way between the trachea's lumen and the lung, for at
   most 25 mm below the carina (the hilum; intrapulmonary bronchi are lung). They are removed (the tube after
   the lungs are picked, so lung that reaches the rest only around it stays lung).
3. Ground glass: hazy voxels (-500 to -250 HU; no solid tissue, not even fat, is that light) that hold a
   3 x 3 x 3 cross of coarse voxels join the air: the partial-volume band along the chest wall, the mediastinum
   and the diaphragm is thinner than that. A lung that is almost all ground glass is thereby still found.
4. The largest remaining region is one lung, or both lungs joined at the anterior/posterior junction; joined
   lungs are split by erosion and nearest-seed assignment. The other lung is the largest region on the other
   side of the body's midline reaching above the first lung's centre (bowel gas lies below the diaphragm). The
   hazy edges of each lung's ground glass are added.
5. Lesion repair, per lung, in all axial, coronal and sagittal planes at once (vectorised): holes enclosed by the
   lung (vessels, lesions; axial only) are filled, and pockets between the lung and its convex hull (a 128-sided
   discrete-orientation hull per plane) are added when their chord runs along the chest wall (subpleural ground
   glass and consolidation, also posterior-basal lesions that fill the whole back of a slice). A pocket only one
   coarse voxel thick along the hull's outline is the staircase of a convex surface on the coarse grid, not a
   lesion, and is left to the full-resolution threshold. Depth below the skin is measured within the plane; the
   in-plane borders of the field of view count as outside (a body cut by the image has its skin just beyond, not
   on the far side of the body). The heart and the mediastinum lie between the lungs: what an axial plane shows
   as a pocket on the lung's medial side is never added by the chord rule of a coronal or sagittal plane (where
   the heart's surface under the anterior chest wall, or the mediastinum, can look like a chest wall pocket).
   Pockets whose chord dives into the body (mediastinum,
   heart, spine, liver dome) are not added, except what lies within 6 mm of the lung's own ground glass where it
   lines a quarter of the pocket, and within 20 mm where it lines half of a pocket at most 20 mm deep
   (consolidation inside its ground glass, also against the mediastinum). Both need lung at most 40 mm below (the
   liver under the dome has none), except the 6 mm rule in axial planes. Bone (> 150 HU) and the airway are never
   added.
6. Consolidation beyond the outline (filling the posterior costophrenic recess, lining the mediastinum, the
   spine or the diaphragm) is told from the organs it abuts by density, where it is measurably less dense than
   them (partly aerated consolidation): each lung's thick consolidation (at least 2 ml; median ``C``) is grown,
   at most 60 mm, through adjacent tissue lighter than half-way to the median of the tissue around the lungs
   (``W``) and not as light as fat, provided ``W - C`` >= 40 HU; first, the lung's non-aerated outer voxels
   nearer to ``W`` than three quarters of the way (wall that a pocket rule took in) are peeled off, at most 20 mm
   deep, and ``C`` is measured again on the consolidation's interior. Tissue is judged by its mean HU over a
   3 x 3 x 3 box of coarse voxels (fat, bone and air left out), not voxel by voxel: where the coarse grid is
   close to the scan's own, soft tissue noise (10-40 HU) would otherwise let single wall voxels pass; the growth
   needs soft tissue in a third of that box (at the consolidation's face against aerated lung a third of it is
   air and another third the partial-volume layer lighter than fat). The growth runs through tissue a quarter of
   the way from ``C`` to ``W`` and takes tissue up to half-way only as the one voxel next to it (the blurred edge;
   no fingers into the wall). Without such contrast nothing is added or removed; lesion-free lungs
   have no consolidation and are not touched.
7. The boundary is refined at full resolution within one coarse voxel of the coarse boundary, with the
   half-maximum threshold between the measured aerated parenchyma and the tissue around the lungs (the edge of a
   blurred step lies where the profile crosses half-way; about -400 HU for -850 HU lung against +40 HU muscle).
   Next to ground glass and repaired lesions the edge lies half-way between ground glass and the wall instead:
   there voxels lighter than -250 HU (no solid tissue is) are lung too. Ground glass and the repaired pockets keep
   their coarse extent, except the outer layer of consolidation grown in step 6 and the tissue next to it (away
   from aerated lung), where a coarse voxel holds several of the scan's voxels (where it holds one, the coarse
   decision on box-averaged HU stands): there each voxel is judged at ``(C + W) / 2`` by the mean HU of the soft
   tissue in a box about one coarse voxel wide around it (fat, bone and air left out; a planar edge still crosses
   half-way where it did), not by its own HU, which the scan's noise would decide (consolidation 35 HU lighter
   than the wall under 40 HU noise: a fifth of its outer layer lost, as many wall voxels taken, a ragged edge).
   Where that mean lies within half the noise of a coarse voxel's HU (robust standard deviation of the wall's
   soft tissue or of the consolidation, measured in step 6) of the limit, or soft tissue fills less than half of
   the box, the coarse decision stands; voxels lighter than -250 HU are lung. Only these blocks are read for it.

Known limits: consolidation against the mediastinum, resting on the diaphragm dome or filling the posterior
costophrenic recess, as dense as the tissue it abuts (``W - C`` < 40 HU, e.g. unenhanced liver) and with no
ground glass lining it, cannot be told from the mediastinum or the liver and is left out where the lung's outline
does not reveal it; step 6 also needs some of the lung's consolidation inside the outline to start from (2 ml of
it thick enough to hold an in-plane cross of coarse voxels). A pleural effusion less dense than half-way between the
consolidation and the wall would be taken in by step 6 where it touches the consolidation; so is the
partial-volume edge (one or two voxels) of a fat pad that touches grown consolidation. The main bronchi are cut
out on the coarse grid only: where a coarse voxel holds several of the scan's pixels, the lumen in the coarse
voxels around the tube (lighter than half-way on average) stays lung at full resolution; and a main bronchus
that runs more than 25 mm below the carina keeps its distal end in the lung (on the demo trial at most 2.3 ml of
air darker than -900 HU outside the true lungs near the midline is left, 0.8 ml median on the 5 mm scans, against
up to 6.8 ml, 4.6 ml median, before the tubes were followed). Under strong
soft tissue noise (35-40 HU, correlated over 1.5-2 mm) the edge of grown consolidation is decided less well: on
the analytic chests of ``tests/test_segment_noise.py`` (1.25-3 mm slices, 1.25-2.4 mm pixels) 93-98 % of recess
and paravertebral consolidation is kept, against about 99 % without noise. ``W`` and ``C`` are medians of single
coarse voxels: under such noise the ungrown consolidation in the wall's shell pulls ``W`` 4-6 HU towards ``C``
(without noise the median stays on the wall's own value) and ``C`` varies by a few HU, so ``L`` can err by 5 HU
(then 7-9 % of a lesion is lost).

Known cost of the coarse grid: lesions thinner than about two coarse voxels along the pleura are repaired less
completely than on a 2 mm grid (on the 10 % lesion scans of ``benchmarks/bench_accuracy.py`` the opacity reads up
to 0.4 pp lower than with a 2 mm grid, while Dice and the lesion-free volumes improve).

:func:`segment_vessels` and :func:`opacity_exclusion` share the lungs' bounding box and blob grid (a one-entry cache
held by weak references, so it never keeps a volume alive). :func:`segment_vessels` reads the lung box once, slab by
slab while each slab is in cache: it counts the dense voxels of both thresholds on the blob grid and writes
:func:`opacity_exclusion`'s dense voxels (default threshold) straight into the array that function will return;
vessel candidates (few) are then tested voxel by voxel, so neither function makes a box-sized temporary.

Volume-sized outputs live in ordinary anonymous pages (:func:`lungtrial.memory.new_volume`): numpy asks for transparent huge pages
for large arrays, and faulting those in is slow and erratic on some hosts; the lung labels' pages are mapped on a
second thread while the coarse stage runs, the distance maps of the repair are computed there too.
"""

from __future__ import annotations

import functools
import weakref

import numpy as np
from scipy import ndimage

from lungtrial import parallel
from lungtrial.memory import new_volume

__all__ = ["segment_lungs", "segment_vessels", "opacity_exclusion"]

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
_PLANE4 = np.zeros((3, 3, 3), dtype=bool)
_PLANE4[1] = ndimage.generate_binary_structure(2, 1)
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


def _in_halves(work, n: int, min_items: int = 8) -> None:
    """Run ``work(range)`` over ``range(n)`` split in two halves on two threads (numpy releases the GIL in its
    loops); one call when ``n`` is small."""
    if n < min_items or parallel.threads() < 2:
        work(range(n))
        return
    half = n // 2
    with parallel.pool(2) as pool:
        for f in [pool.submit(work, range(0, half)), pool.submit(work, range(half, n))]:
            f.result()


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

    _in_halves(slabs, acc.shape[0])
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


def _box_parts(footprint: np.ndarray) -> list[tuple[int, ...]]:
    """The maximal centred boxes (half-widths per axis) whose union is the symmetric ``footprint``.

    Raises ValueError if the footprint is not such a union (every ball, disk, cross or box is).
    """
    fp = np.asarray(footprint, dtype=bool)
    return list(_box_parts_cached(fp.shape, fp.tobytes()))


@functools.lru_cache(maxsize=64)
def _box_parts_cached(shape: tuple[int, ...], data: bytes) -> tuple[tuple[int, ...], ...]:
    fp = np.frombuffer(data, dtype=bool).reshape(shape)
    r = [s // 2 for s in fp.shape]
    inside = []
    for half in np.ndindex(*[k + 1 for k in r]):
        if fp[tuple(slice(c - h, c + h + 1) for c, h in zip(r, half))].all():
            inside.append(tuple(int(h) for h in half))
    parts = [h for h in inside if not any(o != h and all(x >= y for x, y in zip(o, h)) for o in inside)]
    cover = np.zeros_like(fp)
    for half in parts:
        cover[tuple(slice(c - h, c + h + 1) for c, h in zip(r, half))] = True
    if not np.array_equal(cover, fp):
        raise ValueError("structuring element is not a union of centred boxes")
    return tuple(parts)


def _line_filter(mask: np.ndarray, axis: int, half: int, grow: bool) -> np.ndarray:
    """Dilation (``grow``) or erosion of a bool mask by a line of ``2 * half + 1`` voxels along ``axis`` (a new
    array; outside the array is background). Shifted logical and/or: much faster than scipy's binary morphology
    and 1-D rank filters on these small grids."""
    out = mask.copy()
    n = mask.shape[axis]
    for k in range(1, half + 1):
        a, b = [slice(None)] * mask.ndim, [slice(None)] * mask.ndim
        a[axis], b[axis] = slice(k, None), slice(None, max(0, n - k))
        if grow:
            out[tuple(a)] |= mask[tuple(b)]
            out[tuple(b)] |= mask[tuple(a)]
        else:
            out[tuple(a)] &= mask[tuple(b)]
            out[tuple(b)] &= mask[tuple(a)]
    if not grow and half > 0:  # the line reaches beyond the array there
        for edge in (slice(0, min(half, n)), slice(max(0, n - half), n)):
            sl = [slice(None)] * mask.ndim
            sl[axis] = edge
            out[tuple(sl)] = False
    return out


def _box_op(mask: np.ndarray, half, grow: bool) -> np.ndarray:
    out = mask
    for axis, h in enumerate(half):
        if h:
            out = _line_filter(out, axis, int(h), grow)
    return out if out is not mask else mask.copy()


def _dilate(mask: np.ndarray, footprint: np.ndarray, iterations: int = 1, within: np.ndarray | None = None):
    """Binary dilation by a union-of-boxes ``footprint`` (see :func:`_box_parts`); with ``within``, each step
    only adds voxels of ``within`` (as scipy's ``mask``)."""
    parts = _box_parts(footprint)
    out = np.asarray(mask, dtype=bool)
    for _ in range(iterations):
        grown = np.zeros(out.shape, dtype=bool)
        for half in parts:
            grown |= _box_op(out, half, grow=True)
        out = grown if within is None else out | (grown & within)
    return out


def _erode(mask: np.ndarray, footprint: np.ndarray) -> np.ndarray:
    """Binary erosion by a union-of-boxes ``footprint``; outside the array is background."""
    out = None
    for half in _box_parts(footprint):
        e = _box_op(np.asarray(mask, dtype=bool), half, grow=False)
        out = e if out is None else out & e
    return out


def _open(mask: np.ndarray, footprint: np.ndarray) -> np.ndarray:
    """Binary opening by a union-of-boxes ``footprint``."""
    return _dilate(_erode(mask, footprint), footprint)


def _grey_grow(labels: np.ndarray, footprint: np.ndarray) -> np.ndarray:
    """Grey dilation (maximum over ``footprint``, 0 outside the array) of a non-negative label array."""
    out = np.zeros_like(labels)
    for half in _box_parts(footprint):
        part = labels
        for axis, h in enumerate(half):
            n = part.shape[axis]
            for _ in range(int(h)):
                nxt = part.copy()
                a, b = [slice(None)] * part.ndim, [slice(None)] * part.ndim
                a[axis], b[axis] = slice(1, None), slice(None, n - 1)
                np.maximum(nxt[tuple(a)], part[tuple(b)], out=nxt[tuple(a)])
                np.maximum(nxt[tuple(b)], part[tuple(a)], out=nxt[tuple(b)])
                part = nxt
        np.maximum(out, part, out=out)
    return out


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


def _fill_holes_2d(mask: np.ndarray) -> np.ndarray:
    """``mask`` with the holes of each axial slice filled (background not 4-connected to the slice's border)."""
    lab, n = ndimage.label(~mask, structure=_PLANE4)
    border = np.zeros(n + 1, dtype=bool)
    for edge in (lab[:, 0, :], lab[:, -1, :], lab[:, :, 0], lab[:, :, -1]):
        border[edge] = True
    border[0] = True
    return mask | ~border[lab]


def _body(dense: np.ndarray) -> np.ndarray:
    """Largest dense connected region with its holes filled slice by slice (bool, coarse grid).

    Where the field of view cuts the body (a reconstruction targeted on the lungs, a large patient), a lung may
    run into the image edge, and then it is not a hole. In the slices where the body touches the edge, the air
    inside the body's convex hull that reaches the edge there is added too (the cut lung; the air between an arm
    and the chest wall does not reach the edge and is left alone).
    """
    lab, n = ndimage.label(dense)
    if n == 0:
        raise ValueError("no body found: no voxel is denser than -500 HU")
    sizes = np.bincount(lab.ravel())
    sizes[0] = 0
    body = _fill_holes_2d(lab == int(np.argmax(sizes)))
    edge = np.zeros(body.shape[1:], dtype=bool)
    edge[0, :] = edge[-1, :] = edge[:, 0] = edge[:, -1] = True
    zs = np.flatnonzero((body & edge).any(axis=(1, 2)))
    if zs.size:
        cut = body[zs]
        gap = _hull_planes(cut, (1.0, 1.0)) & ~cut  # (convexity does not depend on the pixel's aspect)
        pieces, count = ndimage.label(gap, structure=_PLANE4)
        if count:
            reaches = np.zeros(count + 1, dtype=bool)
            reaches[pieces[:, edge]] = True
            reaches[0] = False
            cut |= reaches[pieces]
            body[zs] = cut
    return body


def _airways(inner_air: np.ndarray, body: np.ndarray, cspacing: np.ndarray) -> np.ndarray:
    """Trachea and extrapulmonary bronchi on the coarse grid (bool).

    Axial air regions are linked to those of the next caudal slice that they overlap once grown by 4 mm in the
    plane. The trachea is the largest medial air region (within 30 mm of the body's midline, 50-1500 mm^2) of the
    most superior 10 mm holding one; the airway grows caudally through regions of at most 1500 mm^2 that do not
    grow to more than twice the larger of the region above and its own parent (+ 100 mm^2): a bronchus that the
    carina's spur narrows for one slice is still followed. A bronchus stops where it merges with lung parenchyma
    in the axial plane (:func:`_bronchus_ends` follows it on from there).
    """
    dz, dy, dx = cspacing
    pix = dy * dx
    lab, n = ndimage.label(inner_air, structure=_PLANE4)
    if n == 0:
        return np.zeros_like(inner_air)
    idx = np.flatnonzero(lab)
    flat = lab.ravel()[idx]
    area = np.bincount(flat, minlength=n + 1) * pix
    # labels are numbered slice after slice (each plane is labelled on its own, in scan order)
    last = np.maximum.accumulate(lab.reshape(lab.shape[0], -1).max(axis=1))
    z_of = np.searchsorted(last, np.arange(n + 1), side="left")
    z_of[0] = 0
    cx = np.bincount(flat, weights=idx % lab.shape[2], minlength=n + 1) / np.maximum(area / pix, 1)
    # body midline per slice (x, voxels)
    bsum = body.sum(axis=(1, 2)).astype(float)
    bx = (body.sum(axis=1) * np.arange(body.shape[2])).sum(axis=1) / np.maximum(bsum, 1)

    max_area = 1500.0  # mm^2; a trachea is 15-25 mm wide, a main bronchus 10-16 mm
    medial = np.abs(cx - bx[z_of]) * dx <= 30.0
    small = (area >= 50.0) & (area <= max_area)
    cand = np.flatnonzero(small & medial)
    cand = cand[cand > 0]
    if cand.size == 0:
        return np.zeros_like(inner_air)
    # the trachea: most superior candidate slices (within 10 mm of the top one), largest there
    ztop = z_of[cand].max()
    top = cand[z_of[cand] >= ztop - max(1, int(round(10.0 / dz)))]
    seed = int(top[np.argmax(area[top])])

    # caudal links: a small region in slice k -> regions in slice k-1 within 4 mm in the plane (oblique bronchi
    # move sideways between thick slices); only within 80 mm of the trachea's axis
    x0 = int(round(cx[seed]))
    half = int(np.ceil(80.0 / dx))
    xs = slice(max(0, x0 - half), x0 + half + 1)
    # (links may pass through smaller regions: where the carina's spur and the bronchial walls blur on the coarse
    # grid, a bronchus can shrink below 50 mm^2 for a slice)
    link = area <= max_area
    sub = np.where(link[lab[: z_of[seed] + 1, :, xs]], lab[: z_of[seed] + 1, :, xs], 0)
    ry, rx = (max(1, int(round(4.0 / s))) for s in (dy, dx))
    upper = _grey_grow(sub[1:], np.ones((1, 2 * ry + 1, 2 * rx + 1), dtype=bool))
    lower = sub[:-1]
    m = (upper > 0) & (lower > 0)
    pairs = np.unique(upper[m].astype(np.int64) * (n + 1) + lower[m])
    children: dict[int, list[int]] = {}
    for a, b in zip((pairs // (n + 1)).tolist(), (pairs % (n + 1)).tolist()):
        children.setdefault(a, []).append(b)

    keep = np.zeros(n + 1, dtype=bool)
    keep[seed] = True
    # (region, reference area): the reference is the larger of a region and its parent, so that a bronchus may
    # come back to its size after the one slice where the carina's spur narrowed it
    stack = [(seed, area[seed])]
    while stack:
        a, ref = stack.pop()
        for b in children.get(a, ()):
            if keep[b] or area[b] > max_area or area[b] > 2.0 * ref + 100.0:
                continue
            keep[b] = True
            stack.append((b, max(area[b], area[a])))
    return keep[lab]


def _bronchus_ends(airway: np.ndarray, inner_air: np.ndarray, coarse: np.ndarray, cspacing: np.ndarray) -> np.ndarray:
    """The main bronchi below where :func:`_airways` stops following them, where they merge with the lung in the
    axial plane (coarse grid, bool; ``airway`` itself is not included).

    The carina is taken at the centre of the slice below the trachea's last slice (the last one, from the top,
    where the airway is one region of at least half the trachea's area in its most superior slice). From there
    down, the main bronchi go on as tubes: in each slice, the air darker than half-way between the lumen (median
    HU of the trachea's in-plane interior) and the lung (median HU of the other air of these slices), in the
    in-plane regions that come within the trachea's radius of the bronchi's footprint in the slice above (airway
    or tube: oblique bronchi move sideways between thick slices), plus the partial-volume ring of the bronchial
    wall (air next to both that lumen and tissue). A dark region larger than twice the trachea (+ 100 mm^2; both
    bronchi just below the carina) is lung, not a tube, and is left alone. The tubes end 25 mm below the carina
    (the main bronchi end at the hilum; intrapulmonary bronchi belong to the lung) and within 80 mm of the
    airway in the plane. Without 50 HU between the lumen and the lung (emphysema) nothing is found.
    """
    dz, dy, dx = cspacing
    pix = dy * dx
    ends = np.zeros_like(airway)
    zs = np.flatnonzero(airway.any(axis=(1, 2)))
    if zs.size < 2:
        return ends
    planes, _ = ndimage.label(airway[zs[0] : zs[-1] + 1], structure=_PLANE4)
    counts = np.zeros(zs.size, dtype=int)  # regions per slice (each plane is labelled on its own)
    for obj in ndimage.find_objects(planes):
        if obj is not None:
            counts[obj[0].start] += 1
    areas = (planes > 0).sum(axis=(1, 2)) * pix
    top_area = float(areas[-1])
    # the trachea, down from the most superior slice: one region, at least half as wide as there
    zc = zs.size - 1
    while zc > 0 and counts[zc - 1] == 1 and areas[zc - 1] >= 0.5 * top_area:
        zc -= 1
    zc += int(zs[0])  # the trachea's last slice; the carina lies in the next one
    lowest = max(0, int(np.ceil(zc - 1 - 25.0 / dz)))
    if lowest >= zc:
        return ends
    # the plane's box: within 80 mm of the airway
    rows, cols = np.flatnonzero(airway.any(axis=(0, 2))), np.flatnonzero(airway.any(axis=(0, 1)))
    my, mx = int(np.ceil(80.0 / dy)), int(np.ceil(80.0 / dx))
    box = (slice(max(0, rows[0] - my), rows[-1] + my + 1), slice(max(0, cols[0] - mx), cols[-1] + mx + 1))
    trachea = airway[(slice(zc, None), *box)]
    core = trachea & _erode(trachea, _PLANE4)
    lumen = float(np.median(coarse[(slice(zc, None), *box)][core if core.any() else trachea]))
    below = (slice(lowest, zc), *box)
    lung = inner_air[below] & ~airway[below]
    if not lung.any():
        return ends
    parenchyma = float(np.median(coarse[below][lung]))
    if parenchyma - lumen < 50.0:
        return ends
    limit = 0.5 * (lumen + parenchyma)
    disk = _disk(np.sqrt(top_area / np.pi), (dy, dx))[0]
    for z in range(zc - 1, lowest - 1, -1):
        here, above = (z, *box), (z + 1, *box)
        foot = airway[above] | ends[above]
        air = inner_air[here] & ~airway[here]
        dark = air & (coarse[here] < limit)
        near = ndimage.binary_dilation(foot, disk) & dark
        if not near.any():
            continue
        pieces, _ = ndimage.label(dark)
        hit = np.unique(pieces[near])
        sizes = np.bincount(pieces.ravel())[hit] * pix
        tube = np.isin(pieces, hit[sizes <= 2.0 * top_area + 100.0])
        # the partial-volume ring of the bronchial wall: air next to both the lumen and the wall (tissue)
        ring = ndimage.binary_dilation(tube, _PLANE4[1]) & ndimage.binary_dilation(~inner_air[here], _PLANE4[1])
        ends[here] = tube | (ring & air)
    return ends


def _hazy_structure(cspacing: np.ndarray) -> np.ndarray:
    """Ellipsoid of radius 2.5 mm, at least one voxel along each axis (coarse grid)."""
    r = [max(1, int(round(2.5 / s))) for s in cspacing]
    grids = np.ogrid[tuple(slice(-k, k + 1) for k in r)]
    return sum((g / k) ** 2 for g, k in zip(grids, r)) <= 1.0 + 1e-9


def _hazy_core(hazy: np.ndarray, cspacing: np.ndarray) -> np.ndarray:
    """Ground-glass cores: the hazy voxels (-500 to -250 HU) that hold an ellipsoid of radius 2.5 mm (>= 1 voxel).

    The partial-volume band between aerated lung and the chest wall, the mediastinum or the diaphragm (also where
    a thick slice cuts the diaphragm dome) is thinner than that and is not a core.
    """
    return _open(hazy, _hazy_structure(cspacing))


def _hazy_edges(lungs: np.ndarray, hazy: np.ndarray, core: np.ndarray, cspacing: np.ndarray) -> np.ndarray:
    """``lungs`` with the hazy voxels within one structuring element of their ground-glass cores (labels kept)."""
    out = lungs.copy()
    mine = core & (lungs > 0)
    if not mine.any():
        return out
    grown = _grey_grow(np.where(mine, lungs, 0).astype(np.uint8), _hazy_structure(cspacing))
    add = hazy & (out == 0) & (grown > 0)
    out[add] = grown[add]
    return out


def _split_joined(comp: np.ndarray, cspacing: np.ndarray, midline_x: float) -> np.ndarray | None:
    """Split one region holding both lungs; returns labels 1 (right) / 2 (left) or None if it is one lung."""
    eroded = comp
    for _ in range(int(np.ceil(30.0 / cspacing[1:].min()))):
        eroded = _erode(eroded, _CROSS)
        if not eroded.any():
            return None
        lab, n = ndimage.label(eroded)
        if n < 2:
            continue
        sizes = np.bincount(lab.ravel())
        sizes[0] = 0
        order = np.argsort(sizes)[::-1][:2]
        if sizes[order[1]] < 0.1 * sizes[order[0]]:
            continue
        cxs = [np.nonzero(lab == k)[2].mean() for k in order]
        if (cxs[0] - midline_x) * (cxs[1] - midline_x) >= 0:
            continue  # two parts on the same side: one lung with a narrow waist
        seeds = np.zeros(comp.shape, dtype=np.uint8)
        right, left = (order[0], order[1]) if cxs[0] < cxs[1] else (order[1], order[0])
        seeds[lab == right] = RIGHT
        seeds[lab == left] = LEFT
        idx = ndimage.distance_transform_edt(seeds == 0, sampling=cspacing, return_distances=False, return_indices=True)
        out = seeds[tuple(idx)]
        out[~comp] = 0
        return out
    return None


def _pick_lungs(cand: np.ndarray, body: np.ndarray, cspacing: np.ndarray) -> np.ndarray:
    """Right (1) and left (2) lung among the candidate air regions (coarse grid, uint8)."""
    voxel_ml = float(np.prod(cspacing)) / 1000.0
    lab, n = ndimage.label(cand)
    if n == 0:
        raise ValueError("no lung found: no air region inside the body")
    sizes = np.bincount(lab.ravel()).astype(float)
    sizes[0] = 0
    order = [int(k) for k in np.argsort(sizes)[::-1] if sizes[k] * voxel_ml >= 20.0]
    if not order:
        raise ValueError("no lung found: the largest air region inside the body is smaller than 20 ml")
    objs = ndimage.find_objects(lab)
    xs_body = body.sum(axis=(0, 1)).astype(float)
    midline_x = float((xs_body * np.arange(body.shape[2])).sum() / xs_body.sum())

    first = order[0]
    sl = objs[first - 1]
    split = _split_joined(lab[sl] == first, cspacing, midline_x - sl[2].start)
    out = np.zeros(cand.shape, dtype=np.uint8)
    if split is not None:
        out[sl][split > 0] = split[split > 0]
        return out

    zs, _, xs = np.nonzero(lab[sl] == first)
    side = RIGHT if xs.mean() + sl[2].start < midline_x else LEFT
    out[lab == first] = side
    zc = zs.mean() + sl[0].start
    for k in order[1:]:
        o = objs[k - 1]
        kx = np.nonzero(lab[o] == k)[2]
        other = (kx.mean() + o[2].start < midline_x) != (side == RIGHT)
        if other and o[0].stop - 1 >= zc:
            out[lab == k] = LEFT if side == RIGHT else RIGHT
            break
    return out


def _hull_planes(lung: np.ndarray, pix) -> np.ndarray:
    """Convex hull of the lung pixels of every plane (axis 0) at once (bool).

    The hull of the pixels (each a diamond reaching half a pixel along the axes, as scikit-image's
    ``convex_hull_image``) is approximated by the intersection of ``_HULL_DIRECTIONS`` half-planes of evenly
    spaced orientations, each through the lung's extreme pixel in its direction (a discrete-orientation polytope;
    with 128 sides it exceeds the true hull by a sliver at its corners). Only the first and
    last lung pixel of each row matter, and each row of the hull is an interval, so the work is on (planes, rows)
    arrays except for the final comparison.
    """
    n, nr, nc = lung.shape
    p0, p1 = float(pix[0]), float(pix[1])
    rowany = lung.any(axis=2)
    f32 = np.float32
    cmin = (lung.argmax(axis=2) * p1).astype(f32)
    cmax = ((nc - 1 - lung[:, :, ::-1].argmax(axis=2)) * p1).astype(f32)
    cmin[~rowany] = np.nan  # empty rows support nothing
    cmax[~rowany] = np.nan
    th = np.arange(_HULL_DIRECTIONS) * (2.0 * np.pi / _HULL_DIRECTIONS)
    ca, sa = np.cos(th), np.sin(th)
    ca[np.abs(ca) < 1e-12] = 0.0
    sa[np.abs(sa) < 1e-12] = 0.0
    c3, s3 = ca.astype(f32)[:, None, None], sa.astype(f32)[:, None, None]
    cr = c3 * (np.arange(nr, dtype=f32) * f32(p0))[None, None, :]  # (directions, 1, rows)
    # support of each direction: the extreme row end, plus the half-pixel diamond around its centre
    ext = np.where((sa >= 0)[:, None, None], cmax[None], cmin[None])  # the row end furthest along the direction
    proj = cr + s3 * ext
    proj[np.isnan(proj)] = -np.inf
    mx = proj.max(axis=2)
    mx += (0.5 * np.maximum(np.abs(ca) * p0, np.abs(sa) * p1)).astype(f32)[:, None]
    bound = mx[:, :, None] - cr  # (directions, planes, rows): ca * r + sa * c <= mx
    eps = 1e-4
    rowok = np.all((bound[sa == 0.0] + eps) >= 0.0, axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        hi = np.min(bound[sa > 0] / s3[sa > 0], axis=0)
        lo = np.max(bound[sa < 0] / s3[sa < 0], axis=0)
    cc = (np.arange(nc) * p1)[None, None, :]
    hull = (cc >= lo[:, :, None] - eps) & (cc <= hi[:, :, None] + eps)
    hull &= rowok[:, :, None]
    hull &= rowany.any(axis=1)[:, None, None]
    return hull


def _pockets(
    lung: np.ndarray,
    allowed: np.ndarray,
    depth: np.ndarray,
    pix: tuple[float, float],
    wall_mm: float,
    hu: np.ndarray,
    support: np.ndarray,
    near_needs_support: bool,
    medial: tuple[float, float] | None = None,
    lined_mm: float = 20.0,
    parts: dict | None = None,
) -> np.ndarray:
    """Lesion pockets of one lung in all the planes ``lung[k]`` at once (bool, same shape as ``lung``).

    A pocket is a region between the lung and its convex hull in one plane; its chord is the part of its outline on
    the hull. ``depth`` is the distance (mm) below the skin and ``hu`` the coarse HU volume, both in the same planes.

    - A lesion against the chest wall leaves a pocket whose chord runs along the chest wall: at most
      ``wall_mm`` + 35 mm below the skin, with ends at most ``wall_mm`` + 25 mm deep, and no deeper than its deeper
      end plus 4 mm and the sagitta of a 150 mm radius body outline over the chord. Pockets of the mediastinum,
      heart, spine or liver dome have chords through the depth of the body. In axial planes (``medial``: the
      medial unit vector in plane coordinates) pockets medial of the lung's centre are rejected as well (and are
      returned in ``parts["medial"]``, so that :func:`_repair` keeps the chord pockets of the coronal and sagittal
      planes, ``parts["chord"]``, grown across their chord, out of them). A pocket
      lying entirely on the hull's outline (one coarse voxel thick) is the staircase of a convex surface on the
      grid, not a lesion, and is rejected too.
    - Of a pocket rejected so, at least a quarter hazy (-650 to -250 HU, away from the lung's partial-volume edge:
      ground glass, never solid tissue), the ground glass and what lies within 6 mm of it (the consolidation it
      surrounds) are added.
    - Of a rejected pocket whose outline is lined by the lung's own ground glass (-650 to -250 HU, at least three
      coarse voxels thick in the plane: not the partial-volume edge), what lies within 6 mm of that ground glass where it lines a quarter of the outline (only voxels
      with ``support`` if ``near_needs_support``), and within ``lined_mm`` where it lines half of it, the pocket
      reaches at most ``lined_mm`` behind its chord and the voxel has ``support``: consolidation within its
      ground glass, also against the mediastinum. ``support`` marks the voxels with this lung at most 40 mm
      below them, which the liver under the dome lacks; the heart lies behind aerated lung.
    - In axial planes, holes enclosed by the lung (vessels, lesions) are added.

    Accepted chord pockets grow across the chord, which cuts off the pleural cap of the lesion, up to the chest
    wall: tissue no shallower than the chord ends, within the sagitta of a 100 mm radius pleura over the chord.
    """
    p0, p1 = float(pix[0]), float(pix[1])
    out = np.zeros(lung.shape, dtype=bool)
    big = lung.sum(axis=(1, 2)) * (p0 * p1) >= 40.0  # mm^2: planes that merely graze the lung have no hull
    if not big.any():
        return out
    lung = lung & big[:, None, None]
    hull = _hull_planes(lung, pix)
    pocket = hull & ~lung & allowed
    lab, n = ndimage.label(pocket, structure=_PLANE4)
    if n == 0:
        return out
    rim = hull & ~_erode(hull, _PLANE4)
    chord = np.where(rim, lab, 0)
    near_lung = _dilate(lung, _PLANE8)
    # per-pocket statistics over the pocket voxels only
    pidx = np.flatnonzero(lab)
    plab = lab.ravel()[pidx]
    on_rim = rim.ravel()[pidx]
    on_end = on_rim & near_lung.ravel()[pidx]
    pdepth = depth.ravel()[pidx]
    dmax = np.full(n + 1, -np.inf)
    np.maximum.at(dmax, plab[on_rim], pdepth[on_rim])
    dend = np.full(n + 1, -np.inf)
    np.maximum.at(dend, plab[on_end], pdepth[on_end])
    dmax, dend = dmax[1:], np.maximum(dend[1:], 0.0)
    has_chord = np.bincount(plab[on_rim], minlength=n + 1)[1:] > 0
    objs = ndimage.find_objects(chord, max_label=n)
    span = np.zeros((n, 2))
    for i, o in enumerate(objs):
        if o is not None:
            span[i] = ((o[1].stop - o[1].start) * p0, (o[2].stop - o[2].start) * p1)
    length = np.hypot(span[:, 0], span[:, 1])
    # a pocket that lies entirely on the hull's outline (one coarse voxel thick) is the staircase of a convex
    # surface on the coarse grid, not a lesion: the full-resolution threshold decides there
    thick = np.bincount(plab[~on_rim], minlength=n + 1)[1:] > 0
    ok = (
        has_chord
        & thick
        & (dmax - dend <= 4.0 + length**2 / (8.0 * 150.0))
        & (dmax <= wall_mm + 35.0)
        & (dend <= wall_mm + 25.0)
    )
    count = np.maximum(np.bincount(plab, minlength=n + 1)[1:], 1)
    # ground glass away from the lung's partial-volume edge
    hazy = (hu > -650.0) & (hu < -250.0) & ~near_lung
    frac = np.bincount(plab, weights=hazy.ravel()[pidx], minlength=n + 1)[1:] / count
    if medial is not None:
        plane_size = lung.shape[1] * lung.shape[2]
        plane_of = np.zeros(n + 1, dtype=np.intp)
        plane_of[plab] = pidx // plane_size
        n_lung = np.maximum(lung.sum(axis=(1, 2)), 1)
        lr = (lung.sum(axis=2) * np.arange(lung.shape[1])).sum(axis=1) / n_lung
        lc = (lung.sum(axis=1) * np.arange(lung.shape[2])).sum(axis=1) / n_lung
        pr = np.bincount(plab, weights=(pidx % plane_size) // lung.shape[2], minlength=n + 1)[1:] / count
        pc = np.bincount(plab, weights=pidx % lung.shape[2], minlength=n + 1)[1:] / count
        vr = (pr - lr[plane_of[1:]]) * p0
        vc = (pc - lc[plane_of[1:]]) * p1
        lateral = vr * medial[0] + vc * medial[1] < 0.5 * np.hypot(vr, vc)
        if parts is not None:
            parts["medial"] = np.concatenate([[False], has_chord & ~lateral])[lab]
        ok &= lateral
        ok |= ~has_chord
    keep = np.concatenate([[False], ok])[lab]
    out |= keep
    # hazy pockets: their ground glass and what lies within 6 mm of it (the consolidation it surrounds)
    hazy_pocket = np.concatenate([[False], ~ok & (frac >= 0.25)])[lab]
    if hazy_pocket.any():
        steps = max(1, int(round(6.0 / min(p0, p1))))
        out |= _dilate(hazy & hazy_pocket, _PLANE4, iterations=steps, within=hazy_pocket)
    # pockets lined by the lung's own ground glass (not the partial-volume edge)
    if not ok.all():
        _add_lined(out, lung, hull, lab, ~ok, hu, support, near_needs_support, (p0, p1), lined_mm)
    accepted = ok & has_chord
    if parts is not None:
        parts["chord"] = keep.copy()
    if accepted.any():
        if parts is not None:
            _grow_across(parts["chord"], keep, chord, lab, accepted, allowed & ~hull, depth, dend, (p0, p1))
            out |= parts["chord"]
        else:
            _grow_across(out, keep, chord, lab, accepted, allowed & ~hull, depth, dend, (p0, p1))
    return out


def _grow_across(out, keep, chord, lab, accepted, free, depth, dend, pix) -> None:
    """Grow accepted pockets (in place into ``out``) across their chord, within its shadow (see :func:`_pockets`)."""
    p0, p1 = pix
    n = accepted.size
    cz, cr, cc = np.nonzero(chord)
    lbl = chord[cz, cr, cc] - 1
    sel = accepted[lbl]
    cr, cc, lbl = cr[sel] * p0, cc[sel] * p1, lbl[sel]
    lo_r = np.full(n, np.inf)
    hi_r = np.full(n, -np.inf)
    lo_c, hi_c = lo_r.copy(), hi_r.copy()
    np.minimum.at(lo_r, lbl, cr)
    np.maximum.at(hi_r, lbl, cr)
    np.minimum.at(lo_c, lbl, cc)
    np.maximum.at(hi_c, lbl, cc)
    sr, sc = (hi_r - lo_r)[lbl], (hi_c - lo_c)[lbl]
    proj = cr * sr + cc * sc
    order = np.lexsort((proj, lbl))
    lbl_s = lbl[order]
    first = np.flatnonzero(np.r_[True, lbl_s[1:] != lbl_s[:-1]])
    last = np.r_[first[1:], lbl_s.size] - 1
    groups = lbl_s[first]
    ar, ac = np.zeros(n), np.zeros(n)
    ur, uc = np.zeros(n), np.zeros(n)
    ar[groups], ac[groups] = cr[order[first]], cc[order[first]]
    ur[groups], uc[groups] = cr[order[last]] - ar[groups], cc[order[last]] - ac[groups]
    ll = ur * ur + uc * uc
    good = accepted & (ll > 0)
    if not good.any():
        return
    sag = np.minimum(2.0 + ll / 800.0, 12.0)
    reach = float(sag[good].max())
    steps = int(np.ceil(reach / min(p0, p1)))
    # carry each pocket's label across the free tissue beyond the hull, then test its chord's shadow (only
    # within the box of the accepted pockets grown by the reach)
    seed_all = keep & np.concatenate([[False], good])[lab]
    box = _bbox(seed_all, (0, steps + 1, steps + 1))
    cur = np.where(seed_all[box], lab[box], 0).astype(np.int32)
    seed = cur > 0
    free_b = free[box]
    for _ in range(steps + 1):
        g = _grey_grow(cur, _PLANE4)
        np.copyto(cur, g, where=(cur == 0) & free_b & (g > 0))
    gz, gr, gc = np.nonzero((cur > 0) & ~seed)
    if gz.size == 0:
        return
    i = cur[gz, gr, gc] - 1
    gz, gr, gc = gz + box[0].start, gr + box[1].start, gc + box[2].start
    qr, qc = gr * p0 - ar[i], gc * p1 - ac[i]
    t = (qr * ur[i] + qc * uc[i]) / ll[i]
    dist = np.abs(qr * uc[i] - qc * ur[i]) / np.sqrt(ll[i])
    ok = (t > 0.05) & (t < 0.95) & (dist <= sag[i]) & (depth[gz, gr, gc] >= dend[i] - 0.5 * min(p0, p1))
    grow = np.zeros(out.shape, dtype=bool)
    grow[gz[ok], gr[ok], gc[ok]] = True
    if grow.any():
        out[box] |= _dilate(keep[box], _PLANE4, iterations=steps, within=grow[box] | keep[box])


def _add_lined(
    out: np.ndarray,
    lung: np.ndarray,
    hull: np.ndarray,
    lab: np.ndarray,
    rejected: np.ndarray,
    hu: np.ndarray,
    support: np.ndarray,
    near_needs_support: bool,
    pix: tuple[float, float],
    lined_mm: float,
) -> None:
    """Add to ``out`` (in place) the parts of ``rejected`` pockets that the lung's own ground glass lines.

    ``lung`` the lung planes, ``hull`` their convex hulls, ``lab`` the pockets (1..n) and ``rejected`` (n,) the
    pockets not accepted otherwise. See :func:`_pockets` for the rules.
    """
    glass = _open(lung & (hu > -650.0) & (hu < -250.0), _PLANE4)
    if not glass.any():
        return
    n = rejected.size
    rim = _dilate(lung, _PLANE4) & ~lung
    n_border = np.maximum(np.bincount(lab[rim], minlength=n + 1)[1:], 1)
    touching = _dilate(glass, _PLANE4) & rim
    n_glass = np.bincount(lab[touching], minlength=n + 1)[1:]
    near = rejected & (n_glass >= 0.25 * n_border)
    far = rejected & (n_glass >= 0.5 * n_border)
    if far.any():
        # more than lined_mm behind the hull's outline, within the box of these pockets grown by lined_mm
        reach = [0] + [int(np.floor(lined_mm / p + 1e-6)) + 1 for p in pix]
        box = _bbox(np.concatenate([[False], far])[lab], reach)
        deep = _plane_shrink(hull[box], lined_mm, pix)
        too_deep = np.bincount(lab[box][deep], minlength=n + 1)[1:] > 0
        far &= ~too_deep
    for which, reach, needs_support in ((near, 6.0, near_needs_support), (far, lined_mm, True)):
        if not which.any():
            continue
        lined = np.concatenate([[False], which])[lab]
        if needs_support:
            lined &= support
        if lined.any():
            box = _bbox(lined)  # the result lies within lined, and so do its sources
            out[box] |= _plane_grow(touching[box] & lined[box], reach, pix) & lined[box]


def _below(lung: np.ndarray, dz: float, reach_mm: float = 40.0) -> np.ndarray:
    """Voxels with ``lung`` at most ``reach_mm`` below them in their (y, x) column (bool)."""
    n = max(1, int(round(reach_mm / dz)))
    count = np.zeros((lung.shape[0] + 1,) + lung.shape[1:], dtype=np.int32)
    np.cumsum(lung, axis=0, dtype=np.int32, out=count[1:])
    out = np.zeros(lung.shape, dtype=bool)
    out[1:] = count[1:-1] > count[np.maximum(np.arange(1, lung.shape[0]) - n, 0)]
    return out


def _depth(body: np.ndarray, cspacing: np.ndarray, axis: int) -> np.ndarray:
    """Distance (mm) to the outside of the body within each plane normal to ``axis`` (float32).

    The superior and inferior borders of the volume are not outside: the body goes on beyond them (a plane
    without any outside voxel is at least ``_FAR`` deep). The in-plane borders (y, x) are outside: a body that the
    field of view cuts (a large patient, a small reconstruction diameter) has its skin just beyond them, whereas
    measuring from the other side of the body would make the whole chest wall, the heart and the mediastinum
    of the cut side look shallow to the pocket rules of :func:`_pockets`.
    """
    padded = np.pad(body, ((0, 0), (1, 1), (1, 1)), mode="constant", constant_values=False)
    # every axial plane is framed by outside voxels (its padded borders), and so is every coronal plane (its
    # padded x borders): laid side by side in one 2-D image, the planes keep the distances each has alone, and
    # one 2-D transform (cheaper than a 3-D one along an axis of no extent) gives them all
    if axis == 0:
        return _edt(padded.reshape(-1, padded.shape[2]), cspacing[1:]).reshape(padded.shape)[:, 1:-1, 1:-1]
    if axis == 1:
        pix = (cspacing[0], cspacing[2])
        return _edt(padded.reshape(padded.shape[0], -1), pix).reshape(padded.shape)[:, 1:-1, 1:-1]
    sampling = [float(s) for s in cspacing]
    sampling[axis] = _FAR
    return _edt(padded, sampling)[:, 1:-1, 1:-1]


def _depths(body: np.ndarray, cspacing) -> tuple[np.ndarray, np.ndarray]:
    """Depth below the skin (mm, float32, coarse grid) within the axial and within the coronal planes (see
    :func:`_depth`), over the body's bounding box grown by one voxel (zero elsewhere): beyond it lies only outside,
    which a full row of outside voxels on its edge already hides from the body."""
    bb = _bbox(body, (1, 1, 1))
    out = []
    for axis in (0, 1):
        d = np.zeros(body.shape, dtype=np.float32)
        d[bb] = _depth(body[bb], cspacing, axis)
        out.append(d)
    return out[0], out[1]


def _repair(
    lungs: np.ndarray, coarse: np.ndarray, body: np.ndarray, airway: np.ndarray, cspacing, depths=None
) -> np.ndarray:
    """Add to each lung its enclosed holes (axial) and its lesion pockets in axial, coronal and sagittal planes.

    Depth below the skin is the distance to the outside of the body within the axial plane, except for coronal
    planes, where it is measured within the coronal plane (distance to the lateral body wall): every point of a
    coronal plane near the back or the front is close to the skin in the axial sense. ``depths``: the two, from
    :func:`_depths` (computed here when omitted).
    """
    out = lungs.copy()
    inlung = lungs > 0
    if not inlung.any():
        return out
    # work within the lungs' bounding box (in-plane margin for the pockets), depth from the whole body
    margin = [int(np.ceil(12.0 / s)) + 2 for s in cspacing]  # pockets grow at most 12 mm beyond the hull
    box = _bbox(inlung, margin)
    axial, coronal = (d[box] for d in (depths if depths is not None else _depths(body, cspacing)))
    lungs_b, coarse_b = lungs[box], coarse[box]
    allowed = body[box] & (coarse_b < BONE_HU) & (lungs_b == 0) & ~airway[box]
    tasks = []  # (label, own box, axis, arguments of _pockets)
    for label, medial_x in ((RIGHT, 1.0), (LEFT, -1.0)):
        if not (lungs_b == label).any():
            continue
        own = _bbox(lungs_b == label, margin)  # this lung's box within the box
        lung = lungs_b[own] == label
        below = _below(lung, cspacing[0])
        arrays = {"allowed": allowed[own], "axial": axial[own], "coronal": coronal[own], "hu": coarse_b[own]}
        for axis in (0, 1, 2):  # axial planes (y, x), coronal planes (z, x), sagittal planes (z, y)
            depth = arrays["coronal"] if axis == 1 else arrays["axial"]
            pix = tuple(s for i, s in enumerate(cspacing) if i != axis)
            # chest wall thickness: median over planes of the lung's smallest depth below the skin
            dl = np.moveaxis(np.where(lung, depth, np.inf), axis, 0).min(axis=(1, 2))
            wall = float(np.median(dl[np.isfinite(dl)]))
            args = (
                *(np.moveaxis(v, axis, 0) for v in (lung, arrays["allowed"], depth)),
                pix,
                wall,
                np.moveaxis(arrays["hu"], axis, 0),
                np.moveaxis(below, axis, 0),
                axis != 0,
                (0.0, medial_x) if axis == 0 else None,
            )
            tasks.append((label, own, axis, args))
    # the six plane stacks are independent: numpy releases the GIL in its loops, so two threads share the work
    parts = [{} for _ in tasks]
    with parallel.pool(2) as pool:
        results = list(pool.map(lambda i: _pockets(*tasks[i][3], parts=parts[i]), range(len(tasks))))
    # the mediastinum and the heart lie between the lungs: what the axial planes show as a pocket on the lung's
    # medial side is not taken in by the chord rule of a coronal or sagittal plane (where the heart's anterior
    # surface or the mediastinum can look like a chest wall pocket); ground-glass evidence still adds it
    medial_of = {task[0]: part["medial"] for task, part in zip(tasks, parts) if task[2] == 0 and "medial" in part}
    add_all = np.zeros(lungs_b.shape, dtype=np.uint8)
    for (label, own, axis, _), add, part in zip(tasks, results, parts):
        add = np.moveaxis(add, 0, axis)
        if axis != 0 and label in medial_of and "chord" in part:
            add &= ~(np.moveaxis(part["chord"], 0, axis) & medial_of[label])
        add_own = add_all[own]
        add_own[add & (add_own == 0)] = label
    sub = out[box]
    put = (add_all > 0) & (sub == 0)
    sub[put] = add_all[put]
    # what the added pockets now enclose (consolidation inside its ground glass)
    for label in (RIGHT, LEFT):
        holes = _fill_holes_2d(sub == label) & (sub == 0) & allowed
        sub[holes] = label
    return out


def _continue_consolidation(
    lungs: np.ndarray,
    coarse: np.ndarray,
    aerated: np.ndarray,
    body: np.ndarray,
    airway: np.ndarray,
    cspacing: np.ndarray,
    reach_mm: float = 60.0,
    min_contrast_hu: float = 40.0,
    peel_mm: float = 20.0,
    weak_layers: int = 1,
) -> tuple:
    """Grow each lung's consolidation into adjacent tissue that is measurably less dense than the tissue around
    the lungs (coarse grid; a new label array).

    Consolidation that fills the posterior costophrenic recess or lines the mediastinum or the diaphragm lies
    outside the aerated lung's outline in every plane, so the pocket rules of :func:`_repair` cannot reveal it.
    Where it is less dense than the wall, the heart and the liver around it (partly aerated consolidation), it is
    told from them by density, as a reader does: with ``C`` the median HU of the lung's own consolidation (its
    non-aerated voxels denser than ground glass) and ``W`` the median HU of the soft tissue around the lungs (two
    coarse voxels outside them, bone excluded), tissue from ``C - max(L - C, 50)`` HU (but at least -80 HU: never
    fat) up to ``L = (C + W) / 2`` that is connected to the consolidation within ``reach_mm`` is added, provided
    ``W - C`` is at least ``min_contrast_hu``. Where consolidation is as dense as the organs around it, nothing is
    added or removed. Bone and the airway are never added. Before growing, the lung's non-aerated outer voxels
    denser than ``(C + 3 W) / 4`` (wall that a pocket rule took in) are peeled off, at most ``peel_mm`` deep;
    then ``C`` is measured again, on the interior of what is left of the consolidation (its in-plane outer layer,
    partial volume with ground glass, lung or wall, left out), so that the wall no longer biases the limits.

    Noise: every decision (peeling, growth) is made on the mean HU of the soft tissue (-80 to 150 HU) in the
    3 x 3 x 3 box of coarse voxels around each voxel (see :func:`_tissue_mean`), which lowers the noise of single
    voxels about five-fold (where the coarse grid is close to the scan's own grid, its voxels carry the full
    10-40 HU soft tissue noise) while a planar edge between two tissues still crosses half-way where it did. The
    growth is a hysteresis: chains into the wall need tissue below ``(C + L) / 2``; tissue up to ``L`` joins only
    within ``weak_layers`` voxels of it (the consolidation's blurred edge), so noise in the wall starts no fingers.
    ``reach_mm`` is counted in face-connected steps of the mean coarse voxel size (along the grid's axes; a
    diagonal path reaches less far): consolidation filling the recess or the paravertebral gutter can extend
    50-60 mm beyond the part of it inside the lung's outline. Peeling needs soft tissue in half of the box around
    a voxel, growth in a third of it (the consolidation's face against aerated lung holds a third of air and the
    partial-volume layer lighter than fat).

    Returns the labels, the grown voxels (bool, or None when nothing is grown), ``L`` (the lowest of the two
    lungs') and the noise of a coarse voxel's HU (robust standard deviation, 1.4826 times the median absolute
    deviation, of the wall's soft tissue or of the consolidation's interior, whichever is lower: both also vary in
    density), with which :func:`_refine` decides the grown consolidation's edge at full resolution.
    """
    none = (lungs, None, HAZY_HU, 0.0)
    if not (lungs > 0).any():
        return none
    steps = int(np.ceil(reach_mm / float(np.mean(cspacing))))
    box = _bbox(lungs > 0, (steps + 3,) * 3)  # all the work lies within reach of the lungs
    lungs_b, hu_b, body_b = lungs[box], coarse[box], body[box]
    inside = lungs_b > 0
    # consolidation: non-aerated lung denser than ground glass, thick enough to hold an in-plane cross of coarse
    # voxels, about 10 mm wide (vessels and the partial-volume edge do not; thick slices make a 3-D cross too tall)
    dense = inside & (aerated[box] == 0) & (hu_b > HAZY_HU) & (hu_b < BONE_HU)
    seed = _open(dense, _PLANE4)
    voxel_ml = float(np.prod(cspacing)) / 1000.0
    if seed.sum() * voxel_ml < 2.0:
        return none
    one = _dilate(inside, _CROSS)
    shell = _dilate(one, _CROSS) & ~one & body_b & (hu_b > HAZY_HU) & (hu_b < BONE_HU)
    if shell.sum() < 100:
        return none
    wall = float(np.median(hu_b[shell]))
    free = body_b & ~inside & ~airway[box] & (hu_b < BONE_HU)
    smooth, count = _tissue_mean(hu_b, body_b & (hu_b >= FAT_FLOOR_HU) & (hu_b < BONE_HU))
    solid, some = count >= 14, count >= 9  # soft tissue in half, in a third of the 3 x 3 x 3 box
    cons_of = {}
    for label in (RIGHT, LEFT):
        mine = seed & (lungs_b == label)
        if mine.sum() * voxel_ml < 2.0:
            continue
        cons = float(np.median(hu_b[mine]))
        if wall - cons >= min_contrast_hu:
            cons_of[label] = cons
    if not cons_of:
        return none
    # repaired pockets reach into the wall where the outline misled the repair (e.g. along the diaphragm under
    # basal consolidation): of a lung's non-aerated voxels, those nearer in HU to the wall than to the
    # consolidation (beyond three quarters of the way) are peeled off from the outside, at most peel_mm deep
    if peel_mm > 0:
        active = np.zeros(3, dtype=bool)
        active[list(cons_of)] = True
        peel_limit = max(0.25 * c + 0.75 * wall for c in cons_of.values())
        removable = active[lungs_b] & (aerated[box] == 0) & solid & (smooth >= peel_limit)
        outside = ~inside
        for _ in range(int(np.ceil(peel_mm / float(np.mean(cspacing))))):
            gone = removable & _dilate(outside, _CROSS)
            if not gone.any():
                break
            outside |= gone
            removable &= ~gone
        lungs_b = np.where(outside, 0, lungs_b).astype(np.uint8)
        inside = lungs_b > 0
        seed &= inside
        dense &= inside
        free = body_b & ~inside & ~airway[box] & (hu_b < BONE_HU)
    cur = np.zeros(lungs_b.shape, dtype=np.uint8)
    cand = np.zeros(lungs_b.shape, dtype=bool)
    strong = np.zeros(lungs_b.shape, dtype=bool)
    limits, cores = [], []
    for label, cons in cons_of.items():
        mine = seed & (lungs_b == label)
        # the consolidation's own density, measured again now that the wall peeled off no longer weighs on it: its
        # interior (the in-plane outer layer, partial volume with ground glass, lung or wall, left out)
        core = _erode(mine, _PLANE4)
        if core.sum() * voxel_ml >= 1.0:
            cons = float(np.median(hu_b[core]))
        elif mine.sum() * voxel_ml >= 1.0:
            cons = float(np.median(hu_b[mine]))
        if wall - cons < min_contrast_hu:
            continue
        limit = 0.5 * (cons + wall)
        limits.append(limit)
        cores.append(hu_b[core] if core.sum() * voxel_ml >= 1.0 else hu_b[mine])
        lower = max(cons - max(limit - cons, 50.0), FAT_FLOOR_HU)  # never fat
        # the growth starts from the consolidation and its edge (within two voxels of its thick part)
        cur[dense & (lungs_b == label) & _dilate(mine, _CROSS, iterations=2)] = label
        ok = free & some & (smooth >= lower)
        cand |= ok & (smooth < limit)
        strong |= ok & (smooth < 0.5 * (cons + limit))
    # chains into the wall need tissue that is clearly consolidation (a quarter of the way from C to W); tissue up to
    # half-way only joins within weak_layers voxels of it (the consolidation's blurred, noisy edge)
    for through, n in ((strong, steps), (cand, weak_layers)):
        for _ in range(n if limits else 0):
            g = _grey_grow(cur, _CROSS)
            add = (cur == 0) & through & (g > 0)
            if not add.any():
                break
            cur[add] = g[add]
    out = lungs.copy()
    out[box] = lungs_b
    sub = out[box]
    put = (cur > 0) & ~inside
    sub[put] = cur[put]
    # what the grown consolidation now encloses in its axial plane
    for label in (RIGHT, LEFT):
        holes = _fill_holes_2d(sub == label) & (sub == 0) & free
        sub[holes] = label
    grown = np.zeros(lungs.shape, dtype=bool)
    grown[box] = (sub > 0) & ~inside
    if not limits:
        return out, None, HAZY_HU, 0.0
    noise = min(_robust_sd(hu_b[shell & (hu_b >= FAT_FLOOR_HU)]), _robust_sd(np.concatenate(cores)))
    return out, grown, min(limits), noise


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


def _edge_threshold(coarse: np.ndarray, lungs_c: np.ndarray, aerated_c: np.ndarray, body: np.ndarray) -> float:
    """Half-maximum HU between the aerated parenchyma and the tissue around the lungs (coarse grid).

    The parenchyma is the median of the aerated lung away from its edge; the wall is the median of the non-bony
    body tissue two coarse voxels outside the lungs (beyond their partial-volume layer). The edge of a blurred step
    lies where its profile crosses half-way between the two. Falls back to -500 HU when either cannot be measured;
    limited to -650 to -300 HU.
    """
    inside = lungs_c > 0
    core = _erode(aerated_c > 0, _CROSS)
    one = _dilate(inside, _CROSS)
    shell = _dilate(one, _CROSS) & ~one & body & (coarse > AIR_HU) & (coarse < BONE_HU)
    if core.sum() < 100 or shell.sum() < 100:
        return AIR_HU
    lung, wall = float(np.median(coarse[core])), float(np.median(coarse[shell]))
    return float(np.clip(0.5 * (lung + wall), -650.0, -300.0))


def segment_lungs(hu: np.ndarray, spacing, *, coarse_mm: float = COARSE_MM) -> np.ndarray:
    """Label the right and left lungs of a chest CT volume.

    Parameters
    ----------
    hu : (z, y, x) array
        CT volume in Hounsfield units (int16 or float), x towards the patient's left, y posterior, z superior.
    spacing : (dz, dy, dx)
        Voxel size in mm; anisotropic voxels (slices 0.6-5 mm, pixels 0.5-2.5 mm) are handled.
    coarse_mm : float
        Voxel size (mm) of the grid where topology and lesion repair are decided. Smaller is slower and repairs
        thin subpleural lesions more completely (2.5 mm: about 2.5 times the time of the default 3.5 mm).

    Returns
    -------
    labels : (z, y, x) uint8
        0 background, 1 right lung, 2 left lung. Lungs include their vessels and their opacities (ground glass,
        consolidation, also against the chest wall); the trachea and the main bronchi, outside air, the table and
        bowel gas are excluded.

    Raises
    ------
    ValueError
        If the arrays are malformed or no lung can be found (no air region of at least 20 ml inside the body).
    """
    hu, sp = _check(hu, spacing)
    if not np.isfinite(coarse_mm) or coarse_mm <= 0:
        raise ValueError(f"coarse_mm must be a positive number of mm, got {coarse_mm!r}")
    factors = _coarse_factors(sp, coarse_mm)
    csp = sp * factors
    # the output's pages are mapped on another thread while the coarse stage runs (first-touch page faults of a
    # volume-sized array are otherwise a noticeable part of the time)
    with parallel.pool(1, beside_caller=True) as pool:
        prepared = pool.submit(new_volume, hu.shape, np.uint8, True)
        coarse = _block_reduce(hu, factors)
        air = coarse < AIR_HU
        body = _body(~air)
        depths = pool.submit(_depths, body, csp)  # the repair's distance maps, beside picking the lungs
        inner = air & body
        airway = _airways(inner, body, csp)
        ends = _bronchus_ends(airway, inner, coarse, csp)
        hazy = body & ~air & (coarse < HAZY_HU) & ~airway
        glass = _hazy_core(hazy, csp)
        # (the lungs are picked before the bronchi's ends are cut out: lung that reaches the rest only around them
        # stays lung)
        picked = _hazy_edges(_pick_lungs((inner | glass) & ~airway, body, csp), hazy, glass, csp)
        picked[ends] = 0
        airway |= ends
        aerated = np.where(air, picked, 0).astype(np.uint8)
        lungs_c = _repair(picked, coarse, body, airway, csp, depths.result())
        lungs_c, grown, grown_limit, grown_noise = _continue_consolidation(lungs_c, coarse, aerated, body, airway, csp)
        if np.all(factors == 1):
            # the coarse grid is the scan's own: the decision of step 6, on box-averaged HU, is the finest there
            # is (voxel by voxel, the scan's noise would decide the edge of the grown consolidation)
            grown = None
        threshold = _edge_threshold(coarse, lungs_c, aerated, body)
        out = prepared.result()
    return _refine(hu, lungs_c, aerated, airway, factors, threshold, out, grown, grown_limit, grown_noise)


def _refine(
    hu: np.ndarray,
    lungs_c: np.ndarray,
    aerated_c: np.ndarray,
    airway_c: np.ndarray,
    factors: np.ndarray,
    threshold: float,
    out: np.ndarray | None = None,
    grown_c: np.ndarray | None = None,
    grown_limit: float = HAZY_HU,
    grown_noise: float = 0.0,
) -> np.ndarray:
    """Full-resolution labels: ``hu < threshold`` decides within one coarse voxel of the coarse boundary
    (``hu < HAZY_HU`` next to ground glass and repaired lesions).

    ``out`` (zeros, the volume's shape, uint8) receives the labels when given. Repaired (lesion) and ground-glass
    coarse voxels keep their coarse extent; airway voxels are never added. ``grown_c`` (coarse bool, optional) marks
    consolidation grown beyond the lung's outline (:func:`_continue_consolidation`): its outer layer and the tissue
    next to it, away from aerated lung, are decided by :func:`_grown_edge` on locally averaged HU against
    ``grown_limit`` (HU), keeping the coarse decision where the evidence is within half of ``grown_noise`` (HU, the
    noise of a coarse voxel's HU); only those blocks (and half a block around them) are read for it. Otherwise only
    the rows and columns of the lungs' blocks are touched, slab by slab of the coarse grid: the slab's coarse labels
    and thresholds are upsampled to full resolution in the plane, so that every comparison runs along whole rows
    (numpy is slow on the short inner loops of a block view).
    """
    inside = lungs_c > 0
    if out is None:
        out = np.zeros(hu.shape, dtype=np.uint8)
    if not inside.any():
        return out
    interior = _erode(inside, _CROSS)
    grown = _grey_grow(lungs_c, _CROSS)
    grown[inside] = lungs_c[inside]
    grown[airway_c] = 0
    repaired = inside & (aerated_c == 0)
    if grown_c is not None:
        # the outer layer of consolidation grown beyond the lung's outline is decided at full resolution
        repaired &= ~(grown_c & ~interior)
    band = (grown > 0) & ~interior & ~repaired
    fixed = np.where(band, 0, lungs_c).astype(np.uint8)
    # next to ground glass and repaired lesions the edge lies half-way between ground glass and the wall
    lesion_band = band & _dilate(repaired, _CROSS)
    # consolidation grown beyond the lung's outline and the tissue next to it, away from aerated lung (whose
    # blurred edge would pass the consolidation's limit): half-way between the consolidation and the wall, on
    # locally averaged HU (_grown_edge)
    if grown_c is not None:
        cons_band = band & (grown_c | (_dilate(grown_c, _CROSS) & ~_dilate(aerated_c > 0, _CROSS)))
    else:
        cons_band = np.zeros_like(band)

    box = _bbox(grown > 0)
    # the threshold of each coarse block (band blocks only; elsewhere a limit that no voxel passes)
    if hu.dtype.kind == "i":  # integer HU: h < t is h < ceil(t), compared in the volume's own type
        limits = [np.array(np.ceil(t), dtype=hu.dtype) for t in (threshold, HAZY_HU)]
        never = np.iinfo(hu.dtype).min
        ltype = hu.dtype
    else:
        limits = [np.float64(t) for t in (threshold, HAZY_HU)]
        never, ltype = -np.inf, np.float64
    fixed_b, band_b, grown_b = fixed[box], band[box], grown[box]
    limit_b = np.full(fixed_b.shape, never, dtype=ltype)
    limit_b[band_b] = limits[0]
    limit_b[band_b & lesion_band[box]] = limits[1]
    limit_b[band_b & cons_band[box]] = never  # decided below, by _grown_edge
    fz, fy, fx = (int(f) for f in factors)
    nz, ny, nx = hu.shape

    def work(czs: range) -> None:
        # one coarse slab at a time, within the rows and columns of its lung blocks: each voxel takes its block's
        # coarse label, except in band blocks, where a voxel below the block's threshold takes the grown label.
        # The coarse planes are upsampled to full resolution first, so every comparison runs along whole rows.
        for cz in czs:
            g = grown_b[cz]
            rows, cols = np.flatnonzero(g.any(axis=1)), np.flatnonzero(g.any(axis=0))
            if rows.size == 0:
                continue
            rs, cs = slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)
            z0, y0, x0 = (box[0].start + cz) * fz, (box[1].start + rs.start) * fy, (box[2].start + cs.start) * fx
            z1, y1, x1 = (
                min(z0 + fz, nz),
                min((box[1].start + rs.stop) * fy, ny),
                min((box[2].start + cs.stop) * fx, nx),
            )
            o = out[z0:z1, y0:y1, x0:x1]
            o[...] = _up2(fixed_b[cz, rs, cs], fy, fx, y1 - y0, x1 - x0)
            if band_b[cz, rs, cs].any():
                lung = hu[z0:z1, y0:y1, x0:x1] < _up2(limit_b[cz, rs, cs], fy, fx, y1 - y0, x1 - x0)
                np.copyto(o, _up2(g[rs, cs], fy, fx, y1 - y0, x1 - x0), where=lung)

    _in_halves(work, fixed_b.shape[0])
    blocks = np.argwhere(band_b & cons_band[box]) + [b.start for b in box]
    step = max(1, 2_000_000 // int(np.prod(factors + 2 * (factors // 2))))  # patches of about 2 M voxels at a time
    for k in range(0, len(blocks), step):
        part = blocks[k : k + step]
        at = tuple(part.T)
        lung = _grown_edge(hu, part, factors, inside[at], grown_limit, 0.5 * grown_noise)
        z, y, x, valid = _block_voxels(part, factors, hu.shape)
        z, y, x = (np.broadcast_to(i, valid.shape)[valid] for i in (z, y, x))
        out[z, y, x] = np.where(lung, grown[at][:, None, None, None], 0)[valid]
    return out


def _core_box_sums(patches: np.ndarray, half, factors) -> np.ndarray:
    """Sums over the box of ``2 half + 1`` voxels per axis around each voxel of the blocks' cores: ``patches`` is
    ``(n, fz + 2 hz, fy + 2 hy, fx + 2 hx)`` (each block with a halo of ``half``), the result ``(n, fz, fy, fx)``,
    in ``patches``' dtype. Axis by axis, shifted views are added (faster than numpy's cumulative sums across an
    inner axis for boxes this small)."""
    for axis, (k, f) in enumerate(zip(half, factors), start=1):
        at = [slice(None)] * 4
        at[axis] = slice(0, int(f))
        out = patches[tuple(at)].copy()
        for j in range(1, 2 * k + 1):
            at[axis] = slice(j, j + int(f))
            out += patches[tuple(at)]
        patches = out
    return patches


def _block_voxels(blocks: np.ndarray, factors, shape, halo=(0, 0, 0)):
    """Voxel indices of coarse ``blocks`` (``(n, 3)`` coarse indices), each grown by ``halo`` voxels per side:
    ``z (n, pz, 1, 1)``, ``y (n, 1, py, 1)``, ``x (n, 1, 1, px)`` clipped to ``shape``, and whether each voxel lies
    within it (``(n, pz, py, px)`` bool)."""
    index, valid = [], None
    for axis, (f, h, n) in enumerate(zip(factors, halo, shape)):
        i = blocks[:, axis, None] * int(f) + np.arange(-h, int(f) + h)
        view = [len(blocks), 1, 1, 1]
        view[axis + 1] = i.shape[1]
        ok = ((i >= 0) & (i < n)).reshape(view)
        index.append(np.clip(i, 0, n - 1).reshape(view))
        valid = ok if valid is None else valid & ok
    return index[0], index[1], index[2], valid


def _grown_edge(
    hu: np.ndarray, blocks: np.ndarray, factors, coarse_lung: np.ndarray, limit: float, margin: float
) -> np.ndarray:
    """Which voxels of the coarse ``blocks`` (``(n, 3)`` coarse indices) are grown consolidation: bool
    ``(n, fz, fy, fx)``, at the edge of consolidation grown beyond the lung's outline
    (:func:`_continue_consolidation`).

    Voxel by voxel, the scan's soft tissue noise (10-40 HU, correlated over a few mm) would decide that edge:
    consolidation only 30-40 HU lighter than the wall would lose a fifth of its outer layer and gain wall specks.
    Each voxel is judged instead by the mean HU of the soft tissue (-80 to 150 HU; fat, bone and air left out) in a
    box about one coarse voxel wide around it (``factors`` voxels per axis, rounded up to an odd number, so that a
    planar edge between two tissues still crosses ``limit`` where it did): lighter than ``limit`` (HU) is
    consolidation. Where that mean lies within ``margin`` (HU) of ``limit``, or soft tissue fills less than half of
    the box, the block's coarse decision ``coarse_lung`` (bool per block) stands. Voxels lighter than -250 HU (no
    solid tissue is: ground glass, aerated lung) join, bone (> 150 HU) never does. Only the blocks and a halo of
    half a box around each are read.
    """
    half = [int(f) // 2 for f in factors]  # odd box of f (odd) or f + 1 (even) voxels
    box_voxels = int(np.prod([2 * k + 1 for k in half]))
    z, y, x, inside = _block_voxels(blocks, factors, hu.shape, half)
    h = hu[z, y, x]
    tissue = inside & (h >= FAT_FLOOR_HU) & (h < BONE_HU)
    core = (slice(None),) + tuple(slice(k, k + int(f)) for k, f in zip(half, factors))
    if h.dtype.kind in "iu":
        # the count (high bits) and the sum of HU + 128 (low bits; 0-278 for tissue) in one integer box sum
        shift = 16 if box_voxels * 279 < (1 << 16) else 32
        packed = np.multiply(h, tissue, dtype=np.int32 if shift == 16 else np.int64)
        packed += tissue * (128 + (1 << shift))
        packed = _core_box_sums(packed, half, factors)
        count = packed >> shift
        total = (packed & ((1 << shift) - 1)) - 128 * count
    else:
        count = _core_box_sums(tissue.astype(np.int32), half, factors)
        total = _core_box_sums(np.where(tissue, h, 0).astype(np.float64), half, factors)
    h = h[core]
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = total / count
    coarse = np.asarray(coarse_lung, dtype=bool)[:, None, None, None]
    lung = np.where(coarse, mean < limit + margin, mean < limit - margin)
    lung = np.where(2 * count >= box_voxels, lung, coarse) | (h < HAZY_HU)
    return lung & (h < BONE_HU)


# ----------------------------------------------------------------------------------------------------------------
# vessels and opacity exclusion
# ----------------------------------------------------------------------------------------------------------------
def _fast_bbox(labels: np.ndarray) -> tuple[slice, ...] | None:
    """Bounding box of the non-zero voxels of a full-size label volume (None if empty), in two cheap passes."""
    nz = labels.shape[0]
    zs = np.flatnonzero(labels.reshape(nz, -1).max(axis=1))
    if zs.size == 0:
        return None
    plane = labels[zs[0] : zs[-1] + 1].max(axis=0)
    rows, cols = np.flatnonzero(plane.max(axis=1)), np.flatnonzero(plane.max(axis=0))
    return (
        slice(int(zs[0]), int(zs[-1]) + 1),
        slice(int(rows[0]), int(rows[-1]) + 1),
        slice(int(cols[0]), int(cols[-1]) + 1),
    )


class _Shared:
    """Work shared by :func:`segment_vessels` and :func:`opacity_exclusion` for one ``(hu, lungs, spacing)``: the
    lungs' bounding box, the blob grid, per HU threshold the blob grid's counts of dense lung voxels, and what
    :func:`segment_vessels` prepares for :func:`opacity_exclusion` in the same pass over the volume. It refers to
    ``hu`` and ``lungs`` by weak references only, so it never keeps them alive, and goes with ``lungs`` (see
    :func:`_shared`); they must not be modified in place between the calls."""

    def __init__(self, hu: np.ndarray, lungs: np.ndarray, sp: np.ndarray, box: tuple[slice, ...]):
        self.refs = (weakref.ref(hu), weakref.ref(lungs))
        self.spacing = tuple(float(s) for s in sp)
        self.box = box
        self.factors = _block_factors(sp, BLOB_GRID_MM)
        self.csp = sp * self.factors
        self.counts = _block_counts(tuple(b.stop - b.start for b in box), self.factors)
        self.sums: dict[float, np.ndarray] = {}  # HU threshold -> blob-grid counts of lung voxels denser than it
        self.dense: dict[float, np.ndarray] = {}  # HU threshold -> a new volume holding those voxels (in the box)
        self.vessels: weakref.ref | None = None  # the mask segment_vessels returned (inside the lungs)
        self.vessel_index: np.ndarray | None = None  # its voxels (flat indices)

    def matches(self, hu, lungs, sp) -> bool:
        return self.refs[0]() is hu and self.refs[1]() is lungs and self.spacing == tuple(float(s) for s in sp)

    def count(self, hu: np.ndarray, lungs: np.ndarray, thresholds, located=None, into=None):
        """One pass over the lung box (``hu`` and ``lungs`` are the box crops), slab by slab of the blob grid: for
        each HU threshold, the blob-grid counts of the lung voxels denser than it (``self.sums``). For the
        threshold ``located``, returns where those voxels are: index arrays of their row ``z * ny + y`` and
        column ``x`` within the box. ``into`` (threshold -> bool box array): those voxels are written there. Each
        slab is thresholded while it is in cache; no other box-sized array is made."""
        fz, fy, fx = (int(f) for f in self.factors)
        nzb, nyb, nxb = hu.shape
        ncz, ncy, ncx = self.counts.shape
        acc_type = _sum_type(bool, fz * fy * fx)
        thresholds = [float(t) for t in thresholds]
        into = into or {}
        for t in thresholds:
            self.sums[t] = np.zeros((ncz, ncy, ncx), dtype=acc_type)
        found = [None] * ncz

        def work(czs: range) -> None:
            rows = np.zeros((ncy * fy, nxb), dtype=acc_type)
            dense = np.empty((fz, nyb, nxb), dtype=bool)
            lung = np.empty((fz, nyb, nxb), dtype=bool)
            for cz in czs:
                z = slice(cz * fz, min((cz + 1) * fz, nzb))
                k = z.stop - z.start
                np.not_equal(lungs[z], 0, out=lung[:k])
                for t in thresholds:
                    d = into[t][z] if t in into else dense[:k]
                    np.greater(hu[z], t, out=d)
                    np.logical_and(d, lung[:k], out=d)
                    _slab_sum(d, fy, fx, rows, self.sums[t][cz])
                    if t == located:
                        row, x = np.divmod(np.flatnonzero(d), nxb)
                        found[cz] = (row + z.start * nyb, x)

        _in_halves(work, ncz)
        if located is not None:
            return tuple(np.concatenate(c) for c in zip(*found))
        return None

    def blob(self, threshold_hu: float, blob_radius_mm: float) -> np.ndarray:
        """Blob-grid voxels of blobs of the lung voxels denser than ``threshold_hu`` (bool; see :func:`_blob`)."""
        return _blob(self.sums[float(threshold_hu)], self.counts, self.csp, blob_radius_mm)


_SHARED: list[_Shared] = []


def _shared(hu: np.ndarray, lungs: np.ndarray, sp: np.ndarray) -> _Shared | None:
    """The shared work for these arrays (None if ``lungs`` is empty): reused while the same arrays are passed."""
    if _SHARED and _SHARED[0].matches(hu, lungs, sp):
        return _SHARED[0]
    _SHARED.clear()
    box = _fast_bbox(lungs)
    if box is None:
        return None
    shared = _Shared(hu, lungs, sp, box)
    _SHARED.append(shared)
    # what the cache holds for these arrays goes with them
    weakref.finalize(lungs, _forget, weakref.ref(shared))
    return shared


def _forget(ref: weakref.ref) -> None:
    """Drop the shared work of a lung array that is gone (with the volume it may have prepared)."""
    shared = ref()
    if shared is not None:
        try:
            _SHARED.remove(shared)
        except ValueError:  # already replaced
            pass


def _blob(sums: np.ndarray, counts: np.ndarray, csp, blob_radius_mm: float) -> np.ndarray:
    """Blobs on the blob grid (bool): a blob holds a ball of radius ``blob_radius_mm``.

    Opening on a grid of about 2 mm (coarse spacing ``csp``, voxels per block ``counts``, dense voxels per block
    ``sums``) where a voxel is dense when at least half of it is; blobs are grown by the same ball to take back
    their edges, blurred by the scanner and by partial volume with the aerated lung.
    """
    solid = sums >= 0.5 * counts
    ball = _ball(blob_radius_mm, csp)
    return _dilate(_open(solid, ball), ball)


def _without_blobs(dense: np.ndarray, blob: np.ndarray, factors) -> np.ndarray:
    """``dense`` (bool, in place) without the voxels of the blob-grid ``blob`` (its blocks cover ``dense``)."""
    fz, fy, fx = (int(f) for f in factors)
    nz, ny, nx = dense.shape
    slabs = np.flatnonzero(blob.any(axis=(1, 2)))

    def work(items: range) -> None:
        for cz in slabs[items.start : items.stop]:
            b = blob[cz]
            r, c = np.flatnonzero(b.any(axis=1)), np.flatnonzero(b.any(axis=0))
            rs = slice(r[0] * fy, min(ny, (r[-1] + 1) * fy))
            cs = slice(c[0] * fx, min(nx, (c[-1] + 1) * fx))
            up = _up2(b[r[0] : r[-1] + 1, c[0] : c[-1] + 1], fy, fx, rs.stop - rs.start, cs.stop - cs.start)
            np.copyto(dense[cz * fz : (cz + 1) * fz, rs, cs], False, where=up)

    _in_halves(work, slabs.size)
    return dense


def _inner(flat_index: np.ndarray, lungs: np.ndarray) -> np.ndarray:
    """Whether all face neighbours of the lung voxels at ``flat_index`` (not on the array's border) are lung
    (non-zero ``lungs``), as a bool array."""
    ny, nx = lungs.shape[1:]
    flat = lungs.reshape(-1)  # a copy only if lungs is not contiguous
    keep = np.ones(flat_index.size, dtype=bool)
    for step in (1, nx, nx * ny):
        keep &= flat[flat_index - step] != 0
        keep &= flat[flat_index + step] != 0
    return keep


def segment_vessels(
    hu: np.ndarray, lungs: np.ndarray, spacing, *, threshold_hu: float = -300.0, blob_radius_mm: float = 4.0
) -> np.ndarray:
    """Pulmonary vessels: thin dense structures inside the lungs, as distinct from blob-like consolidation.

    Dense voxels (> ``threshold_hu``) inside ``lungs`` are vessels unless they belong to a blob, a dense region that
    holds a ball of radius ``blob_radius_mm``; so vessels up to about ``2 * blob_radius_mm + 2`` mm wide are
    vessels while consolidation at least that thick, subpleural or not, is not. The outermost voxel layer of the
    lungs (voxels with a face neighbour outside the lungs: partial volume with the chest wall) is never vessel.

    Parameters
    ----------
    hu : (z, y, x) array
        CT volume in HU.
    lungs : (z, y, x) array
        Lung mask or labels (non-zero is lung), e.g. from :func:`segment_lungs`.
    spacing : (dz, dy, dx)
        Voxel size in mm.
    threshold_hu : float
        Minimum HU of a vessel voxel.
    blob_radius_mm : float
        Radius (mm) of the smallest ball a consolidation holds.

    Returns
    -------
    vessels : (z, y, x) bool
    """
    hu, sp = _check(hu, spacing)
    lungs = np.asarray(lungs)
    if lungs.shape != hu.shape:
        raise ValueError(f"lungs shape {lungs.shape} differs from hu shape {hu.shape}")
    out = new_volume(hu.shape, bool)
    shared = _shared(hu, lungs, sp)
    if shared is None:
        return out
    box = shared.box
    t = float(threshold_hu)
    # opacity_exclusion's dense voxels (default threshold) come with the same pass, while each slab is in cache:
    # written into the volume it will return
    into = {}
    if t != _AERATED_HU:
        shared.dense[_AERATED_HU] = new_volume(hu.shape, bool)
        into[_AERATED_HU] = shared.dense[_AERATED_HU][box]
    row, x = shared.count(hu[box], lungs[box], [t, *into], located=t, into=into)
    # dense lung voxels, not in a blob, not in the outermost layer: the few candidates are tested one by one
    nz, ny, nx = hu.shape
    fz, fy, fx = (int(f) for f in shared.factors)
    nyb = box[1].stop - box[1].start
    rz, ry = np.divmod(np.arange((box[0].stop - box[0].start) * nyb), nyb)  # each row of the box: z, y
    blob = shared.blob(t, blob_radius_mm)
    blob_rows = blob.reshape(-1, blob.shape[2])
    cols = np.arange(box[2].stop - box[2].start)
    block_row, block_col = (rz // fz) * blob.shape[1] + ry // fy, cols // fx  # their blob-grid row, column
    keep = np.flatnonzero(~blob_rows[block_row[row], block_col[x]])  # not in a blob
    row, x = row[keep], x[keep]
    # not on the array's border (the box is the lungs' bounding box: beyond it, nothing is lung)
    gz, gy, gx = rz + box[0].start, ry + box[1].start, cols + box[2].start
    row_ok = (gz > 0) & (gz < nz - 1) & (gy > 0) & (gy < ny - 1)
    col_ok = (gx > 0) & (gx < nx - 1)
    keep = np.flatnonzero(row_ok[row] & col_ok[x])
    flat = ((gz * ny + gy) * nx + box[2].start)[row[keep]] + x[keep]
    flat = flat[_inner(flat, lungs)]
    out.reshape(-1)[flat] = True
    shared.vessel_index = flat
    shared.vessels = weakref.ref(out)
    return out


def opacity_exclusion(
    hu: np.ndarray,
    lungs: np.ndarray,
    spacing,
    *,
    vessels: np.ndarray | None = None,
    aerated_hu: float = _AERATED_HU,
    blob_radius_mm: float = 4.0,
) -> np.ndarray:
    """Lung voxels that must not count as opacity: vessels and every other thin structure denser than aerated lung.

    Opacity (> ``aerated_hu`` HU) that is not blob-like (holds no ball of radius ``blob_radius_mm``, see
    :func:`segment_vessels`) is excluded: vessels with their blurred edges, the partial-volume rim along the pleura,
    the mediastinum and the diaphragm, fissures and noise speckle. Ground glass and consolidation, also against
    the chest wall, are blob-like and stay, edges included.

    Parameters
    ----------
    hu : (z, y, x) array
        CT volume in HU.
    lungs : (z, y, x) array
        Lung mask or labels (non-zero is lung).
    spacing : (dz, dy, dx)
        Voxel size in mm.
    vessels : (z, y, x) bool, optional
        Vessel mask to include; computed with :func:`segment_vessels` when omitted.
    aerated_hu : float
        Upper HU bound of aerated lung (the lower bound of ground glass).
    blob_radius_mm : float
        Radius (mm) of the smallest ball an opacity holds.

    Returns
    -------
    excluded : (z, y, x) bool, inside ``lungs``; it contains ``vessels``.
    """
    hu, sp = _check(hu, spacing)
    lungs = np.asarray(lungs)
    if lungs.shape != hu.shape:
        raise ValueError(f"lungs shape {lungs.shape} differs from hu shape {hu.shape}")
    if vessels is None:
        vessels = segment_vessels(hu, lungs, sp, blob_radius_mm=blob_radius_mm)
    shared = _shared(hu, lungs, sp)
    if shared is None:
        return np.zeros(hu.shape, dtype=bool)
    box = shared.box
    t = float(aerated_hu)
    out = shared.dense.pop(t, None)  # prepared by segment_vessels in its pass over the volume
    if out is None:
        out = new_volume(hu.shape, bool)
        crop = out[box]
        if t not in shared.sums:
            shared.count(hu[box], lungs[box], [t], into={t: crop})
        else:
            hu_b, lungs_b = hu[box], lungs[box]
            fz = int(shared.factors[0])

            def work(czs: range) -> None:
                z = slice(czs.start * fz, czs.stop * fz)
                np.greater(hu_b[z], t, out=crop[z])
                np.logical_and(crop[z], lungs_b[z], out=crop[z])

            _in_halves(work, shared.counts.shape[0])
    crop = out[box]
    _without_blobs(crop, shared.blob(t, blob_radius_mm), shared.factors)
    if shared.vessels is not None and shared.vessels() is vessels and shared.vessel_index is not None:
        out.reshape(-1)[shared.vessel_index] = True  # our own vessel mask: its voxels, inside the lungs
    else:
        crop |= np.logical_and(np.asarray(vessels)[box], lungs[box])
    return out
