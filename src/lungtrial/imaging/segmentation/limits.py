"""Anatomical limits that no lung crosses: the diaphragm below it and the rib cage around it.

The lesion repair (:mod:`.repair`) adds to the aerated lung what the lung's outline suggests is lesion. Density
cannot tell consolidation from the organs it lies on (unenhanced liver 55-65 HU, spleen 45-50, muscle 40-60,
consolidation 20-60), so what is added is kept only where anatomy allows lung:

- **Above the diaphragm.** Per lung, the lowest aerated voxel of each (y, x) column traces the diaphragm where
  the lung lies on it. Consolidation on the diaphragm raises that trace in a bump; the dome itself is a wide,
  smooth surface. A grey-level opening of the trace by a disk of :data:`DOME_BUMP_MM` removes the bumps and keeps
  the dome, also on its steep slopes (an opening follows a ramp). Nothing as dense as the organs under the
  diaphragm (:func:`organ_density`) is added more than :data:`DIAPHRAGM_MARGIN_MM` below that floor: the liver
  under the right dome and the spleen and stomach wall under the left one are below it. Columns more than :data:`DOME_BUMP_MM` from any aerated column have no floor and
  take nothing (a wholly consolidated base is a known limit).
- **Inside the rib cage.** In each axial slice where bone surrounds the lungs (ribs on both sides), nothing is
  added outside the convex hull of the bone (ribs, spine, sternum): the chest wall muscles, fat, the breasts and
  the arms lie outside it. Slices whose bone leaves aerated lung outside its hull (costal cartilage without
  calcium, a rib cut by the field of view) have no limit.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.morphology import convex_hull_image

from ._grid import FAT_FLOOR_HU, LEFT, RIGHT, _disk

#: mm. Radius of the disk that opens the diaphragm trace: consolidation lying on the diaphragm raises the trace in
#: bumps up to about twice this wide; the domes (radius of curvature 100-150 mm) are much wider and are kept.
DOME_BUMP_MM = 30.0
#: mm. Tolerance below the diaphragm floor: one coarse voxel's partial volume of the lung's base.
DIAPHRAGM_MARGIN_MM = 4.0
#: HU. Distance in density below the organs under the diaphragm from which consolidation is told from them
#: (block-averaged noise of soft tissue is 5-15 HU on the coarse grid; liver and consolidation overlap within it).
ORGAN_MARGIN_HU = 25.0
#: HU. Bone on the coarse grid: ribs (cortex 700-1000 HU, marrow 200-300 HU) block-averaged with the intercostal
#: muscle stay above this; no soft tissue, consolidation or unenhanced vessel reaches it.
RIB_HU = 250.0
#: Share of a slice's aerated lung that the bone's hull must hold for the hull to count as the rib cage there.
CAGE_HOLDS = 0.98
#: mm. Bone counts as a rib cage in a slice when it lies this far beyond the lungs on both sides.
RIB_SPAN_MM = 5.0


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
    floor = floor - DIAPHRAGM_MARGIN_MM / cspacing[0]
    return np.where(floor >= big - 1, np.inf, floor)


def organ_density(coarse: np.ndarray, aerated: np.ndarray, floor: np.ndarray, dz: float) -> float:
    """HU from which tissue below a lung's diaphragm floor counts as the organs under the diaphragm: the median of
    the soft tissue two to four voxels below the lung's lowest aerated voxel of each column where that voxel lies on
    the floor (:func:`diaphragm_floor`; not on a bump of consolidation): their upper quartile less
    :data:`ORGAN_MARGIN_HU`. Consolidation measurably lighter than that (partly
    aerated) is told from liver and spleen by its density and is not limited by the floor."""
    trace = aerated.argmax(axis=0)
    has = aerated.any(axis=0) & (trace - floor <= DIAPHRAGM_MARGIN_MM / dz + 1.0)
    if not has.any():
        return -np.inf
    ys, xs = np.nonzero(has)
    values = [coarse[trace[ys, xs] - k, ys, xs][trace[ys, xs] - k >= 0] for k in (2, 3, 4)]
    v = np.concatenate(values)
    v = v[(v > FAT_FLOOR_HU) & (v < RIB_HU)]
    if v.size < 20:
        return -np.inf
    # the upper quartile: columns where consolidation lies under the lung in a stretch wider than the floor's
    # bumps add lighter samples, the organs are the denser ones
    return float(np.percentile(v, 75)) - ORGAN_MARGIN_HU


def rib_cage(coarse: np.ndarray, aerated: np.ndarray, cspacing) -> np.ndarray:
    """Per axial slice, the convex hull of the bone where ribs lie on both sides of the lungs (bool, coarse grid);
    slices without such a rib cage are all True (no limit there)."""
    cspacing = np.asarray(cspacing, float)
    inside = np.ones(coarse.shape, dtype=bool)
    bone = coarse > RIB_HU
    span = int(np.ceil(RIB_SPAN_MM / cspacing[2]))
    for z in np.flatnonzero(aerated.any(axis=(1, 2))):
        cols = np.flatnonzero(aerated[z].any(axis=0))
        bcols = np.flatnonzero(bone[z].any(axis=0))
        if bcols.size == 0 or bcols[0] > cols[0] - span or bcols[-1] < cols[-1] + span:
            continue
        hull = convex_hull_image(bone[z])
        lung = aerated[z]
        if np.count_nonzero(hull & lung) >= CAGE_HOLDS * np.count_nonzero(lung):
            inside[z] = hull  # (bone that leaves part of the aerated lung outside is not a whole cage)
    return inside


def limit_additions(repaired: np.ndarray, picked: np.ndarray, aerated: np.ndarray, coarse: np.ndarray, cspacing):
    """``repaired`` (coarse labels) without what the repair added beyond the anatomical limits, and that part
    (bool). What the lung picked itself (``picked``: aerated lung and ground glass) is never taken away."""
    cspacing = np.asarray(cspacing, float)
    added = (repaired > 0) & (picked == 0)
    beyond = np.zeros(repaired.shape, dtype=bool)
    if not added.any():
        return repaired, beyond
    z = np.arange(repaired.shape[0], dtype=np.float32)[:, None, None]
    for side in (RIGHT, LEFT):
        mine = added & (repaired == side)
        if mine.any():
            floor = diaphragm_floor(aerated == side, cspacing)
            limit = organ_density(coarse, aerated == side, floor, cspacing[0])
            beyond |= mine & (z < floor[None]) & (coarse >= limit)
    beyond |= added & ~rib_cage(coarse, aerated > 0, cspacing)
    out = repaired.copy()
    out[beyond] = 0
    return out, beyond
