"""lungtrial.io: atomic writes (nothing half-written under a final name), the writers' formats, light imports; and
the library never importing the workflow's helpers."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from lungtrial import io

SRC = Path(__file__).resolve().parents[1] / "src" / "lungtrial"


def test_atomic_path_moves_the_file_into_place_only_when_complete(tmp_path):
    target = tmp_path / "sub" / "table.csv.gz"
    with io.atomic_path(target) as tmp:
        assert tmp.parent == target.parent and io.TEMPORARY.match(tmp.name) and tmp.name.endswith(".csv.gz")
        assert not target.exists()
        tmp.write_text("new")
    assert target.read_text() == "new" and os.listdir(target.parent) == ["table.csv.gz"]
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask  # an ordinary file, not mkstemp's owner-only one

    with pytest.raises(RuntimeError), io.atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert target.read_text() == "new" and os.listdir(target.parent) == ["table.csv.gz"]


def test_writers(tmp_path):
    table = pd.DataFrame({"scan_id": ["S1", "S2"], "pct": [1.5, None], "day": pd.to_datetime(["2020-02-01"] * 2)})
    io.write_csv(table.drop(columns="day"), tmp_path / "a.csv")
    assert (tmp_path / "a.csv").read_text() == "scan_id,pct\nS1,1.5\nS2,\n"
    io.write_table(table, tmp_path / "b.csv", tmp_path / "b.parquet")
    assert (tmp_path / "b.csv").read_text().splitlines()[1] == "S1,1.5,2020-02-01"
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "b.parquet"), table)
    with pytest.raises(ValueError, match="expected a .csv or .parquet"):
        io.write_table(table, tmp_path / "b.xlsx")
    io.write_json({"b": [1, 2], "a": "x"}, tmp_path / "c.json")
    assert (tmp_path / "c.json").read_text() == '{\n "b": [\n  1,\n  2\n ],\n "a": "x"\n}'
    io.write_json({"a": 1}, tmp_path / "d.json", indent=None, end="\n")
    assert json.loads((tmp_path / "d.json").read_text()) == {"a": 1}
    io.write_bytes(b"\x89PNG", tmp_path / "e.png")
    assert (tmp_path / "e.png").read_bytes() == b"\x89PNG"
    assert sorted(os.listdir(tmp_path)) == ["a.csv", "b.csv", "b.parquet", "c.json", "d.json", "e.png"]


def test_figures_are_byte_identical_whenever_written(tmp_path):
    from matplotlib.figure import Figure

    for name in ("a", "b"):
        fig = Figure(figsize=(2, 2))
        fig.subplots().fill_between([0, 1], [0, 1], [1, 2])  # a clip path: a hashed id in the SVG
        io.write_figure(fig, tmp_path / f"{name}.png", tmp_path / f"{name}.svg", dpi=40)
    for suffix in (".png", ".svg"):
        assert (tmp_path / f"a{suffix}").read_bytes() == (tmp_path / f"b{suffix}").read_bytes()


def test_importing_io_stays_light():
    code = "import sys, lungtrial.io; print(sorted(m for m in ('pandas', 'matplotlib', 'numpy') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"


def test_the_library_never_imports_the_workflow_helpers():
    """lungtrial.wfutil serves the workflow scripts; library modules write through lungtrial.io."""
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        if path.name == "wfutil.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or "", *(f"{node.module}.{a.name}" for a in node.names)]
            if any(name.split(".")[-1] == "wfutil" or ".wfutil." in f".{name}." for name in names):
                offenders.append(f"{path.relative_to(SRC)}:{node.lineno}")
    assert offenders == []
