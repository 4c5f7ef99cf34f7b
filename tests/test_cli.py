"""Console script: help texts, exit codes and a single stderr line for scans that cannot be measured."""

import subprocess
import sys

import pytest

from lungtrial.cli import main
from lungtrial.imaging.quantify import OUTPUTS

QUANTIFY_OPTIONS = [
    "--out",
    "--scan-id",
    "--preset",
    "--prefer",
    "--prefer-kernel",
    "--min-slices",
    "--max-slice-thickness",
    "--warn-slice-thickness",
    "--strict",
    "--measure-implausible",
    "--lesion-mask",
    "--class",
]


def run(*args):
    return subprocess.run(
        [sys.executable, "-m", "lungtrial.cli", *map(str, args)], capture_output=True, text=True, timeout=120
    )


def test_help_is_fast_and_lists_commands():
    proc = run("--help")
    assert proc.returncode == 0
    assert "quantify" in proc.stdout and "demo" in proc.stdout
    heavy = ("SimpleITK", "matplotlib", "pydicom", "scipy", "pandas")
    code = f"import sys, lungtrial.cli; print(sorted(m for m in {heavy} if m in sys.modules))"
    imported = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert imported.stdout.strip() == "[]"


def test_subcommand_help_documents_every_option(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["quantify", "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for option in QUANTIFY_OPTIONS:
        assert option in text
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    text = capsys.readouterr().out
    for option in ("--out", "--size", "--n-per-arm", "--seed"):
        assert option in text


def test_bad_usage_exits_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["quantify", "somewhere"])  # --out missing
    assert exc.value.code == 2
    # an extra HU class: NAME:LOWER:UPPER, a new name
    for bad in ("dense", "dense:x:", "opacity:-100:100", ":1:2"):
        with pytest.raises(SystemExit) as exc:
            main(["quantify", "somewhere", "--out", "o", "--class", bad])
        assert exc.value.code == 2, bad
    assert "--class" in capsys.readouterr().err


def test_an_extra_hu_class_is_measured(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "trial"), "--size", "tiny", "--n-per-arm", "1", "--seed", "3"]) == 0
    folder = next(p for p in (tmp_path / "trial").rglob("*") if p.is_dir() and p.name.endswith("-D00"))
    out = tmp_path / "out"
    assert main(["quantify", str(folder), "--out", str(out), "--min-slices", "10", "--class", "dense:-100:",
                 "--class", "airy::-950"]) == 0  # fmt: skip
    import pandas as pd

    metrics = pd.read_csv(out / "metrics.csv")
    for name in ("dense", "airy"):
        assert {f"{name}_ml", f"pct_{name}"} <= set(metrics.columns)
    assert metrics["dense_ml"].iloc[0] > 0 and metrics["airy_ml"].iloc[0] >= 0


@pytest.mark.parametrize("strict", [False, True])
def test_unmeasurable_scan_one_line_on_stderr(tmp_path, strict):
    folder = tmp_path / "P01-D00"
    folder.mkdir()
    (folder / "notes.txt").write_text("not a DICOM file")
    proc = run("quantify", folder, "--out", tmp_path / "out", *(["--strict"] if strict else []))
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "scan scan excluded" in lines[0] and "P01-D00" not in proc.stderr and "Traceback" not in proc.stderr
    assert (tmp_path / "out" / "metrics.csv").exists() != strict


def test_missing_folder(tmp_path, capsys):
    assert main(["quantify", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a folder" in err[0]


def test_demo_then_quantify(tmp_path, capsys):
    import pandas as pd

    assert main(["demo", "--out", str(tmp_path / "trial"), "--size", "tiny", "--n-per-arm", "1", "--seed", "3"]) == 0
    assert capsys.readouterr().out.startswith("demo trial written to")
    scans = pd.read_csv(tmp_path / "trial" / "scans.csv")
    assert scans["subject_id"].nunique() == 2
    folder = tmp_path / "trial" / scans["dicom_dir"].iloc[0]
    options = ["--out", str(tmp_path / "out"), "--preset", "ards", "--prefer", "most_slices", "--min-slices", "10"]
    code = main(["quantify", str(folder), *options])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert out.out.startswith("scan: lung ")  # the folder's name (here the scan ID) is never used
    # the workflow's layout of results/scans/<scan_id>/, and nothing else (no workspace, lock or temporary file)
    written = sorted(str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert written == sorted(OUTPUTS)
    # a warning of the series choice (here: slices thicker than 1 mm) is a line of stderr, as the measurement's are
    thin = ["--out", str(tmp_path / "thin"), "--warn-slice-thickness", "1"]
    assert main(["quantify", str(folder), *options[2:], *thin]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("lungtrial: scan scan: slices ") and "more than 1 mm" in err[0]


def test_implausible_lungs_excluded_or_measured_with_the_switch(tmp_path, capsys, monkeypatch):
    import pandas as pd

    from lungtrial.demo import design, write_scan
    from lungtrial.imaging import segmentation

    trial = design(n_per_arm=1, timepoints=(0,))
    scan_id = trial.scans["scan_id"].iloc[0]
    write_scan(trial, scan_id, tmp_path / "dicom", tmp_path / "truth", size="tiny")
    real = segmentation.segment

    def one_lung(*args, **kwargs):  # a segmentation that loses the left lung
        found = real(*args, **kwargs)
        found.labels[found.labels == 2] = 0
        return found

    monkeypatch.setattr(segmentation, "segment", one_lung)
    args = ["quantify", str(tmp_path / "dicom"), "--scan-id", scan_id, "--min-slices", "10"]
    assert main([*args, "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"scan {scan_id} excluded: implausible lungs: left lung missing" in err[0]
    row = pd.read_csv(tmp_path / "out" / "metrics.csv").iloc[0]
    assert row["status"] == "excluded" and row["exclusion_reason"].startswith("implausible lungs: left lung missing")

    assert main([*args, "--out", str(tmp_path / "anyway"), "--measure-implausible"]) == 0
    out = capsys.readouterr()
    assert out.out.startswith(f"{scan_id}: lung ")
    assert f"lungtrial: scan {scan_id}: implausible lungs: left lung missing" in out.err
    assert pd.read_csv(tmp_path / "anyway" / "metrics.csv").loc[0, "status"] == "ok"


def test_a_folder_name_never_names_the_scan(tmp_path, capsys):
    """PACS exports name folders by the patient's ID or the study's UID (identifiers): without --scan-id the scan
    is called 'scan', and a missing folder is not named back."""
    uid = tmp_path / "1.3.6.1.4.1.14519.5.2.1.6279.6001.179049373636438705059720603192"
    uid.mkdir()
    (uid / "notes.txt").write_text("not a DICOM file")
    assert main(["quantify", str(uid), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "scan scan excluded" in err and uid.name not in err
    assert uid.name not in (tmp_path / "out" / "metrics.csv").read_text()
    assert main(["quantify", str(tmp_path / "DOE_JOHN"), "--out", str(tmp_path / "out")]) == 1
    assert "DOE_JOHN" not in capsys.readouterr().err
