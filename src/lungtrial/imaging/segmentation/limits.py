"""Anatomical limits that no lung crosses: the diaphragm below it and the rib cage around it.

The pockets of the lesion repair (:mod:`.repair`) add to the aerated lung what the lung's outline suggests is
lesion. Density cannot tell consolidation from the organs it lies on (unenhanced liver 55-65 HU, spleen 45-50,
muscle 40-60, consolidation 20-60), so what they add is kept only where anatomy allows lung:

- **Above the diaphragm.** Per lung, the lowest aerated voxel of each (y, x) column traces the diaphragm where
  the lung lies on it. Consolidation on the diaphragm raises that trace in a bump; the dome itself is a wide,
  smooth surface. A grey-level opening of the trace by a disk of :data:`DOME_BUMP_MM` removes the bumps and keeps
  the dome, also on its steep slopes (an opening follows a ramp): that is the floor. Nothing as dense as water or
  denser (:data:`PARTLY_AERATED_MAX_HU`), nor anything as light as fat or lighter (:data:`FAT_FLOOR_HU`), judged
  on the median around each voxel, is added more than :data:`DIAPHRAGM_MARGIN_MM` below the floor: the liver
  under the right dome, the spleen, the stomach and the fat under the left one lie there. Columns outside that
  lung's footprint (the columns holding aerated lung of it, gaps narrower than the disk filled) have no floor and
  take nothing of that kind. Consolidation as dense as the liver that lies on the diaphragm over a stretch wider
  than the disk raises the floor with it and is left out (a known limit: density cannot tell it from the liver,
  and the trace cannot show it).
- **Inside the rib cage.** In each axial slice where bone surrounds the lungs (ribs on both sides), nothing is
  added outside the convex hull of the bone (ribs, spine, sternum): the chest wall muscles, fat, the breasts and
  the arms lie outside it. Slices whose bone leaves aerated lung outside its hull (costal cartilage without
  calcium, a rib cut by the field of view) have no limit.
- **Not a viscus.** Consolidation continued by its density (:mod:`.repair`) is held by the rib cage, not by the
  floor (it needs contrast against the tissue around the lungs, so it is not the liver). A piece of it that reaches
  the gas of the colon or the stomach and lies mostly below the floor is that viscus's wall and content
  (:func:`viscus_pieces`).
- **Not a thin strip.** What is added beyond the lung's outline (not enclosed by it in the axial plane, as
  vessels and nodules are) must be thick somewhere (hold a ball of :data:`THIN_MM`); strips along the
  wall and the mediastinum that are thinner everywhere are the wall's own relief, not lesions.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from lungtrial.imaging._arrays import fill_holes_2d

from ._grid import AIR_HU, FAT_FLOOR_HU, LEFT, RIGHT, _bbox, _disk

#: mm. Radius of the disk that opens the diaphragm trace: consolidation lying on the diaphragm raises the trace in
#: bumps up to about twice this wide; the domes (radius of curvature 100-150 mm) are much wider and are kept.
DOME_BUMP_MM = 30.0
#: mm. Tolerance below the diaphragm floor: one coarse voxel's partial volume of the lung's base.
DIAPHRAGM_MARGIN_MM = 4.0
#: mm. Radius of the ball a lesion added beyond the aerated lung must hold somewhere: the strips that pockets take
#: in along the chest wall and the mediastinum (rib impressions, the staircase of a curved surface on the coarse
#: grid, the partial volume of the wall) are thinner; a lesion that matters for the opacity is thicker.
THIN_MM = 4.0
#: HU. Tissue between fat and water next to the lung is partly aerated lung: every fluid, blood and solid organ under
#: the diaphragm is denser (water 0, bile and gastric fluid 0-20, spleen 45-50, liver 55-65 HU), fat lighter. Such
#: tissue (denser than :data:`FAT_FLOOR_HU`) is not held back by the diaphragm floor, except next to gas that is
#: not lung (the partial volume of the stomach's or the bowel's gas and fluid).
PARTLY_AERATED_MAX_HU = -10.0
#: HU. Bone on the coarse grid: ribs (cortex 700-1000 HU, marrow 200-300 HU) block-averaged with the intercostal
#: muscle stay above this; no soft tissue, consolidation or unenhanced vessel reaches it.
RIB_HU = 250.0
#: Share of a slice's aerated lung that the bone's hull must hold for the hull to count as the rib cage there.
CAGE_HOLDS = 0.98
#: mm. Bone counts as a rib cage in a slice when it lies this far beyond the lungs on both sides.
RIB_SPAN_MM = 5.0
#: Share of a piece of consolidation continued by its density that must lie below the diaphragm floor, with gas of
#: the stomach or the bowel next to it, for the piece to be that viscus's wall and content: consolidation filling a
#: posterior recess lies partly above the floor (the lung's own base runs into it), the colon's wall and content
#: under a dome lie wholly below it.
UNDER_DOME_SHARE = 0.5
#: ml. Smallest gas pocket that counts as a viscus's (a bubble in the colon or the stomach holds a few ml); single
#: air voxels beside the lung's base (a recess's aerated tip cut off, partial volume) are smaller.
VISCUS_GAS_ML = 1.0


def diaphragm_floor(aerated: np.ndarray, cspacing) -> np.ndarray:
    """Per (y, x) column, the lowest z index (float; ``inf`` where unknown) a lung may reach (see module doc).

    Parameters
    ----------
    aerated : (z, y, x) bool
        One lung's aerated voxels (coarse grid), z increasing superiorly.
    cspacing : (dz, dy, dx)
        Voxel size in mm.
    """
    cspacing = np.asarray(cspacing, float)
    has = aerated.any(axis=0)
    big = float(aerated.shape[0] + 10)
    trace = np.where(has, aerated.argmax(axis=0), big).astype(np.float32)
    fp = _disk(DOME_BUMP_MM, cspacing[1:])[0]
    floor = ndimage.grey_opening(trace, footprint=fp, mode="nearest")
    return np.where(floor >= big - 1, np.inf, floor - DIAPHRAGM_MARGIN_MM / cspacing[0])


def viscus_pieces(
    continued: np.ndarray, sides: np.ndarray, aerated: np.ndarray, gas: np.ndarray, cspacing
) -> np.ndarray:
    """The pieces of consolidation continued by its density that are the wall and content of a viscus under the
    diaphragm: a piece (26-connected) that lies next to a pocket of ``gas`` of at least :data:`VISCUS_GAS_ML`
    (within one voxel of it, diagonals included) and mostly (:data:`UNDER_DOME_SHARE`) below its lung's diaphragm
    floor (:func:`diaphragm_floor`; columns without a floor count as below it) is left out whole (bool, True
    there).

    Parameters
    ----------
    continued : (z, y, x) bool
        The consolidation continued by its density (coarse grid).
    sides : (z, y, x) uint8
        Lung labels (1 right, 2 left) of those voxels and of the rest of the lungs.
    aerated : (z, y, x) uint8
        The lungs' aerated voxels by side: they trace the floors.
    gas : (z, y, x) bool
        Gas inside the body that is not lung (the stomach's, the bowel's).
    cspacing : (dz, dy, dx)
        Voxel size in mm.
    """
    out = np.zeros(continued.shape, dtype=bool)
    cube = np.ones((3, 3, 3), bool)
    pockets, n = ndimage.label(gas, structure=cube)
    voxels = np.bincount(pockets.reshape(-1), minlength=n + 1)
    large = voxels * float(np.prod(np.asarray(cspacing, float))) / 1000.0 >= VISCUS_GAS_ML
    large[0] = False
    hit = continued & ndimage.binary_dilation(large[pockets], structure=cube)
    if not hit.any():
        return out
    pieces, _ = ndimage.label(continued, structure=cube)
    z = np.arange(continued.shape[0], dtype=np.float32)[:, None, None]
    floors = {}
    for piece in np.unique(pieces[hit]):
        mine = pieces == piece
        side = int(np.bincount(sides[mine], minlength=3)[1:].argmax()) + 1
        if side not in floors:
            floors[side] = diaphragm_floor(aerated == side, cspacing)
        if np.count_nonzero(mine & (z < floors[side][None])) >= UNDER_DOME_SHARE * np.count_nonzero(mine):
            out |= mine
    return out


def _partly_aerated(coarse: np.ndarray, where: np.ndarray) -> np.ndarray:
    """Whether each voxel of ``where`` reads as partly aerated lung: the median of the 3 x 3 x 3 coarse voxels
    around it lies between fat and water (:data:`FAT_FLOOR_HU`, :data:`PARTLY_AERATED_MAX_HU`).

    The median, not the mean: fat holding a thin wall or vessel (bowel, stomach, the diaphragm's own muscle,
    the splenic vessels) averages into that range, while most of the voxels around stay fat. Noise and the
    grid's partial volume would decide single voxels."""
    out = np.zeros(where.shape, dtype=bool)
    idx = np.nonzero(where)
    if not idx[0].size:
        return out
    pad = np.pad(coarse.astype(np.float32), 1, mode="edge")
    around = np.stack(
        [pad[idx[0] + a, idx[1] + b, idx[2] + c] for a in range(3) for b in range(3) for c in range(3)], axis=-1
    )
    level = np.median(around, axis=-1)
    out[idx] = (level > FAT_FLOOR_HU) & (level < PARTLY_AERATED_MAX_HU)
    return out


def rib_cage(coarse: np.ndarray, aerated: np.ndarray, cspacing) -> np.ndarray:
    """Per axial slice, the convex hull of the bone where ribs lie on both sides of the lungs and the hull holds
    the slice's aerated lung (bool, coarse grid); slices without such a rib cage are all True (no limit there)."""
    from .repair import _hull_planes

    cspacing = np.asarray(cspacing, float)
    inside = np.ones(coarse.shape, dtype=bool)
    bone = coarse > RIB_HU
    span = int(np.ceil(RIB_SPAN_MM / cspacing[2]))
    zs = []
    for z in np.flatnonzero(aerated.any(axis=(1, 2))):
        cols = np.flatnonzero(aerated[z].any(axis=0))
        bcols = np.flatnonzero(bone[z].any(axis=0))
        if bcols.size and bcols[0] <= cols[0] - span and bcols[-1] >= cols[-1] + span:
            zs.append(z)
    if not zs:
        return inside
    hulls = _hull_planes(bone[zs], cspacing[1:])
    for z, hull in zip(zs, hulls):
        lung = aerated[z]
        if np.count_nonzero(hull & lung) >= CAGE_HOLDS * np.count_nonzero(lung):
            inside[z] = hull  # (bone that leaves part of the aerated lung outside is not a whole cage)
    return inside


def _thin(added: np.ndarray, cspacing) -> np.ndarray:
    """The parts of ``added`` that hold no ball of :data:`THIN_MM` radius and touch none that does (bool)."""
    r = [max(1, int(round(THIN_MM / s))) for s in cspacing]
    grids = np.ogrid[tuple(slice(-k, k + 1) for k in r)]
    ball = sum((g * s) ** 2 for g, s in zip(grids, cspacing)) <= THIN_MM**2 + 1e-6
    thick = ndimage.binary_opening(added, structure=ball)
    near = ndimage.binary_dilation(thick, structure=ndimage.generate_binary_structure(3, 3))
    return added & ~near


def limit_additions(
    repaired: np.ndarray, picked: np.ndarray, aerated: np.ndarray, coarse: np.ndarray, cspacing, cage=None
):
    """``repaired`` (coarse labels) without what the repair added beyond the anatomical limits, and that part
    (bool). What the lung picked itself (``picked``: aerated lung and ground glass) is never taken away. ``cage``:
    :func:`rib_cage`, computed here when omitted."""
    cspacing = np.asarray(cspacing, float)
    added = (repaired > 0) & (picked == 0)
    beyond = np.zeros(repaired.shape, dtype=bool)
    if not added.any():
        return repaired, beyond
    if cage is None:
        cage = rib_cage(coarse, aerated > 0, cspacing)
    # the work is done within the box of the additions (with the reach of the thin-strip ball and of the floor's
    # disk); the floor itself needs each lung's whole trace
    reach = [int(np.ceil(max(THIN_MM, DOME_BUMP_MM) / s)) + 2 for s in cspacing]
    box = _bbox(added, reach)
    add_b, rep_b, pick_b, co_b = added[box], repaired[box], picked[box], coarse[box]
    z = np.arange(box[0].start, box[0].stop, dtype=np.float32)[:, None, None]
    gas = ndimage.binary_dilation((co_b < AIR_HU) & (pick_b == 0), structure=np.ones((3, 3, 3), bool))
    out_b = np.zeros(add_b.shape, dtype=bool)
    for side in (RIGHT, LEFT):
        mine = add_b & (rep_b == side)
        if mine.any():
            floor = diaphragm_floor(aerated == side, cspacing)[box[1:]]
            below = mine & (z < floor[None])
            out_b |= below & (gas | ~_partly_aerated(co_b, below))
    out_b |= add_b & ~cage[box]
    # (vessels and nodules that the aerated lung encloses in the axial plane are never strips of the wall)
    enclosed = np.zeros_like(add_b)
    for side in (RIGHT, LEFT):
        enclosed |= fill_holes_2d(pick_b == side)
    out_b |= _thin(add_b & ~out_b & ~enclosed, cspacing)
    beyond[box] = out_b
    out = repaired.copy()
    out[beyond] = 0
    return out, beyond

