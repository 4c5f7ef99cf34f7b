"""The per-scan QC picture: axial and coronal slices in lung window with lung outline and opacity overlay."""

from __future__ import annotations

import os

import numpy as np
from PIL import Image, ImageDraw, ImageFont

Image.preinit()  # the PNG writer, loaded with the module rather than on the first save

#: Lung window (HU): level -600, width 1500.
LUNG_WINDOW = (-1350.0, 150.0)
#: Okabe-Ito colours (colour-blind safe): label 1 yellow, label 2 vermillion, vessel blue, lung outline green.
COLOURS = {1: "#F0E442", 2: "#D55E00", 3: "#0072B2", "outline": "#009E73"}
OVERLAY_ALPHA = 0.5


def _hex(colour: str) -> np.ndarray:
    return np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)], dtype=np.float32) / 255.0


def _outline(mask: np.ndarray) -> np.ndarray:
    """Boundary pixels of a 2-D mask (4-neighbourhood)."""
    inner = mask.copy()
    inner[1:, :] &= mask[:-1, :]
    inner[:-1, :] &= mask[1:, :]
    inner[:, 1:] &= mask[:, :-1]
    inner[:, :-1] &= mask[:, 1:]
    return mask & ~inner


def _rgb(hu2d: np.ndarray, lungs2d: np.ndarray, opacity2d: np.ndarray) -> np.ndarray:
    """RGB image (uint8) of one slice: grey lung window, opacity classes blended, lung outline drawn.

    The colour of a pixel depends only on its HU and opacity label, so it is looked up in a table of the slice's
    HU range x labels 0-3 (float32 arithmetic as if done pixel by pixel); the outline is drawn over it.
    """
    lo, hi = LUNG_WINDOW
    if hu2d.dtype.kind not in "iu" or hu2d.dtype.itemsize > 2:  # not int16-like HU: pixel by pixel
        grey = np.clip((hu2d.astype(np.float32) - lo) / (hi - lo), 0, 1)
        rgb = np.repeat(grey[..., None], 3, axis=2)
        for label in (1, 2, 3):
            sel = opacity2d == label
            rgb[sel] = (1 - OVERLAY_ALPHA) * rgb[sel] + OVERLAY_ALPHA * _hex(COLOURS[label])
        for side in (1, 2):
            rgb[_outline(lungs2d == side)] = _hex(COLOURS["outline"])
        return np.rint(rgb * 255).astype(np.uint8)
    low = int(hu2d.min()) if hu2d.size else 0
    span = int(hu2d.max()) - low + 1 if hu2d.size else 1
    values = np.arange(low, low + span).astype(hu2d.dtype).astype(np.float32)
    grey = np.repeat(np.clip((values - lo) / (hi - lo), 0, 1)[:, None], 3, axis=1)
    table = np.empty((4, span, 3), dtype=np.uint8)
    table[0] = np.rint(grey * 255)
    for label in (1, 2, 3):
        table[label] = np.rint(((1 - OVERLAY_ALPHA) * grey + OVERLAY_ALPHA * _hex(COLOURS[label])) * 255)
    label = opacity2d.astype(np.intp)
    label[(label < 0) | (label > 3)] = 0
    label *= span
    label += hu2d
    label -= low
    rgb = table.reshape(-1, 3)[label]
    for side in (1, 2):
        rgb[_outline(lungs2d == side)] = np.rint(_hex(COLOURS["outline"]) * 255)
    return rgb


def _resample(planes: tuple[np.ndarray, ...], size: tuple[int, int]) -> tuple[np.ndarray, ...]:
    """Nearest-neighbour resampling of 2-D arrays of one shape to ``size`` (rows, columns) pixels."""
    rows = ((np.arange(size[0]) + 0.5) * planes[0].shape[0] / size[0]).astype(np.intp)
    cols = ((np.arange(size[1]) + 0.5) * planes[0].shape[1] / size[1]).astype(np.intp)
    return tuple(p[rows[:, None], cols[None, :]] for p in planes)


def _fit(extent_mm: tuple[float, float], box: tuple[int, int]) -> tuple[int, int]:
    """Pixel size (rows, columns) of an image of ``extent_mm`` (height, width) fitted into ``box`` pixels."""
    scale = min(box[0] / extent_mm[0], box[1] / extent_mm[1])
    return max(1, int(extent_mm[0] * scale)), max(1, int(extent_mm[1] * scale))


def _levels(present: np.ndarray, n: int) -> list[int]:
    """``n`` axial slice indices evenly inside the lungs' craniocaudal extent (or the volume if no lung), from
    ``present[z]`` (slice z holds lung)."""
    zs = np.flatnonzero(present)
    z0, z1 = (zs[0], zs[-1]) if zs.size else (0, present.size - 1)
    return sorted({int(round(z0 + (z1 - z0) * (i + 1) / (n + 1))) for i in range(n)}, reverse=True)


def _font(points: float, dpi: int):
    """DejaVu Sans (shipped with matplotlib, found without importing it) at ``points`` size for ``dpi``."""
    import importlib.util

    package = importlib.util.find_spec("matplotlib").submodule_search_locations[0]
    path = os.path.join(package, "mpl-data", "fonts", "ttf", "DejaVuSans.ttf")
    return ImageFont.truetype(path, max(1, round(points * dpi / 72)))


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
    """Write the QC picture of one scan as PNG (12 x 6.4 inches at ``dpi``).

    Parameters
    ----------
    hu : (z, y, x) int16 HU, axis 0 towards the head, x towards the patient's left, y towards posterior.
    lungs : (z, y, x) uint8, 0 background, 1 right lung, 2 left lung.
    opacity : (z, y, x) uint8, 0 none, 1 and 2 the opacity classes (``class_names``), 3 vessel; non-zero only
        inside the lungs.
    spacing : (dz, dy, dx) voxel size in mm; pixel aspect follows it.
    title : first title line (subject ID and study day; never patient identifiers).
    path : output PNG file.
    class_names : names of opacity labels 1 and 2 for the legend and the key numbers.
    dpi : resolution in dots per inch.

    The second title line gives the lung volume (mL) and the percentages of lung volume with label 1 + 2 and
    with label 2, computed from the masks. Axial slices are shown in radiological convention (patient's right on
    the image's left, anterior up) at four levels evenly spaced over the lungs' extent, top to bottom; the
    coronal slice passes through the row with the most opacity (the lungs' centre when there is none), head up, with the axial levels dotted. Only the five slices
    shown are rendered: each is resampled (nearest neighbour) to its size on the picture before the overlay
    and the one-pixel lung outline are drawn, and the picture is composed as an RGB array; Pillow adds the text.
    """
    dz, dy, dx = (float(s) for s in spacing)
    nz, ny, nx = hu.shape
    present = lungs.reshape(nz, -1).max(axis=1) > 0 if lungs.size else np.zeros(nz, bool)
    zs = np.flatnonzero(present)
    n_lung = n1 = n2 = 0
    opaque_per_row = np.zeros(ny, dtype=np.int64)  # voxels of labels 1 and 2 per coronal row (y)
    ys = np.zeros(0, dtype=np.intp)
    if zs.size:  # everything counted lies in the lungs' bounding box (opacity labels lie inside the lungs)
        z0, z1 = int(zs[0]), int(zs[-1]) + 1
        footprint = lungs[z0:z1].max(axis=0) > 0
        ys, xs = np.flatnonzero(footprint.any(axis=1)), np.flatnonzero(footprint.any(axis=0))
        rows, cols = slice(int(ys[0]), int(ys[-1]) + 1), slice(int(xs[0]), int(xs[-1]) + 1)
        for z in range(z0, z1, 16):  # slabs of slices: small temporaries
            cut = (slice(z, min(z + 16, z1)), rows, cols)
            n_lung += int(np.count_nonzero(lungs[cut]))
            slab = np.ascontiguousarray(opacity[cut])
            opaque = (slab - np.uint8(1)) < 2 if slab.dtype == np.uint8 else (slab == 1) | (slab == 2)  # 1 or 2
            twos = int(np.count_nonzero(slab == 2))
            n2 += twos
            n1 += int(np.count_nonzero(opaque)) - twos
            opaque_per_row[rows] += np.count_nonzero(opaque, axis=(0, 2))
    pct = (lambda c: 100.0 * c / n_lung) if n_lung else (lambda c: float("nan"))
    numbers = (
        f"lung {n_lung * dz * dy * dx / 1000:.0f} mL   opacity {pct(n1 + n2):.1f} %   "
        f"{class_names[1]} {pct(n2):.1f} %"
    )
    levels = _levels(present, 4)
    if opaque_per_row.any():  # the coronal slice through the most opacity
        y = int(np.argmax(opaque_per_row))
    else:
        y = int((ys[0] + ys[-1]) // 2) if ys.size else ny // 2

    width, height = round(12 * dpi), round(6.4 * dpi)
    big, small = _font(11, dpi), _font(9, dpi)
    line = round(9 * dpi / 72 * 1.4)  # height of a small text line
    pad = round(0.08 * dpi)
    top = round(11 * dpi / 72 * 1.35 * 2) + 2 * pad  # two title lines
    bottom = height - line - 2 * pad  # legend below
    canvas = np.full((height, width, 3), 255, dtype=np.uint8)
    texts: list[tuple[tuple[int, int], str, str]] = []  # (centre, text, fill)

    def panel(box: tuple[int, int, int, int], planes, extent_mm, label: str) -> tuple[int, int, int, int]:
        """Draw slice ``planes`` (hu, lungs, opacity) in ``box`` (left, top, right, bottom) under its label;
        return the image's pixel box."""
        left, upper, right, lower = box
        size = _fit(extent_mm, (lower - upper - line - pad, right - left - pad))
        img = _rgb(*_resample(planes, size))
        x0 = left + (right - left - size[1]) // 2
        y0 = upper + (lower - upper - size[0] + line) // 2  # the label and the image centred in the box
        canvas[y0 : y0 + size[0], x0 : x0 + size[1]] = img
        texts.append(((x0 + size[1] // 2, y0 - line // 2 - pad // 2), label, "black"))
        return x0, y0, x0 + size[1], y0 + size[0]

    unit = (width - 2 * pad) / 3.3  # column widths 1, 1, 1.3
    cells_x = [pad, pad + round(unit), pad + round(2 * unit), width - pad]
    half = (top + bottom) // 2
    for i, z in enumerate(levels):
        cell = (cells_x[i % 2], (top, half)[i // 2], cells_x[i % 2 + 1], (half, bottom)[i // 2])
        x0, y0, x1, y1 = panel(cell, (hu[z], lungs[z], opacity[z]), (ny * dy, nx * dx), f"axial, slice {z + 1} of {nz}")
        for frac, side in ((0.02, "R"), (0.96, "L")):
            texts.append(((x0 + round(frac * (x1 - x0)) + line // 4, (y0 + y1) // 2), side, "white"))
    planes = (hu[::-1, y, :], lungs[::-1, y, :], opacity[::-1, y, :])  # head up
    cx0, cy0, cx1, cy1 = panel(
        (cells_x[2], top, cells_x[3], bottom), planes, (nz * dz, nx * dx), f"coronal, row {y + 1} of {ny}"
    )

    image = Image.fromarray(canvas)
    draw = ImageDraw.Draw(image)
    dash = max(1, round(dpi / 75))
    for z in levels:  # axial levels, dotted
        row = cy0 + round((nz - 0.5 - z) * (cy1 - cy0) / nz)
        for x in range(cx0, cx1, 3 * dash):
            draw.line([(x, row), (min(x + dash, cx1) - 1, row)], fill="white")
    for centre, text, fill in texts:
        draw.text(centre, text, font=small, fill=fill, anchor="mm")
    draw.multiline_text((width // 2, pad), f"{title}\n{numbers}", font=big, fill="black", anchor="ma", align="center")
    entries = [
        (COLOURS[1], class_names[0]),
        (COLOURS[2], class_names[1]),
        (COLOURS[3], "vessel"),
        (None, "lung outline"),
    ]
    patch = (round(0.22 * dpi), round(0.09 * dpi))
    widths = [patch[0] + pad + round(draw.textlength(text, font=small)) for _, text in entries]
    x = (width - sum(widths) - 2 * pad * (len(entries) - 1)) // 2
    y_mid = height - pad - line // 2
    for (colour, text), w in zip(entries, widths, strict=True):
        box = (x, y_mid - patch[1] // 2, x + patch[0], y_mid + patch[1] // 2)
        if colour is None:
            draw.rectangle(box, outline=COLOURS["outline"], width=max(1, dpi // 75))
        else:
            draw.rectangle(box, fill=colour)
        draw.text((x + patch[0] + pad, y_mid), text, font=small, fill="black", anchor="lm")
        x += w + 2 * pad
    image.save(os.fspath(path), format="PNG", compress_level=1)


def message_figure(title: str, message: str, path: str | os.PathLike, *, dpi: int = 100) -> None:
    """Write a small PNG card with a title and a message (the QC picture of a scan that was not measured)."""
    import textwrap

    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 3))
    fig.text(0.5, 0.8, title, ha="center", va="center", fontsize=13)
    fig.text(0.5, 0.45, textwrap.fill(message, 90), ha="center", va="center", fontsize=10, wrap=True)
    fig.savefig(os.fspath(path), dpi=dpi, format="png")
