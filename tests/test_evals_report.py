"""Reports: the 80-column table with deltas and failed cases, JSON, valid JUnit XML with one testcase per
golden case, and the candidate matrix with each bundle's verdict and why."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest
from evals_fixtures import FakeAnswer, OracleAsk, golden, target

from edgetui.db import open_db
from edgetui.evals import report
from edgetui.evals.runner import run_eval


@pytest.fixture
def db(home):
    return open_db(p=home)


@pytest.fixture
def pair(db):
    """A passing baseline (1.0.0, full set) and a regressed candidate (1.1.0, smoke)."""
    g = golden()
    base = run_eval(db, g, target("1.0.0"), OracleAsk(g))
    cand = run_eval(db, g, target("1.1.0"), OracleAsk(g, wrong={"can-001", "abs-007"}), smoke=True,
                    default_ref="field-policy@1.0.0")
    return base, cand


def test_table_fits_80_columns_and_shows_slices_deltas_gate_and_failures(pair):
    _, cand = pair
    text = report.table(cand)
    lines = text.splitlines()
    assert all(len(line) <= 80 for line in lines)
    assert lines[0] == f"eval run {cand.run.id} · field-policy@1.1.0 · smoke, 12 cases"
    assert lines[1].startswith("golden field-policy/v1 · sha256 4febd9ca5169")
    assert any(line.startswith("canonical") and line.rstrip().endswith("-0.500") for line in lines)
    assert "gate: FAIL" in lines
    assert "regressed vs baseline: abs-007, can-001" in text
    assert "failed cases (2):" in text and any(line.startswith("  can-001  canonical") for line in lines)


def test_json_carries_run_identity_summary_gate_and_every_case(pair):
    _, cand = pair
    d = json.loads(json.dumps(report.outcome_json(cand)))
    assert d["bundle"]["version"] == "1.1.0" and d["golden"]["sha256"] == golden().sha256
    assert d["gate"]["passed"] is False and d["gate"]["baseline"]["bundle"] == "field-policy@1.0.0"
    assert len(d["results"]) == d["golden"]["cases"] and d["latency"]["p95_ttft_ms"] > 0
    assert d["overhead_ratio"] is not None


def test_junit_is_valid_xml_with_one_testcase_per_golden_case(pair, tmp_path):
    base, cand = pair
    p = tmp_path / "eval.xml"
    p.write_bytes(report.junit([cand, base]))
    root = ET.parse(p).getroot()
    assert root.tag == "testsuites"
    s1, s2 = root.findall("testsuite")
    assert len(s1.findall("testcase")) == cand.run.n_cases and len(s2.findall("testcase")) == base.run.n_cases
    assert int(root.get("tests")) == cand.run.n_cases + base.run.n_cases
    assert s1.get("failures") == "2" and s1.get("errors") == "0"
    tc = next(t for t in s1.findall("testcase") if t.get("name") == "can-001")
    assert tc.get("classname") == "field-policy/v1.canonical"
    assert tc.find("failure").get("message").startswith("facts: missing 'SK-2240'")
    props = {p.get("name"): p.get("value") for p in s1.find("properties")}
    assert props["gate"] == "fail" and props["golden_sha256"] == golden().sha256


def test_junit_survives_control_characters_and_markup_in_answers(db):
    g = golden()
    oracle = OracleAsk(g)

    def ask(q, cancel=None):
        a = oracle(q)
        return FakeAnswer(q, a.answer + " <b>&\x00\x1b[31m", a.citations, a.abstained, a.confidential, a.stats)

    out = run_eval(db, g, target(), ask, smoke=True)
    root = ET.fromstring(report.junit([out]))
    assert "<b>&" in root.find("testsuite/testcase/system-out").text


def test_matrix_shows_bundles_side_by_side_against_their_bars(db):
    g = golden()
    a = run_eval(db, g, target("1.0.0"), OracleAsk(g), smoke=True)
    b = run_eval(db, g, target("2.0.0", bars={"quality": 0.9, "p95_ttft_ms": 2000, "min_decode_tps": 30}),
                 OracleAsk(g, wrong={"can-001", "mes-002"}, tps=20.0), smoke=True, baseline_ref="field-policy@1.0.0")
    text = report.matrix([a, b])
    lines = text.splitlines()
    assert "field-policy@1.0.0" in lines[1] and "field-policy@2.0.0" in lines[1]
    assert any(line.startswith("canonical") for line in lines)
    assert "field-policy@1.0.0: approved" in lines
    rejected = next(line for line in lines if line.startswith("field-policy@2.0.0: rejected"))
    assert "quality 0.833 < bar 0.900" in rejected
    assert all(len(line) <= 80 for line in lines)
