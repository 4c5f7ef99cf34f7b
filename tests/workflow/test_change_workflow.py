"""The change-map rules in the workflow's DAG (dry runs of the reduced demo, no job run): one pair job per
follow-up scan with every earlier scan of its subject as input, one more pair per subject for a new timepoint, a
picture per patient, none of it when registration is disabled, and the change table as an input of the statistics
when the analysis plan has change-map endpoints. The rules themselves run in the reduced demo
of tests/workflow/test_workflow.py."""

from __future__ import annotations

import pytest
import yaml
from workflow_setup import REPO, dry_run, jobs, run_snakemake


@pytest.fixture(scope="module")
def reduced() -> dict:
    return yaml.safe_load((REPO / ".test/config/config.yaml").read_text())


def test_one_pair_per_follow_up_with_earlier_scans_as_inputs(tmp_path, reduced):
    out = jobs(dry_run(tmp_path, reduced))
    n_subjects = 2 * reduced["demo_options"]["n_per_arm"]
    n_follow = len(reduced["demo_options"]["timepoints"]) - 1
    assert len(out["change_pair"]) == n_subjects * n_follow
    assert len(out["change_picture"]) == n_subjects and len(out["change_tables"]) == 1
    assert len(out["plot_change_endpoints"]) == 1
    last = next(line for line in out["change_pair"] if "P01-D28/series.json" in line)
    # the baseline is chosen among the earlier scans; their per-scan outputs and (demo) DICOM are the inputs
    for scan in ("P01-D00", "P01-D07"):
        assert f"results/scans/{scan}/series.json" in last and f"results/scans/{scan}/masks" in last
    assert "P02-" not in last


def test_new_timepoint_adds_one_pair_per_subject(tmp_path, reduced):
    before = len(jobs(dry_run(tmp_path / "a", reduced))["change_pair"])
    more = yaml.safe_load(yaml.safe_dump(reduced))
    more["demo_options"]["timepoints"] = [*reduced["demo_options"]["timepoints"], 35]
    after = len(jobs(dry_run(tmp_path / "b", more))["change_pair"])
    assert after - before == 2 * reduced["demo_options"]["n_per_arm"]


def without_change_endpoints(config: dict) -> dict:
    """A copy of ``config`` whose analysis plan has no change-map endpoint."""
    out = yaml.safe_load(yaml.safe_dump(config))
    out["analysis"]["outcomes"] = [o for o in out["analysis"]["outcomes"] if o.get("source") != "change"]
    return out


def test_change_table_is_a_statistics_input_only_for_change_endpoints(tmp_path, reduced):
    assert "results/imaging/change.csv" in jobs(dry_run(tmp_path / "a", reduced))["stats_tables"][0]
    out = jobs(dry_run(tmp_path / "b", without_change_endpoints(reduced)))
    assert "results/imaging/change.csv" not in out["stats_tables"][0]


def test_disabled_registration_has_no_change_jobs(tmp_path, reduced):
    off = without_change_endpoints(reduced)
    off["registration"]["enabled"] = False
    out = jobs(dry_run(tmp_path, off))
    assert not {"change_pair", "change_tables", "change_picture", "plot_change_endpoints"} & set(out)


def test_change_endpoints_without_change_maps_are_a_clear_error(tmp_path, reduced):
    off = yaml.safe_load(yaml.safe_dump(reduced))
    off["registration"]["enabled"] = False
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(off))
    proc = run_snakemake(tmp_path, "-n")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "(resolved_fraction): a change-map endpoint (source: change) needs the change maps" in proc.stderr
    assert "registration.enabled: true" in proc.stderr


def test_bad_registration_option_is_a_clear_error(tmp_path, reduced):
    bad = yaml.safe_load(yaml.safe_dump(reduced))
    bad["registration"]["min_dice"] = 2
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(bad))
    proc = run_snakemake(tmp_path, "-n")
    assert proc.returncode != 0 and "registration.min_dice" in proc.stderr
