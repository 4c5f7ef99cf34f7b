"""Vessels inside the lungs and the voxels never counted as opacity (pleural rim, vessel halo)."""

from __future__ import annotations

import weakref

import numpy as np

from lungtrial.imaging._arrays import fast_bbox
from lungtrial.memory import new_volume
from lungtrial.parallel import in_halves

from ._grid import (
    _AERATED_HU,
    BLOB_GRID_MM,
    _ball,
    _block_counts,
    _block_factors,
    _check,
    _dilate,
    _open,
    _slab_sum,
    _sum_type,
    _up2,
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
        self.lung_counts: np.ndarray | None = None  # blob-grid counts of lung voxels (made by the first count)
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
        lung_counts = None
        if self.lung_counts is None:
            lung_counts = np.zeros((ncz, ncy, ncx), dtype=acc_type)
        found = [None] * ncz

        def work(czs: range) -> None:
            rows = np.zeros((ncy * fy, nxb), dtype=acc_type)
            dense = np.empty((fz, nyb, nxb), dtype=bool)
            lung = np.empty((fz, nyb, nxb), dtype=bool)
            for cz in czs:
                z = slice(cz * fz, min((cz + 1) * fz, nzb))
                k = z.stop - z.start
                np.not_equal(lungs[z], 0, out=lung[:k])
                if lung_counts is not None:
                    _slab_sum(lung[:k], fy, fx, rows, lung_counts[cz])
                for t in thresholds:
                    d = into[t][z] if t in into else dense[:k]
                    np.greater(hu[z], t, out=d)
                    np.logical_and(d, lung[:k], out=d)
                    _slab_sum(d, fy, fx, rows, self.sums[t][cz])
                    if t == located:
                        row, x = np.divmod(np.flatnonzero(d), nxb)
                        found[cz] = (row + z.start * nyb, x)

        try:
            in_halves(work, ncz)
        except BaseException:  # no half-made counts stay in the cache
            for t in thresholds:
                self.sums.pop(t, None)
            raise
        if lung_counts is not None:
            self.lung_counts = lung_counts
        if located is not None:
            return tuple(np.concatenate(c) for c in zip(*found))
        return None

    def blob(self, threshold_hu: float, blob_radius_mm: float) -> np.ndarray:
        """Blob-grid voxels of blobs of the lung voxels denser than ``threshold_hu`` (bool; see :func:`_blob`)."""
        return _blob(self.sums[float(threshold_hu)], self.lung_counts, self.csp, blob_radius_mm)


_SHARED: list[_Shared] = []


def _shared(hu: np.ndarray, lungs: np.ndarray, sp: np.ndarray) -> _Shared | None:
    """The shared work for these arrays (None if ``lungs`` is empty): reused while the same arrays are passed."""
    if _SHARED and _SHARED[0].matches(hu, lungs, sp):
        return _SHARED[0]
    _SHARED.clear()
    box = fast_bbox(lungs)
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


def _blob(sums: np.ndarray, lung_counts: np.ndarray, csp, blob_radius_mm: float) -> np.ndarray:
    """Blobs on the blob grid (bool): a blob holds a ball of radius ``blob_radius_mm``.

    Opening on a grid of about 2 mm (coarse spacing ``csp``, lung voxels per block ``lung_counts``, dense lung
    voxels per block ``sums``) where a block is dense when at least half of its lung voxels are: a block cut by the
    pleura is judged by its lung part, so an opacity lying against the chest wall or the diaphragm is as much a
    blob as one inside the lung. Blobs are grown by the same ball to take back their edges, blurred by the scanner
    and by partial volume with the aerated lung.
    """
    lung = lung_counts.astype(np.int32)
    solid = (2 * sums.astype(np.int32) >= lung) & (lung > 0)
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

    in_halves(work, slabs.size)
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

            in_halves(work, shared.counts.shape[0])
    crop = out[box]
    _without_blobs(crop, shared.blob(t, blob_radius_mm), shared.factors)
    if shared.vessels is not None and shared.vessels() is vessels and shared.vessel_index is not None:
        out.reshape(-1)[shared.vessel_index] = True  # our own vessel mask: its voxels, inside the lungs
    else:
        crop |= np.logical_and(np.asarray(vessels)[box], lungs[box])
    return out
