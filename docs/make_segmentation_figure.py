"""Draw ``docs/img/segmentation_stages.png`` (the figure of ``docs/segmentation.md``) from a synthetic chest of
``tests/phantoms.py``: a curved tray touching the image edges, an air pocket under the back as large as a lung,
domed diaphragms, stomach gas and pleural lesions. No scan data is involved.

Run: ``python docs/make_segmentation_figure.py`` (writes the PNG; takes a few seconds).
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from phantoms import make_chest  # noqa: E402

from lungtrial.imaging.segmentation import _grid, airway, body, limits, lungs  # noqa: E402
from lungtrial.imaging.segmentation import segment as run_segmentation  # noqa: E402


def main() -> None:
    p = make_chest(table="curved", back_air_ml=1200.0, lesions=("ground_glass", "lateral", "recess"))
    sp = np.asarray(p.spacing, float)
    factors = _grid._coarse_factors(sp, _grid.COARSE_MM)
    csp = sp * factors
    coarse = _grid._block_reduce(p.hu, factors)
    air = coarse < _grid.AIR_HU
    b = body.body_mask(coarse, csp)
    inner = air & b
    aw = airway._airways(inner, b, csp)
    aw |= airway._bronchus_ends(aw, inner, coarse, csp)
    picked, _ = lungs.pick_lungs(inner & ~aw, b, aw, csp)
    floor = limits.diaphragm_floor(picked == 1, csp)
    cage = limits.rib_cage(coarse, picked > 0, csp)
    result = run_segmentation(p.hu, p.spacing)

    zs = np.flatnonzero((picked > 0).any(axis=(1, 2)))
    zc = int(zs[0] + 0.3 * (zs[-1] - zs[0]))  # a slice through the lower lungs
    zf = zc * factors[0]
    xr = int(np.median(np.nonzero(picked == 1)[2]))
    fig, ax = plt.subplots(1, 4, figsize=(18, 5.6))
    ax[0].imshow(coarse[zc], cmap="gray", vmin=-1000, vmax=400)
    ax[0].contour(b[zc], [0.5], colors="#E69F00")
    ax[0].set_title("1. body (orange): the tray is cut off where\nit leaves the patient", fontsize=10)
    ax[1].imshow(coarse[zc], cmap="gray", vmin=-1000, vmax=400)
    ax[1].contour(picked[zc] == 1, [0.5], colors="#009E73")
    ax[1].contour(picked[zc] == 2, [0.5], colors="#56B4E9")
    ax[1].contour(inner[zc] & (picked[zc] == 0), [0.5], colors="#D55E00")
    ax[1].set_title("2-3. lungs hang from the airway (green, blue);\nother air inside the body (red) does not", fontsize=10)
    sag = coarse[:, :, xr]
    ax[2].imshow(sag, cmap="gray", vmin=-1000, vmax=400, origin="lower", aspect=csp[0] / csp[1])
    ys = np.arange(sag.shape[1])
    f = np.where(np.isfinite(floor[:, xr]), floor[:, xr], np.nan)
    ax[2].plot(ys, f, color="#F0E442", lw=2, label="diaphragm floor")
    ax[2].contour(picked[:, :, xr] == 1, [0.5], colors="#009E73")
    ax[2].legend(loc="upper right")
    ax[2].set_title("4. diaphragm floor under the right lung\n(sagittal): nothing dense is added below it", fontsize=10)
    ax[3].imshow(p.hu[zf], cmap="gray", vmin=-160, vmax=240)
    ax[3].contour(cage[zc].repeat(factors[1], 0).repeat(factors[2], 1)[: p.hu.shape[1], : p.hu.shape[2]], [0.5],
                  colors="#CC79A7", linestyles="dashed")
    ax[3].contour(result.labels[zf] > 0, [0.5], colors="#009E73")
    ax[3].contour(p.lesions[zf], [0.5], colors="#F0E442", linewidths=0.8)
    ax[3].set_title("5-6. final lungs (green) within the rib cage\n(dashed); inserted lesions (yellow)", fontsize=10)
    for a in ax:
        a.set_xticks([])
        a.set_yticks([])
    fig.tight_layout()
    out = ROOT / "docs" / "img" / "segmentation_stages.png"
    fig.savefig(out, dpi=70)
    print(out)


if __name__ == "__main__":
    main()
