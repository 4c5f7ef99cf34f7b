"""The patient's body on the coarse grid: robust to tables, trays, mattresses, cables and a cut field of view."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from lungtrial.imaging._arrays import fill_holes_2d

from ._grid import AIR_HU, _disk, _edt

#: mm. Radius of the in-plane opening that cuts the body loose from what touches it. Table tops, curved trays,
#: head holders and cables are thinner than 2 x 6 mm where they meet the patient (a tray is 3-8 mm of dense
#: material over a foam mattress that is air-like on CT); the chest and abdominal wall are thicker than that.
TABLE_CUT_MM = 6.0
#: mm. How far tissue the opening removed grows back from the body along dense tissue: a chest wall thinner than
#: the opening's diameter over the lung (thin patients, anteriorly) is given back where the stretch is shorter than
#: twice this, while a tray is given back only this far from where it touches the patient.
WALL_REGROW_MM = 25.0
#: mm. Longest stretch of the image edge that a cut body can span between two points where its tissue touches
#: the edge: a lung cut by a targeted field of view meets the edge over at most its own depth (about 250 mm).
FOV_CUT_MAX_MM = 250.0
#: HU. Beyond the reconstruction circle scanners store padding, which the reader gives as -1024 HU (the lowest air
#: value): a coarse block there reads exactly this (or less) in every slice, where measured air, noisy about
#: -1000 HU, never averages so low.
FOV_PADDING_HU = -1024.0
#: mm. Longest stretch of a reconstruction circle's edge that a cut body can span: a lung that a wide patient's
#: flank carries beyond the circle meets it over a short arc; the air beside the body (in front of it, under the
#: back around a mattress) meets it over a longer one, and an arc that long bulges far beyond its chord.
FOV_ARC_MAX_MM = 120.0
#: Largest spread of the field of view's boundary about its centre (robust standard deviation of the radius, as a
#: share of the median radius) for the padding to count as the outside of a reconstruction circle.
FOV_ROUND = 0.03


def body_mask(coarse: np.ndarray, cspacing) -> np.ndarray:
    """The body (bool, coarse grid): the patient's tissue and everything it encloses in each axial slice.

    1. Tissue is everything denser than :data:`AIR_HU` (-500 HU; air, lung and foam are lighter).
    2. An in-plane opening by a disk of :data:`TABLE_CUT_MM` cuts thin attachments: table, tray, mattress skin,
       cables, a blanket. The body is the largest 3-D connected region that is left; the tissue within the opening
       regrowth distance :data:`WALL_REGROW_MM` of it, along tissue in the slice and from the slices above and below,
       is given back (thin stretches of chest wall, skin folds), not the table beyond it. A thin patient's wall can
       be thinner than the opening over a longer stretch than the regrowth spans in one slice; it goes on from slice
       to slice and comes back from a slice where it is thicker (otherwise the lungs of that slice, no longer
       enclosed, are outside air).
    3. Holes are filled slice by slice: lungs, airways and bowel gas are inside, the air between the back and a
       curved tray (whose sides rise around the flanks) is outside, because the tray is no longer part of it.
    4. Where the field of view cuts the body, a lung runs into the field of view's edge and is not a hole: in
       those slices, stretches of that edge of at most :data:`FOV_CUT_MAX_MM` that lie between two places where the
       body touches it, within the body's convex hull, are closed before filling (the outside air beside a body cut
       on both sides lies outside its hull). The field of view's edge is the image's, or the reconstruction circle's
       where the image holds padding beyond a circle (:func:`outside_fov`): a body wider than the circle runs into
       the padding, not into the image edge.

    Parameters
    ----------
    coarse : (z, y, x) array
        Block-averaged HU.
    cspacing : (dz, dy, dx)
        Voxel size of ``coarse`` in mm.

    Raises
    ------
    ValueError
        If no voxel is denser than -500 HU.
    """
    cspacing = np.asarray(cspacing, float)
    dense = coarse > AIR_HU
    if not dense.any():
        raise ValueError("no body found: no voxel is denser than -500 HU")
    disk = _disk(TABLE_CUT_MM, cspacing[1:])
    opened = ndimage.binary_opening(dense, structure=disk)
    lab, n = ndimage.label(opened if opened.any() else dense)
    sizes = np.bincount(lab.ravel())
    sizes[0] = 0
    core = lab == int(np.argmax(sizes))
    # the thin parts of the wall the opening took (a lung within a few mm of the skin) grow back from both sides,
    # and from the slices above and below: the wall goes on from slice to slice
    grow = ndimage.generate_binary_structure(3, 1)
    grow[1] = True  # in-plane 8-connected: a wall one voxel thick runs diagonally as a staircase
    steps = int(np.ceil(WALL_REGROW_MM / min(cspacing[1:])))
    body = ndimage.binary_dilation(core, structure=grow, iterations=steps, mask=dense) | core
    return _fill_holes_fov(body, cspacing[1:], outside_fov(coarse))


def outside_fov(coarse: np.ndarray) -> np.ndarray | None:
    """The in-plane pixels beyond the reconstruction circle and those across its edge (bool, (y, x)), or None when
    the image's own edge bounds the field of view.

    Padding (:data:`FOV_PADDING_HU` or less in every slice) counts as beyond the circle when what is left is one
    region whose edge inside the image is round about its centre (:data:`FOV_ROUND`): padding of another shape
    (none, or air that a scanner stores flat) leaves the image edge as the field of view's."""
    flat = np.all(coarse <= FOV_PADDING_HU, axis=0)
    if not flat.any() or flat.all():
        return None
    fov = ~flat
    if ndimage.label(fov)[1] != 1:
        return None
    edge = fov & ~ndimage.binary_erosion(fov, border_value=1)  # next to the padding, not the image's own edge
    ys, xs = np.nonzero(edge)
    if ys.size < 8:
        return None
    cy, cx = np.nonzero(fov)
    r = np.hypot(ys - cy.mean(), xs - cx.mean())
    med = float(np.median(r))
    spread = 1.4826 * float(np.median(np.abs(r - med)))
    if med <= 0 or spread > FOV_ROUND * med:
        return None
    # the blocks across the circle's edge average padding into what they hold: neither tissue nor air
    return ndimage.binary_dilation(flat)


def _edge_ring(ny: int, nx: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices of a plane's edge pixels, in order around it (clockwise from the top left)."""
    top = [(0, c) for c in range(nx)]
    right = [(r, nx - 1) for r in range(1, ny)]
    bottom = [(ny - 1, c) for c in range(nx - 2, -1, -1)]
    left = [(r, 0) for r in range(ny - 2, 0, -1)]
    ring = np.array(top + right + bottom + left)
    return ring[:, 0], ring[:, 1]


def _fov_ring(outside: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices of the field of view's edge pixels (inside it, next to ``outside`` or to the image
    edge), in order around its centre."""
    fov = ~outside
    edge = fov & ~ndimage.binary_erosion(fov, border_value=0)
    rows, cols = np.nonzero(edge)
    cy, cx = np.nonzero(fov)
    order = np.argsort(np.arctan2(rows - cy.mean(), cols - cx.mean()), kind="stable")
    return rows[order], cols[order]


def _fill_holes_fov(body: np.ndarray, pix, outside: np.ndarray | None = None) -> np.ndarray:
    """Holes filled per slice; stretches of the field of view's edge (the image's, or ``outside``'s: the pixels
    beyond the reconstruction circle) spanned by a cut body are closed first.

    On a circle's edge the stretch is at most :data:`FOV_ARC_MAX_MM` long and may lie beyond the body's hull by the
    sagitta of its arc over its chord (``span**2 / (8 R)``) and a pixel."""
    from .repair import _hull_planes

    nz, ny, nx = body.shape
    rows, cols = _edge_ring(ny, nx) if outside is None else _fov_ring(outside)
    step = np.hypot(np.diff(rows, append=rows[0]) * pix[0], np.diff(cols, append=cols[0]) * pix[1])
    if outside is not None:
        fy, fx = np.nonzero(~outside)
        radius = float(np.median(np.hypot((rows - fy.mean()) * pix[0], (cols - fx.mean()) * pix[1])))
    on_edge = body[:, rows, cols]
    closed = np.zeros(body.shape, dtype=bool)
    for z in np.flatnonzero(on_edge.any(axis=1)):
        touch = on_edge[z]
        if touch.all():
            continue
        start = int(np.flatnonzero(touch)[0])
        seq = np.roll(touch, -start)  # begins with a body pixel: every gap lies between two body pixels
        lengths = np.roll(step, -start)
        gaps, count = ndimage.label(~seq)
        if count == 0:
            continue
        span = ndimage.sum_labels(lengths, gaps, index=np.arange(1, count + 1))
        # a cut lung's stretch of edge lies within the body's convex hull (tissue on both sides of it along the
        # edge); outside air that the body leaves at the edge does not
        hull = _hull_planes(body[z][None], pix)[0]
        if outside is None:
            inside = ndimage.minimum(np.roll(hull[rows, cols], -start), gaps, index=np.arange(1, count + 1)) > 0
        else:
            beyond = _edt(~hull, pix)[rows, cols]
            far = ndimage.maximum(np.roll(beyond, -start), gaps, index=np.arange(1, count + 1))
            inside = (far <= span**2 / (8.0 * radius) + max(pix)) & (span <= FOV_ARC_MAX_MM)
        ok = np.concatenate([[False], (span <= FOV_CUT_MAX_MM) & inside])
        shut = ok[gaps]
        idx = (np.flatnonzero(shut) + start) % seq.size
        closed[z, rows[idx], cols[idx]] = True
    return fill_holes_2d(body | closed) | body
