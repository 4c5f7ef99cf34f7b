"""What every benchmark shares: clocks, peak memory (of this process or of a child), child processes, printed
tables, the generated CT series and the one call of the per-scan pipeline.

The benchmarks import it as ``import _harness`` (Python puts a script's own folder on ``sys.path``). Figures are
wall seconds (``time.perf_counter``), CPU seconds (``time.process_time``) and peak resident memory in MiB (Linux
``ru_maxrss``, or ``VmHWM`` after :func:`reset_peak`).

A benchmark that needs a figure free of what its own process did before (imports, a generated scan) runs the work
in a child process (:func:`run_child`, :func:`run_json_child`): the child's peak memory is then its own high-water
mark, read by the parent from ``wait4``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# ------------------------------------------------------------------------------------------------------- clocks


@dataclass
class Clock:
    """Wall and CPU seconds of a ``with clock() as c:`` block (set when the block ends)."""

    wall: float = math.nan
    cpu: float = math.nan


@contextmanager
def clock() -> Iterator[Clock]:
    """Time the block: ``wall`` (``perf_counter``) and ``cpu`` (``process_time``, this process's threads) seconds."""
    c = Clock()
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        yield c
    finally:
        c.wall, c.cpu = time.perf_counter() - wall, time.process_time() - cpu


def timed(func: Callable, *args, **kwargs) -> tuple[float, object]:
    """(wall seconds, result) of ``func(*args, **kwargs)``."""
    start = time.perf_counter()
    result = func(*args, **kwargs)
    return time.perf_counter() - start, result


def repeat_seconds(func: Callable[[], object], repeat: int) -> list[float]:
    """Wall seconds of ``repeat`` calls of ``func`` (at least one)."""
    return [timed(func)[0] for _ in range(max(1, repeat))]


def best_and_median(seconds: Sequence[float]) -> tuple[float, float]:
    """The fastest and the median of several timings: on a shared machine the fastest is the code's own cost,
    the median what a run may expect."""
    return min(seconds), statistics.median(seconds)


# ------------------------------------------------------------------------------------------------------- memory


def peak_rss_mb() -> float:
    """This process's peak resident memory since it started (or since :func:`reset_peak`), MiB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):  # reset by reset_peak(); ru_maxrss is not
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def reset_peak() -> None:
    """Restart this process's resident-memory high-water mark at its current size (Linux ``clear_refs``), so that
    :func:`peak_rss_mb` measures one step; elsewhere nothing happens and the peak stays since the start."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


# ---------------------------------------------------------------------------------------------- child processes


@dataclass
class ChildRun:
    """A finished child process: wall seconds, its peak resident memory (MiB, the largest of the child and the
    descendants it waited for), exit status and captured output (empty when written to a log)."""

    wall: float
    peak_mb: float
    returncode: int
    stdout: str = ""
    stderr: str = ""
    cmd: list[str] = field(default_factory=list)


def run_child(
    cmd: Sequence[str], *, log: Path | None = None, cwd: Path | None = None, check: bool = True
) -> ChildRun:
    """Run ``cmd`` to its end, timing it and reading its peak memory from ``wait4``.

    Output goes to ``log`` (stdout and stderr together) or is captured. With ``check``, a failure ends the
    benchmark with the command and the end of its output.
    """
    cmd = [str(c) for c in cmd]
    out = open(log, "w") if log else subprocess.PIPE
    try:
        start = time.perf_counter()
        proc = subprocess.Popen(
            cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT if log else subprocess.PIPE, text=True
        )
        # read the pipes while the child runs (a full pipe would block it), then reap it with wait4 for its rusage
        stdout, stderr = ("", "") if log else _drain(proc)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
    finally:
        if log:
            out.close()
    proc.returncode = os.waitstatus_to_exitcode(status)
    run = ChildRun(wall, usage.ru_maxrss / 1024, proc.returncode, stdout, stderr, cmd)
    if check and run.returncode != 0:
        tail = Path(log).read_text()[-3000:] if log else (stdout + stderr)[-3000:]
        sys.exit(f"command failed ({run.returncode}): {' '.join(cmd)}\n{tail}")
    return run


def _drain(proc: subprocess.Popen) -> tuple[str, str]:
    """Read a child's stdout and stderr to their end without reaping it (threads, so neither pipe fills up)."""
    import threading

    chunks: dict[str, str] = {}

    def read(name: str, stream) -> None:
        chunks[name] = stream.read()
        stream.close()

    threads = [threading.Thread(target=read, args=(n, s)) for n, s in (("out", proc.stdout), ("err", proc.stderr))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return chunks["out"], chunks["err"]


def run_json_child(cmd: Sequence[str], *, cwd: Path | None = None) -> tuple[dict, ChildRun]:
    """Run a child that prints one JSON object as its last line of stdout; returns (that object, the run)."""
    run = run_child(cmd, cwd=cwd)
    lines = run.stdout.strip().splitlines()
    if not lines:
        sys.exit(f"no result from: {' '.join(run.cmd)}\n{run.stderr[-3000:]}")
    return json.loads(lines[-1]), run


def python_cmd(script: str | Path, *args: object) -> list[str]:
    """``python script args...`` with this interpreter."""
    return [sys.executable, str(script), *(str(a) for a in args)]


def interpreter_start(code: str, repeat: int) -> float:
    """Median wall seconds of a fresh interpreter running ``code`` (imports, start-up costs)."""
    return statistics.median(run_child([sys.executable, "-c", code]).wall for _ in range(max(1, repeat)))


# ------------------------------------------------------------------------------------------------- command line


def tool_parser(doc: str) -> tuple[argparse.ArgumentParser, Callable[..., argparse.ArgumentParser]]:
    """A command line of several tools: the parser (its description the first paragraph of ``doc``) and
    ``add_tool(name, text, parents=())``, which adds a tool and returns its own parser."""
    parser = argparse.ArgumentParser(description=" ".join(doc.split("\n\n")[0].split()))
    tools = parser.add_subparsers(dest="tool", required=True)

    def add_tool(name: str, text: str, parents: Sequence[argparse.ArgumentParser] = ()) -> argparse.ArgumentParser:
        return tools.add_parser(name, help=text, description=text, parents=list(parents))

    return parser, add_tool


def add_kernel_pairs(parser: argparse.ArgumentParser, what: str) -> None:
    """Option ``--kernel-pair I J`` (repeatable): folders I and J of the command line (1-based) are two
    reconstructions of one acquisition; ``what`` says what the benchmark does with them."""
    parser.add_argument(
        "--kernel-pair",
        type=int,
        nargs=2,
        action="append",
        default=[],
        metavar=("I", "J"),
        help=f"folders I and J (1-based, in the order given) are two reconstructions of one acquisition (e.g. a "
        f"sharp and a soft kernel): {what}; repeat for several pairs",
    )


def check_kernel_pairs(parser: argparse.ArgumentParser, pairs, n_folders: int) -> None:
    """Exit with a usage error unless every ``--kernel-pair`` names two different folders of the ``n_folders``."""
    for pair in pairs:
        if not all(1 <= k <= n_folders for k in pair) or pair[0] == pair[1]:
            parser.error(f"--kernel-pair {pair[0]} {pair[1]}: two different folder numbers from 1 to {n_folders}")


# ------------------------------------------------------------------------------------------------------- tables


class Table:
    """A printed table: columns are (name, width, format spec for numbers); floats print with the spec (default
    ``.2f``), NaN as ``nan``, anything else as text."""

    def __init__(self, title: str, columns: list[tuple[str, int, str]], notes: str = ""):
        self.title, self.columns, self.notes, self.rows = title, columns, notes, []

    def add(self, *cells) -> None:
        self.rows.append(cells)

    def render(self) -> str:
        import numpy as np

        def fmt(c, spec):
            if isinstance(c, (float, np.floating)):
                return "nan" if math.isnan(c) else format(float(c), spec or ".2f")
            return str(c)

        head = "  ".join(f"{name:>{w}}" for name, w, _ in self.columns)
        lines = [f"\n== {self.title}", head, "-" * len(head)]
        for row in self.rows:
            cells = [f"{fmt(c, spec):>{w}}" for c, (_, w, spec) in zip(row, self.columns)]
            lines.append("  ".join(cells))
        if self.notes:
            lines.append(self.notes)
        return "\n".join(lines)

    def print(self) -> None:
        print(self.render(), flush=True)


def mark(ok: bool) -> str:
    """A target's verdict in a table cell."""
    return "pass" if ok else "FAIL"


def verdict(ok: bool) -> str:
    """A target's verdict in a sentence."""
    return "met" if ok else "MISSED"


def dice(a, b) -> float:
    """Dice coefficient of two boolean masks (1 when both are empty)."""
    import numpy as np

    total = int(np.count_nonzero(a)) + int(np.count_nonzero(b))
    return 2.0 * int(np.count_nonzero(a & b)) / total if total else 1.0


# --------------------------------------------------------------------------------------------- files and series


def folder_mb(path: Path) -> float:
    """Megabytes (10^6 bytes) of the files under ``path``."""
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file()) / 1e6


def warm_page_cache(folder: Path) -> None:
    """Read every file under ``folder`` once, so that the readers timed next all find it in the page cache."""
    for dirpath, _, files in os.walk(folder):
        for name in files:
            with open(os.path.join(dirpath, name), "rb") as fp:
                while fp.read(1 << 22):
                    pass


def ct_series(workdir: Path, slices: int = 300, size: int = 512, noise_hu: float = 0.0) -> Path:
    """A chest CT series generated by the demo phantom (moderate COVID-19-like opacities: 15 % ground glass, 5 %
    consolidation), ``slices`` axial slices of ``size`` x ``size`` pixels (1 mm slices, a 400 mm field: 0.78 mm
    pixels at 512), one uncompressed Explicit VR Little Endian file per slice, in ``workdir/ct_<slices>x<size>``.
    ``noise_hu`` adds white Gaussian noise of that standard deviation (HU) to every voxel, as a sharp kernel or a
    low dose does (folder ``ct_<slices>x<size>_noise<N>``). Written once and reused while the folder holds
    ``slices`` files."""
    folder = Path(workdir) / (f"ct_{slices}x{size}" + (f"_noise{noise_hu:g}" if noise_hu else ""))
    if folder.is_dir() and len(list(folder.iterdir())) == slices:
        return folder
    import numpy as np

    from lungtrial.demo.dicomwrite import write_series
    from lungtrial.demo.phantom import Lesions, PhantomParams, make_chest

    spacing = (1.0, 400.0 / size, 400.0 / size)
    start = time.perf_counter()
    hu, _ = make_chest(
        PhantomParams(), spacing, (slices, size, size), Lesions(ground_glass_pct=15.0, consolidation_pct=5.0), seed=1
    )
    if noise_hu:
        rng = np.random.default_rng(2)
        for z in range(slices):  # slice by slice: no second float64 volume
            hu[z] += rng.normal(0.0, noise_hu, hu.shape[1:]).astype(hu.dtype)
    write_series(np.rint(hu).astype(np.int16), spacing, folder, thickness_mm=spacing[0], uid_seed="bench_speed")
    print(f"generated {slices} slices of {size} x {size} in {time.perf_counter() - start:.0f} s", flush=True)
    return folder


def sitk_read(folder: Path, files: Sequence[str] | None = None, recursive: bool = False) -> tuple[float, tuple]:
    """Seconds for SimpleITK's ``ImageSeriesReader`` to read a series (``files`` in slice order, relative to
    ``folder``; default the series GDCM finds in the folder), and the image's shape ``(z, y, x)``."""
    import SimpleITK as sitk

    start = time.perf_counter()
    reader = sitk.ImageSeriesReader()
    if files is None:
        reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder), recursive=recursive))
    else:
        reader.SetFileNames([str(Path(folder) / f) for f in files])
    image = reader.Execute()
    return time.perf_counter() - start, tuple(image.GetSize()[::-1])


def thp_mode() -> str:
    """The kernel's transparent huge page mode (the bracketed word), or "unknown"."""
    try:
        text = Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text()
    except OSError:
        return "unknown"
    return text[text.find("[") + 1 : text.find("]")] if "[" in text else text.strip()


# ------------------------------------------------------------------------------------------ the per-scan pipeline


def quantify(dicom_dir: str | Path, scan_id: str, outdir: str | Path, **options) -> dict:
    """One scan through :func:`lungtrial.imaging.quantify.quantify_scan` (what the per-scan job and ``lungtrial
    quantify`` run): the only place the benchmarks call it.

    Returns
    -------
    dict with ``status`` ("ok" | "excluded") and ``timings`` (seconds by stage: ``read``, ``segment``,
    ``measure``, ``write``, ``total``; a stage the scan did not reach is missing).
    """
    from lungtrial.imaging.quantify import quantify_scan

    result = quantify_scan(dicom_dir, scan_id, outdir, **options)
    get = result.get if isinstance(result, Mapping) else lambda name: getattr(result, name)
    return {"status": get("status"), "timings": dict(get("timings"))}
