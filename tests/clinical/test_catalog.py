"""Tests for lungtrial.clinical._catalog: units, synonyms and the catalogue's own checks."""

from __future__ import annotations

import pandas as pd
import pytest

from lungtrial import clinical
from lungtrial.errors import InputError

from clinical_sheets import read, write


def test_unit_conversion_and_synonyms(tmp_path, subjects, catalog):
    labs, dropped = read(
        tmp_path,
        subjects,
        catalog,
        """
S1,2020-02-03 08:00,Lymphocyte count,0.8,10^9/L
S1,2020-02-04 08:00,lymphocytes,900,/µL
S1,2020-02-05 08:00,LYM#,1.1,x10*9/l
S1,2020-02-03 08:00,CRP,2.5,mg/dL
S1,2020-02-04 08:00,C-reactive protein,30,mg/L
S1,2020-02-03 08:00,TNF-α,12,pg/mL
S1,2020-02-03 08:00,D-dimer,850,ng/mL FEU
S1,2020-02-04 08:00,D-Dimers,1.2,mg/L FEU
S1,2020-02-03 08:00,Interleukin 6,40,ng/L
S1,2020-02-03 08:00,Creatinine,1.0,mg/dL
S1,2020-02-03 08:00,P/F ratio,40,kPa
""",
    )
    assert dropped.empty
    got = labs.set_index(["analyte", "datetime"])["value"]
    t = pd.Timestamp
    assert got[("lymphocytes", t("2020-02-03 08:00"))] == pytest.approx(0.8)
    assert got[("lymphocytes", t("2020-02-04 08:00"))] == pytest.approx(0.9)
    assert got[("lymphocytes", t("2020-02-05 08:00"))] == pytest.approx(1.1)
    assert got[("crp", t("2020-02-03 08:00"))] == pytest.approx(25.0)
    assert got[("crp", t("2020-02-04 08:00"))] == pytest.approx(30.0)
    assert got[("tnf_alpha", t("2020-02-03 08:00"))] == pytest.approx(12.0)
    assert got[("d_dimer", t("2020-02-03 08:00"))] == pytest.approx(0.85)
    assert got[("d_dimer", t("2020-02-04 08:00"))] == pytest.approx(1.2)
    assert got[("il6", t("2020-02-03 08:00"))] == pytest.approx(40.0)
    assert got[("creatinine", t("2020-02-03 08:00"))] == pytest.approx(88.42)
    assert got[("pao2_fio2", t("2020-02-03 08:00"))] == pytest.approx(300.02, abs=0.01)
    units = labs.drop_duplicates("analyte").set_index("analyte")["unit"]
    assert units["lymphocytes"] == "10^9/L" and units["crp"] == "mg/L" and units["d_dimer"] == "ug/mL FEU"
    assert set(labs["analyte_label"]) >= {"Lymphocytes", "CRP", "TNF-alpha", "D-dimer"}
    assert list(labs.columns) == list(clinical.LAB_COLUMNS)
    assert (labs["arm"] == "armA").all()


def test_catalog_rejects_conflicting_synonym(tmp_path):
    analytes = write(tmp_path / "a.csv", "analyte,label,synonyms\ncrp,CRP,\nil6,IL-6,CRP")
    units = write(tmp_path / "u.csv", "analyte,unit,factor,canonical\ncrp,mg/L,1,true\nil6,pg/mL,1,true")
    with pytest.raises(InputError, match=r"a.csv, row 3: synonym 'CRP' already names crp"):
        clinical.load_catalog(units, analytes)


def test_catalog_needs_one_canonical_unit(tmp_path):
    analytes = write(tmp_path / "a.csv", "analyte,label,synonyms\ncrp,CRP,")
    units = write(tmp_path / "u.csv", "analyte,unit,factor,canonical\ncrp,mg/dL,10,false")
    with pytest.raises(InputError, match="no canonical unit for analyte crp"):
        clinical.load_catalog(units, analytes)
