"""Nodules against the mediastinum: a small solid piece of tissue that the lung wraps, taken back into the lung.

The pockets of :mod:`.repair` are filled along the chest wall only: on the mediastinal side the pockets between the
lung and its hull hold the heart, the great vessels and the hilum. A nodule lying against the mediastinal pleura is
then left out where it touches it, although the lung wraps it on most sides. Such a nodule is what the lung's
outline closed by a ball of :data:`WRAP_MM` adds (the ball cannot follow the outline into the notch that the
nodule makes), when the piece is small (at most :data:`NODULE_MAX_MM` across: a nodule, not the aorta or the
heart), solid (denser than :data:`~._grid.AIR_HU`, below :data:`~._grid.BONE_HU`, and holding a ball of
:data:`CORE_MM`: not a strip of pleura) and mostly wrapped by the lung (at least :data:`WRAPPED_SHARE` of the
voxels around it are that lung's: a hilar vessel or a lymph node bulging from the mediastinum is held by the
mediastinum over a larger share of its surface).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ._grid import _PLANE4, AIR_HU, BONE_HU, _ball, _bbox, _dilate, _edt, _erode

#: mm. Radius of the ball that closes the lung's outline: a nodule narrower than 2 x 8 mm in some direction holds
#: no such ball and is closed over; the heart's and the aorta's broad convexities hold it and are not. (A nodule
#: wider than that in every direction holds the ball too and is not taken back.)
WRAP_MM = 8.0
#: mm. Largest extent of a nodule along any axis (a larger opacity is a mass, Fleischner Society glossary): larger
#: pieces are the mediastinum's own convexities (the aortic arch, the hilum).
NODULE_MAX_MM = 30.0
#: Share of the voxels around a piece that are its lung, at least: a nodule in the lung is wrapped by it.
WRAPPED_SHARE = 0.8
#: mm. A nodule holds a ball of this radius; a strip of pleura or the wall's relief does not.
CORE_MM = 3.5
#: mm. The pieces are first sought on voxels about this far apart (then judged at the scan's resolution).
SEARCH_MM = 3.0
_CUBE = np.ones((3, 3, 3), bool)


def _pieces(hu, labels, side, sp, max_mm, share, core_mm=0.0, min_ml=0.0, search=False):
    """Pieces that the closed outline of lung ``side`` adds and that pass the tests (at most ``max_mm`` across, at
    least ``share`` of the voxels around them that lung's, holding a ball of ``core_mm`` (0: no test), of at least
    ``min_ml``): a list of (slices of ``labels``, bool mask within them). Pieces touching the array's border are
    skipped. ``search``: on a grid of a few mm, the closing by unions of boxes (faster there than distance maps)
    and, instead of the ball, a voxel whose four in-plane neighbours are in the piece."""
    lung = labels == side
    if not lung.any():
        return []
    margin = [int(np.ceil((WRAP_MM + 2.0) / s)) for s in sp]
    box = _bbox(lung, margin)
    if search:  # the whole lung: beyond the array there is no lung; closed by the ball as unions of boxes
        inner = tuple(slice(m, m + (b.stop - b.start)) for m, b in zip(margin, box))
        ball = _ball(WRAP_MM, sp)
        closed = _erode(_dilate(np.pad(lung[box], [(m, m) for m in margin]), ball), ball)[inner]
    else:  # a region whose margin holds what the closing reads around the piece (the lung may run on beyond it)
        closed = _edt(_edt(~lung[box], sp) <= WRAP_MM, sp) > WRAP_MM
    h = hu[box]
    cand = closed & (labels[box] == 0) & (h > AIR_HU) & (h < BONE_HU)
    if not cand.any():
        return []
    pieces, _ = ndimage.label(cand, _CUBE)
    cores = set(np.unique(pieces[_erode(cand, _PLANE4)])) if search else None
    lb = lung[box]
    found = []
    for i, sl in enumerate(ndimage.find_objects(pieces), start=1):
        if sl is None or (cores is not None and i not in cores):
            continue
        at = tuple(slice(b.start + s.start, b.start + s.stop) for b, s in zip(box, sl))
        if any(a.start == 0 or a.stop == n for a, n in zip(at, labels.shape)):
            continue  # cut by the region read: its size is unknown
        if np.any(np.array([s.stop - s.start for s in sl]) * sp > max_mm):
            continue
        grown = tuple(slice(max(0, s.start - 1), s.stop + 1) for s in sl)
        piece = pieces[grown] == i
        if np.count_nonzero(piece) * float(np.prod(sp)) < 1000.0 * min_ml:
            continue
        around = ndimage.binary_dilation(piece, _CUBE) & ~piece
        if np.count_nonzero(around & lb[grown]) < share * np.count_nonzero(around):
            continue
        if core_mm > 0 and _edt(np.pad(piece, 1), sp).max() < core_mm:
            continue
        found.append((at, piece[tuple(slice(s.start - g.start, s.stop - g.start) for s, g in zip(sl, grown))]))
    return found


def add_wrapped_nodules(hu: np.ndarray, labels: np.ndarray, spacing) -> float:
    """Add to ``labels`` (in place) the nodules that a lung wraps but that its outline leaves out (see the module
    docstring); return the volume added, mL.

    The pieces are sought on every few voxels (about :data:`SEARCH_MM` apart, with looser limits), and each one
    found is judged again at the scan's resolution in a region around it.

    Parameters
    ----------
    hu : (z, y, x) HU.
    labels : (z, y, x) uint8 lung labels (0 background, 1 right, 2 left), at the scan's resolution; modified.
    spacing : (dz, dy, dx) voxel size in mm.
    """
    sp = np.asarray(spacing, dtype=float)
    step = np.maximum(1, np.floor(SEARCH_MM / sp + 1e-6)).astype(int)
    sub = tuple(slice(None, None, int(k)) for k in step)
    coarse_sp = sp * step
    reach = [int(np.ceil((2.0 * WRAP_MM + 2.0) / s)) for s in sp]  # the closing at a voxel reads 2 x WRAP_MM around
    added = 0
    for side in (1, 2):
        loose = _pieces(
            hu[sub],
            labels[sub],
            side,
            coarse_sp,
            NODULE_MAX_MM + 2.0 * coarse_sp.max(),
            WRAPPED_SHARE,
            min_ml=0.5 * 4.0 / 3.0 * np.pi * CORE_MM**3 / 1000.0,  # half the core's ball: a few coarse voxels
            search=True,
        )
        for at, _ in loose:
            region = tuple(
                slice(max(0, a.start * k - r), min(n, (a.stop - 1) * k + 1 + r))
                for a, k, r, n in zip(at, step, reach, labels.shape)
            )
            for sl, piece in _pieces(hu[region], labels[region], side, sp, NODULE_MAX_MM, WRAPPED_SHARE, CORE_MM):
                target = labels[region][sl]
                piece &= target == 0
                target[piece] = side
                added += int(np.count_nonzero(piece))
    return added * float(np.prod(sp)) / 1000.0
