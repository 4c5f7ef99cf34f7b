"""The lung boundary at full resolution, within one coarse voxel of the coarse boundary."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from lungtrial.parallel import in_halves

from ._grid import _CROSS, AIR_HU, BONE_HU, FAT_FLOOR_HU, HAZY_HU, _bbox, _dilate, _erode, _grey_grow, _up2


def _edge_threshold(
    coarse: np.ndarray, lungs_c: np.ndarray, aerated_c: np.ndarray, body: np.ndarray
) -> tuple[float, float | None]:
    """Half-maximum HU between the aerated parenchyma and the tissue around the lungs (coarse grid).

    The parenchyma is the median of the aerated lung away from its edge; the wall is the median of the non-bony
    body tissue two coarse voxels outside the lungs (beyond their partial-volume layer). The edge of a blurred step
    lies where its profile crosses half-way between the two. Falls back to -500 HU when either cannot be measured;
    limited to -650 to -300 HU. Returns the threshold and the parenchyma's HU (None when not measured).
    """
    inside = lungs_c > 0
    core = _erode(aerated_c > 0, _CROSS)
    one = _dilate(inside, _CROSS)
    shell = _dilate(one, _CROSS) & ~one & body & (coarse > AIR_HU) & (coarse < BONE_HU)
    if core.sum() < 100 or shell.sum() < 100:
        return AIR_HU, None
    lung, wall = float(np.median(coarse[core])), float(np.median(coarse[shell]))
    return float(np.clip(0.5 * (lung + wall), -650.0, -300.0)), lung


def _local_edge(coarse: np.ndarray, interior: np.ndarray, threshold: float, parenchyma: float) -> np.ndarray:
    """Edge threshold per coarse block (HU): half-way between the lung next to it and the wall.

    ``threshold`` is half-way between the parenchyma (``parenchyma`` HU) and the wall; where the mean HU of the
    interior lung blocks in a block's 3 x 3 x 3 neighbourhood is higher (ground glass against the pleura, or a
    vessel reaching it), the threshold rises by half the difference, up to ``HAZY_HU``. Without this, the
    partial-volume layer of ground glass against the wall (which a soft-tissue fraction of a quarter already lifts
    past the aerated lung's threshold) would be cut from the lung and from the lesion. Never below ``threshold``.
    """
    lung = interior.astype(np.float32)
    n = ndimage.uniform_filter(lung, 3, mode="constant")
    total = ndimage.uniform_filter(np.where(interior, coarse, 0.0).astype(np.float32), 3, mode="constant")
    with np.errstate(divide="ignore", invalid="ignore"):
        local = np.where(n > 0.5 / 27, total / n, parenchyma)
    return np.clip(threshold + 0.5 * (local - parenchyma), threshold, max(threshold, HAZY_HU))



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
    coarse: np.ndarray | None = None,
    parenchyma: float | None = None,
) -> np.ndarray:
    """Full-resolution labels: ``hu < threshold`` decides within one coarse voxel of the coarse boundary
    (``hu < HAZY_HU`` next to ground glass and repaired lesions).

    ``out`` (zeros, the volume's shape, uint8) receives the labels when given. Repaired (lesion) and ground-glass
    coarse voxels keep their coarse extent; airway voxels are never added. ``grown_c`` (coarse bool, optional) marks
    consolidation grown beyond the lung's outline (:func:`_continue_consolidation`): its outer layer and the tissue
    next to it, away from aerated lung, are decided by :func:`_grown_edge` on locally averaged HU against
    ``grown_limit`` (HU), keeping the coarse decision where the evidence is within half of ``grown_noise`` (HU, the
    noise of a coarse voxel's HU); only those blocks (and half a block around them) are read for it. ``coarse``
    (block-mean HU) and ``parenchyma`` (HU, see :func:`_edge_threshold`), both optional: where the lung next to
    the edge is denser than the parenchyma (ground glass lying against the pleura), the edge moves up by half the
    difference, so it stays half-way between that lung and the wall (:func:`_local_edge`). Otherwise only
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
    if coarse is not None and parenchyma is not None:
        edge = _local_edge(coarse[box], interior[box], threshold, parenchyma)[band_b]
        limit_b[band_b] = np.ceil(edge) if hu.dtype.kind == "i" else edge
    else:
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

    in_halves(work, fixed_b.shape[0])
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
