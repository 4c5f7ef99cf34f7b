"""The per-scan QC picture: axial, coronal and sagittal slices, each in a lung window with the opacity overlay and in a
soft-tissue window with the lung outline only."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from skimage.segmentation import find_boundaries  # with the module: every measured scan's QC picture needs it

Image.preinit()  # the PNG writer, loaded with the module rather than on the first save

#: Lung window (HU): level -600, width 1500.
LUNG_WINDOW = (-1350.0, 150.0)
#: Soft-tissue (mediastinal) window (HU): level 40, width 400. Aerated lung is black, fat dark grey, muscle,
#: consolidation, effusion and organs mid grey, bone white: dense tissue inside or outside the lung outline shows.
SOFT_TISSUE_WINDOW = (-160.0, 240.0)
#: Okabe-Ito colours (colour-blind safe): label 1 yellow, label 2 vermillion, vessel blue, lung outline green, what
#: the segmentation left out at its anatomical limits sky blue, what a serial prior added reddish purple.
COLOURS = {
    1: "#F0E442",
    2: "#D55E00",
    3: "#0072B2",
    "outline": "#009E73",
    "held_back": "#56B4E9",
    "prior_added": "#CC79A7",
}
OVERLAY_ALPHA = 0.5
#: Axial slices shown, as fractions of the lungs' craniocaudal extent from their bottom: the upper zones, the hila,
#: and the bases (diaphragm domes and costophrenic recesses, where consolidation is most often cut off).
AXIAL_LEVELS = (("upper", 0.8), ("middle", 0.5), ("base", 0.2))
#: mm of image shown around the lungs' bounding box: the chest wall with the ribs, and below the bases the
#: diaphragm and the organs under it.
CROP_MARGIN_MM = 30.0


def _hex(colour: str) -> np.ndarray:
    return np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)], dtype=np.float32) / 255.0


def _outline(mask: np.ndarray) -> np.ndarray:
    """Boundary pixels of a 2-D mask: mask pixels with a 4-neighbour outside it (the image edge is not outside)."""
    return find_boundaries(mask, mode="inner", connectivity=1)


def _rgb(
    hu2d: np.ndarray,
    lungs2d: np.ndarray,
    opacity2d: np.ndarray,
    window: tuple[float, float] = LUNG_WINDOW,
    overlay: bool = True,
    held2d: np.ndarray | None = None,
    added2d: np.ndarray | None = None,
) -> np.ndarray:
    """RGB image (uint8) of one slice: grey in ``window`` (lowest, highest HU), the opacity classes blended (unless
    ``overlay`` is false), the outline of ``held2d`` (what was left out at the limits, if given), the lung outline
    and over it the outline of ``added2d`` (what a serial prior added to the lungs, if given) drawn.

    The colour of a pixel depends only on its HU and opacity label, so it is looked up in a table of the slice's
    HU range x labels 0-3 (float32 arithmetic as if done pixel by pixel); the outline is drawn over it.
    """
    lo, hi = window
    labels = (1, 2, 3) if overlay else ()
    if hu2d.dtype.kind not in "iu" or hu2d.dtype.itemsize > 2:  # not int16-like HU: pixel by pixel
        grey = np.clip((hu2d.astype(np.float32) - lo) / (hi - lo), 0, 1)
        rgb = np.repeat(grey[..., None], 3, axis=2)
        for label in labels:
            sel = opacity2d == label
            rgb[sel] = (1 - OVERLAY_ALPHA) * rgb[sel] + OVERLAY_ALPHA * _hex(COLOURS[label])
        if held2d is not None:
            rgb[_outline(held2d)] = _hex(COLOURS["held_back"])
        for side in (1, 2):
            rgb[_outline(lungs2d == side)] = _hex(COLOURS["outline"])
        if added2d is not None:
            rgb[_outline(added2d)] = _hex(COLOURS["prior_added"])
        return np.rint(rgb * 255).astype(np.uint8)
    low = int(hu2d.min()) if hu2d.size else 0
    span = int(hu2d.max()) - low + 1 if hu2d.size else 1
    values = np.arange(low, low + span).astype(hu2d.dtype).astype(np.float32)
    grey = np.repeat(np.clip((values - lo) / (hi - lo), 0, 1)[:, None], 3, axis=1)
    table = np.empty((1 + len(labels), span, 3), dtype=np.uint8)
    table[0] = np.rint(grey * 255)
    for label in labels:
        table[label] = np.rint(((1 - OVERLAY_ALPHA) * grey + OVERLAY_ALPHA * _hex(COLOURS[label])) * 255)
    if overlay:
        label = opacity2d.astype(np.intp)
        label[(label < 0) | (label > 3)] = 0
        label *= span
        label += hu2d
    else:
        label = hu2d.astype(np.intp)
    label -= low
    rgb = table.reshape(-1, 3)[label]
    if held2d is not None:
        rgb[_outline(held2d)] = np.rint(_hex(COLOURS["held_back"]) * 255)
    for side in (1, 2):
        rgb[_outline(lungs2d == side)] = np.rint(_hex(COLOURS["outline"]) * 255)
    if added2d is not None:
        rgb[_outline(added2d)] = np.rint(_hex(COLOURS["prior_added"]) * 255)
    return rgb


def _resample(planes: tuple[np.ndarray, ...], size: tuple[int, int]) -> tuple[np.ndarray, ...]:
    """Nearest-neighbour resampling of 2-D arrays of one shape to ``size`` (rows, columns) pixels."""
    rows = ((np.arange(size[0]) + 0.5) * planes[0].shape[0] / size[0]).astype(np.intp)
    cols = ((np.arange(size[1]) + 0.5) * planes[0].shape[1] / size[1]).astype(np.intp)
    return tuple(p[rows[:, None], cols[None, :]] for p in planes)


def _levels(present: np.ndarray) -> list[int]:
    """Axial slice indices at :data:`AXIAL_LEVELS` of the lungs' craniocaudal extent (or of the volume if no lung),
    from ``present[z]`` (slice z holds lung)."""
    zs = np.flatnonzero(present)
    z0, z1 = (int(zs[0]), int(zs[-1])) if zs.size else (0, present.size - 1)
    return [int(round(z0 + (z1 - z0) * f)) for _, f in AXIAL_LEVELS]


def _sagittal(side_columns: np.ndarray, opaque_per_column: np.ndarray) -> int | None:
    """The column of a sagittal slice through one lung: in the middle half of its columns (``side_columns``, sorted),
    the one with the most opacity, else the middle one; None without columns."""
    if not side_columns.size:
        return None
    lo, hi = int(side_columns[0]), int(side_columns[-1])
    a, b = lo + (hi - lo) // 4, hi - (hi - lo) // 4
    inner = opaque_per_column[a : b + 1]
    return a + int(np.argmax(inner)) if inner.any() else (lo + hi) // 2


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
    warnings: Sequence[str] = (),
    held_back: np.ndarray | None = None,
    prior_added: np.ndarray | None = None,
    numbers: str | None = None,
    dpi: int = 150,
) -> None:
    """Write the QC picture of one scan as PNG (12 inches wide at ``dpi``; its height follows the lungs' shape).

    Parameters
    ----------
    hu : (z, y, x) int16 HU, axis 0 towards the head, x towards the patient's left, y towards posterior.
    lungs : (z, y, x) uint8, 0 background, 1 right lung, 2 left lung.
    opacity : (z, y, x) uint8, 0 none, 1 and 2 the opacity classes (``class_names``), 3 vessel; non-zero only
        inside the lungs.
    spacing : (dz, dy, dx) voxel size in mm; every panel has the same scale (pixels per mm).
    title : first title line (subject ID and study day; never patient identifiers).
    path : output PNG file.
    class_names : names of opacity labels 1 and 2 for the legend and the key numbers.
    warnings : QC warnings of the scan (e.g. lungs measured although implausible, a lung cut by the field of
        view), drawn under the title in vermillion, one line each (shortened to the picture's width).
    held_back : (z, y, x) bool, optional (or read like one when indexed by integers and slices, as
        :class:`lungtrial.imaging.segmentation.BlockMask`)
        What the segmentation proposed as lung and left out at its anatomical limits (below the diaphragm floor,
        outside the rib cage, thin strips along the wall, next to bowel gas); outlined in sky blue in the
        soft-tissue row, so that a reviewer sees whether it was an organ (rightly left out) or a lesion (cut out).
    prior_added : (z, y, x) bool, optional
        What a serial prior added to the scan's own lungs (:func:`lungtrial.imaging.segmentation.add_prior`);
        outlined in reddish purple over the lung outline in the soft-tissue row, so that a reviewer sees whether
        it was consolidation (rightly added) or a shell of chest wall, fat or liver that the registered prior
        overlaps.
    numbers : the second title line in place of the key numbers (e.g. why a scan whose lungs are drawn was not
        measured).
    dpi : resolution in dots per inch.

    The second title line gives the lung volume (mL) and the percentages of lung volume with label 1 + 2 and
    with label 2, computed from the masks. Six slices, cropped to the lungs' bounding box and
    :data:`CROP_MARGIN_MM` around it: three axial slices at :data:`AXIAL_LEVELS` of the lungs' extent (upper zones,
    hila, bases), top to bottom, in radiological convention (patient's right on the image's left, anterior up); a
    coronal slice through the row with the most opacity (the lungs' centre when there is none), head up; and a
    sagittal slice through each lung (through the column with the most opacity in the middle half of the lung,
    else its middle), head up, anterior left. The top row shows them in a lung window with the opacity classes and
    the lung outline; the bottom row the same slices in a soft-tissue window (:data:`SOFT_TISSUE_WINDOW`) with the
    outline only, so that dense tissue inside the outline (an organ taken in) or outside it (a lesion cut off)
    shows. In the top row the coronal and sagittal slices carry the axial levels (dotted) and each other's
    positions. Only these slices are rendered: each is resampled (nearest neighbour) to its size on the picture
    before the overlay and the one-pixel lung outline are drawn, and the picture is composed as an RGB array;
    Pillow adds the text.
    """
    dz, dy, dx = (float(s) for s in spacing)
    nz, ny, nx = hu.shape
    present = lungs.reshape(nz, -1).max(axis=1) > 0 if lungs.size else np.zeros(nz, bool)
    zs = np.flatnonzero(present)
    n_lung = n1 = n2 = 0
    opaque_per_row = np.zeros(ny, dtype=np.int64)  # voxels of labels 1 and 2 per coronal row (y)
    opaque_per_col = np.zeros(nx, dtype=np.int64)  # ... and per sagittal column (x)
    box = (slice(0, nz), slice(0, ny), slice(0, nx))
    side_columns = {1: np.zeros(0, np.intp), 2: np.zeros(0, np.intp)}
    if zs.size:  # everything counted lies in the lungs' bounding box (opacity labels lie inside the lungs)
        z0, z1 = int(zs[0]), int(zs[-1]) + 1
        footprint = lungs[z0:z1].max(axis=0)  # the higher label where both lungs project (they do not overlap)
        ys, xs = np.flatnonzero(footprint.any(axis=1)), np.flatnonzero(footprint.any(axis=0))
        rows, cols = slice(int(ys[0]), int(ys[-1]) + 1), slice(int(xs[0]), int(xs[-1]) + 1)
        for side in (1, 2):
            side_columns[side] = np.flatnonzero((footprint == side).any(axis=0))
        for z in range(z0, z1, 16):  # slabs of slices: small temporaries
            cut = (slice(z, min(z + 16, z1)), rows, cols)
            n_lung += int(np.count_nonzero(lungs[cut]))
            slab = np.ascontiguousarray(opacity[cut])
            opaque = (slab - np.uint8(1)) < 2 if slab.dtype == np.uint8 else (slab == 1) | (slab == 2)  # 1 or 2
            twos = int(np.count_nonzero(slab == 2))
            n2 += twos
            n1 += int(np.count_nonzero(opaque)) - twos
            opaque_per_row[rows] += np.count_nonzero(opaque, axis=(0, 2))
            opaque_per_col[cols] += np.count_nonzero(opaque, axis=(0, 1))
        margin = [int(np.ceil(CROP_MARGIN_MM / s)) for s in (dz, dy, dx)]
        box = tuple(
            slice(max(0, a - m), min(n, b + m))
            for a, b, m, n in ((z0, z1, margin[0], nz), (rows.start, rows.stop, margin[1], ny),
                               (cols.start, cols.stop, margin[2], nx))
        )
    pct = (lambda c: 100.0 * c / n_lung) if n_lung else (lambda c: float("nan"))
    if numbers is None:
        numbers = (
            f"lung {n_lung * dz * dy * dx / 1000:.0f} mL   opacity {pct(n1 + n2):.1f} %   "
            f"{class_names[1]} {pct(n2):.1f} %"
        )
    levels = _levels(present)
    if opaque_per_row.any():  # the coronal slice through the most opacity
        y = int(np.argmax(opaque_per_row))
    else:
        y = (box[1].start + box[1].stop - 1) // 2
    sagittal = {side: _sagittal(side_columns[side], opaque_per_col) for side in (1, 2)}
    if not zs.size:
        sagittal = {1: nx // 4, 2: (3 * nx) // 4}
    bz, by, bx = box
    ext = {"z": (bz.stop - bz.start) * dz, "y": (by.stop - by.start) * dy, "x": (bx.stop - bx.start) * dx}

    extras = {"held_back": held_back, "prior_added": prior_added}
    extras = {name: mask for name, mask in extras.items() if mask is not None}

    def outlines(*index) -> tuple[np.ndarray, ...]:
        return tuple(mask[index] for mask in extras.values())

    # the panels: (label, planes (hu, lungs, opacity, then held_back and prior_added where given) head up,
    # (height, width) mm, side markers)
    panels = []
    for (name, _), z in zip(AXIAL_LEVELS, levels, strict=True):
        planes = (hu[z, by, bx], lungs[z, by, bx], opacity[z, by, bx], *outlines(z, by, bx))
        panels.append((f"{name}, slice {z + 1} of {nz}", planes, (ext["y"], ext["x"]), ("R", "L"), ("axial", z)))
    up = slice(bz.stop - 1, bz.start - 1 if bz.start else None, -1)  # head up
    planes = (hu[up, y, bx], lungs[up, y, bx], opacity[up, y, bx], *outlines(up, y, bx))
    panels.append((f"coronal, row {y + 1} of {ny}", planes, (ext["z"], ext["x"]), ("R", "L"), ("coronal", y)))
    for side, name in ((1, "right"), (2, "left")):
        x = sagittal[side]
        if x is None:
            continue
        planes = (hu[up, by, x], lungs[up, by, x], opacity[up, by, x], *outlines(up, by, x))
        panels.append((f"{name} lung, column {x + 1}", planes, (ext["z"], ext["y"]), ("A", "P"), ("sagittal", x)))

    width = round(12 * dpi)
    big, small = _font(11, dpi), _font(9, dpi)
    line = round(9 * dpi / 72 * 1.4)  # height of a small text line
    pad = round(0.08 * dpi)
    gap = round(0.06 * dpi)  # between panels
    scale = min(  # pixels per mm, the same in every panel
        (width - 2 * pad - gap * (len(panels) - 1)) / sum(p[2][1] for p in panels),
        3.0 * dpi / max(p[2][0] for p in panels),  # rows at most 3 inches high
    )
    sizes = [(max(1, int(h * scale)), max(1, int(w * scale))) for _, _, (h, w), _, _ in panels]
    row_h = max(h for h, _ in sizes)
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    notes = []
    for warning in warnings:  # shortened to the picture's width
        text = " ".join(str(warning).split())
        while measure.textlength(text, font=small) > width - 2 * pad and len(text) > 1:
            text = text[: int(len(text) * 0.95)].rstrip() + "..." if not text.endswith("...") else text[:-4] + "..."
        notes.append(text)
    title_h = round(11 * dpi / 72 * 1.35 * 2)
    top = pad + title_h + len(notes) * line + pad
    row1 = top + 2 * line + pad  # row caption and panel labels above
    row2 = row1 + row_h + line + pad
    height = row2 + row_h + pad + line + pad  # the legend below
    canvas = np.full((height, width, 3), 255, dtype=np.uint8)
    texts: list[tuple[tuple[int, int], str, str, str]] = []  # (position, text, fill, anchor); white text is outlined
    lines: list[tuple[str, int, int, int, int]] = []  # dotted lines: ("h" | "v", x0, y0, x1, y1)

    total = sum(w for _, w in sizes) + gap * (len(panels) - 1)
    left = (width - total) // 2
    placed = []  # (kind, pixel box (left, top, width, height) in the top row)
    shown = set()  # the outlines (held_back, prior_added) that some panel shows (then they are in the legend)
    for (label, planes, _, markers, (kind, _)), (h, w) in zip(panels, sizes, strict=True):
        small_planes = _resample(planes, (h, w))
        slice_planes, extra = small_planes[:3], dict(zip(extras, small_planes[3:], strict=True))
        shown |= {name for name, plane in extra.items() if plane.any()}
        for upper, window, overlay in ((row1, LUNG_WINDOW, True), (row2, SOFT_TISSUE_WINDOW, False)):
            y0 = upper + (row_h - h) // 2
            canvas[y0 : y0 + h, left : left + w] = _rgb(
                *slice_planes,
                window=window,
                overlay=overlay,
                held2d=None if overlay else extra.get("held_back"),
                added2d=None if overlay else extra.get("prior_added"),
            )
            for frac, marker in ((0.0, markers[0]), (1.0, markers[1])):
                at = (left + line // 2 + round(frac * (w - line)), y0 + h // 2)
                texts.append((at, marker, "white", "mm"))
        texts.append(((left + w // 2, row1 - line // 2 - pad // 2), label, "black", "mm"))
        placed.append((kind, (left, row1 + (row_h - h) // 2, w, h)))
        left += w + gap

    def at(index: int, start: int, stop: int, size: int, flip: bool) -> int:
        """Pixel offset of the centre of voxel ``index`` of ``start:stop`` drawn over ``size`` pixels."""
        offset = (stop - 1 - index if flip else index - start) + 0.5
        return min(size - 1, int(offset * size / (stop - start)))

    for kind, (x0, y0, w, h) in placed:
        if kind == "axial":
            continue
        for z in levels:  # axial levels, dotted
            row = y0 + at(z, bz.start, bz.stop, h, True)
            lines.append(("h", x0, row, x0 + w, row))
        if kind == "coronal":  # the sagittal slices' columns
            for x in sagittal.values():
                if x is not None:
                    col = x0 + at(x, bx.start, bx.stop, w, False)
                    lines.append(("v", col, y0, col, y0 + h))
        else:  # the coronal slice's row
            col = x0 + at(y, by.start, by.stop, w, False)
            lines.append(("v", col, y0, col, y0 + h))

    image = Image.fromarray(canvas)
    draw = ImageDraw.Draw(image)
    dash = max(1, round(dpi / 75))
    for kind, x0, y0, x1, y1 in lines:
        if kind == "h":
            for x in range(x0, x1, 3 * dash):
                draw.line([(x, y0), (min(x + dash, x1) - 1, y0)], fill="white")
        else:
            for yy in range(y0, y1, 3 * dash):
                draw.line([(x0, yy), (x0, min(yy + dash, y1) - 1)], fill="white")
    stroke = max(1, round(dpi / 100))
    for position, text, fill, anchor in texts:
        outlined = {"stroke_width": stroke, "stroke_fill": "black"} if fill == "white" else {}
        draw.text(position, text, font=small, fill=fill, anchor=anchor, **outlined)
    draw.multiline_text((width // 2, pad), f"{title}\n{numbers}", font=big, fill="black", anchor="ma", align="center")
    for i, note in enumerate(notes):
        draw.text((width // 2, pad + title_h + i * line), note, font=small, fill=COLOURS[2], anchor="ma")
    x_caption = (width - total) // 2
    draw.text((x_caption, row1 - 2 * line - pad // 2), "lung window (level -600, width 1500): opacity and lung "
              "outline", font=small, fill="black", anchor="la")
    draw.text((x_caption, row2 - line - pad // 2), "soft-tissue window (level 40, width 400): lung outline only; "
              "dense tissue inside it is measured as lung, outside it is not", font=small, fill="black", anchor="la")
    entries = [
        (COLOURS[1], class_names[0]),
        (COLOURS[2], class_names[1]),
        (COLOURS[3], "vessel"),
        (None, "lung outline"),
    ]
    if "held_back" in shown:
        entries.append(("held_back", "left out at the anatomical limits"))
    if "prior_added" in shown:
        entries.append(("prior_added", "added by the serial prior"))
    patch = (round(0.22 * dpi), round(0.09 * dpi))
    widths = [patch[0] + pad + round(draw.textlength(text, font=small)) for _, text in entries]
    x = (width - sum(widths) - 2 * pad * (len(entries) - 1)) // 2
    y_mid = height - pad - line // 2
    for (colour, text), w in zip(entries, widths, strict=True):
        box = (x, y_mid - patch[1] // 2, x + patch[0], y_mid + patch[1] // 2)
        if colour is None or colour in ("held_back", "prior_added"):
            draw.rectangle(box, outline=COLOURS[colour or "outline"], width=max(1, dpi // 75))
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
