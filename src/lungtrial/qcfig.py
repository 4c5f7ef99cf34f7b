"""The per-scan QC picture: axial and coronal slices in lung window with lung outline and opacity overlay."""

from __future__ import annotations

import os

import numpy as np

#: Lung window (HU): level -600, width 1500.
LUNG_WINDOW = (-1350.0, 150.0)
#: Okabe-Ito colours (colour-blind safe): label 1 yellow, label 2 vermillion, vessel blue, lung outline green.
COLOURS = {1: "#F0E442", 2: "#D55E00", 3: "#0072B2", "outline": "#009E73"}
OVERLAY_ALPHA = 0.5


def _hex(colour: str) -> np.ndarray:
    return np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)], dtype=float) / 255.0


def _outline(mask: np.ndarray) -> np.ndarray:
    """Boundary pixels of a 2-D mask (4-neighbourhood)."""
    inner = mask.copy()
    inner[1:, :] &= mask[:-1, :]
    inner[:-1, :] &= mask[1:, :]
    inner[:, 1:] &= mask[:, :-1]
    inner[:, :-1] &= mask[:, 1:]
    return mask & ~inner


def _rgb(hu2d: np.ndarray, lungs2d: np.ndarray, opacity2d: np.ndarray) -> np.ndarray:
    """RGB image (float 0-1) of one slice: grey lung window, opacity classes blended, lung outline drawn."""
    lo, hi = LUNG_WINDOW
    grey = np.clip((hu2d.astype(np.float32) - lo) / (hi - lo), 0, 1)
    rgb = np.repeat(grey[..., None], 3, axis=2)
    for label in (1, 2, 3):
        sel = opacity2d == label
        if sel.any():
            rgb[sel] = (1 - OVERLAY_ALPHA) * rgb[sel] + OVERLAY_ALPHA * _hex(COLOURS[label])
    for side in (1, 2):
        rgb[_outline(lungs2d == side)] = _hex(COLOURS["outline"])
    return rgb


def _levels(lungs: np.ndarray, n: int) -> list[int]:
    """``n`` axial slice indices evenly inside the lungs' craniocaudal extent (or the volume if no lung)."""
    zs = np.flatnonzero(lungs.any(axis=(1, 2)))
    z0, z1 = (zs[0], zs[-1]) if zs.size else (0, lungs.shape[0] - 1)
    return sorted({int(round(z0 + (z1 - z0) * (i + 1) / (n + 1))) for i in range(n)}, reverse=True)


def qc_figure(
    hu: np.ndarray,
    lungs: np.ndarray,
    opacity: np.ndarray,
    spacing: tuple[float, float, float],
    title: str,
    path: str | os.PathLike,
    *,
    class_names: tuple[str, str] = ("ground glass", "consolidation"),
    dpi: int = 150,
) -> None:
    """Write the QC picture of one scan as PNG.

    Parameters
    ----------
    hu : (z, y, x) int16 HU, axis 0 towards the head, x towards the patient's left, y towards posterior.
    lungs : (z, y, x) uint8, 0 background, 1 right lung, 2 left lung.
    opacity : (z, y, x) uint8, 0 none, 1 and 2 the opacity classes (``class_names``), 3 vessel.
    spacing : (dz, dy, dx) voxel size in mm; pixel aspect follows it.
    title : first title line (subject ID and study day; never patient identifiers).
    path : output PNG file.
    class_names : names of opacity labels 1 and 2 for the legend and the key numbers.
    dpi : resolution in dots per inch.

    The second title line gives the lung volume (mL) and the percentages of lung volume with label 1 + 2 and
    with label 2, computed from the masks. Axial slices are shown in radiological convention (patient's right on
    the image's left, anterior up) at four levels evenly spaced over the lungs' extent, top to bottom; the
    coronal slice passes through the lungs' centre, head up, with the axial levels dotted.
    """
    from matplotlib.figure import Figure  # drawn by the Agg renderer, no pyplot state or GUI backend
    from matplotlib.patches import Patch

    dz, dy, dx = (float(s) for s in spacing)
    nz, ny, nx = hu.shape
    n_lung = int(np.count_nonzero(lungs))
    n1 = int(np.count_nonzero(opacity == 1))
    n2 = int(np.count_nonzero(opacity == 2))
    pct = (lambda c: 100.0 * c / n_lung) if n_lung else (lambda c: float("nan"))
    numbers = (
        f"lung {n_lung * dz * dy * dx / 1000:.0f} mL   opacity {pct(n1 + n2):.1f} %   "
        f"{class_names[1]} {pct(n2):.1f} %"
    )

    fig = Figure(figsize=(12, 6.4), layout="constrained")
    grid = fig.add_gridspec(2, 3, width_ratios=(1, 1, 1.3))
    levels = _levels(lungs, 4)
    for i, z in enumerate(levels):
        ax = fig.add_subplot(grid[i // 2, i % 2])
        ax.imshow(_rgb(hu[z], lungs[z], opacity[z]), extent=(0, nx * dx, ny * dy, 0), interpolation="nearest")
        ax.set_title(f"axial, slice {z + 1} of {nz}", fontsize=9)
        ax.text(0.02, 0.5, "R", transform=ax.transAxes, color="white", fontsize=9, va="center")
        ax.text(0.96, 0.5, "L", transform=ax.transAxes, color="white", fontsize=9, va="center")
        ax.set_axis_off()
    ys = np.flatnonzero(lungs.any(axis=(0, 2)))
    y = int((ys[0] + ys[-1]) // 2) if ys.size else ny // 2
    ax = fig.add_subplot(grid[:, 2])
    ax.imshow(
        _rgb(hu[:, y, :], lungs[:, y, :], opacity[:, y, :]),
        extent=(0, nx * dx, 0, nz * dz),
        origin="lower",
        interpolation="nearest",
    )
    for z in levels:
        ax.axhline((z + 0.5) * dz, color="white", lw=0.5, ls=":")
    ax.set_title(f"coronal, row {y + 1} of {ny}", fontsize=9)
    ax.set_axis_off()
    handles = [
        Patch(color=COLOURS[1], label=class_names[0]),
        Patch(color=COLOURS[2], label=class_names[1]),
        Patch(color=COLOURS[3], label="vessel"),
        Patch(facecolor="none", edgecolor=COLOURS["outline"], label="lung outline"),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncols=4, fontsize=9, frameon=False)
    fig.suptitle(f"{title}\n{numbers}", fontsize=11)
    fig.savefig(os.fspath(path), dpi=dpi, format="png", pil_kwargs={"compress_level": 3})


def message_figure(title: str, message: str, path: str | os.PathLike, *, dpi: int = 100) -> None:
    """Write a small PNG card with a title and a message (the QC picture of a scan that was not measured)."""
    import textwrap

    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 3))
    fig.text(0.5, 0.8, title, ha="center", va="center", fontsize=13)
    fig.text(0.5, 0.45, textwrap.fill(message, 90), ha="center", va="center", fontsize=10, wrap=True)
    fig.savefig(os.fspath(path), dpi=dpi, format="png")
