"""Golden-set loading: the shipped set and its manifest, and every kind of bad input named by file,
line and field."""

from __future__ import annotations

import json
import shutil

import pytest
from evals_fixtures import GOLDEN, REPO

from edgetui.evals.golden import SLICES, GoldenError, default_golden_path, default_smoke, load_golden

GOOD = {"id": "x-001", "slice": "canonical", "question": "What seal kit?",
        "expect": {"facts": ["SK-2240"], "citations": ["POL-02#4"], "abstain": False}}


def write(tmp_path, *objs, raw: list[str] | None = None):
    p = tmp_path / "set.jsonl"
    lines = [json.dumps(o) for o in objs] + (raw or [])
    p.write_text("\n".join(lines) + "\n")
    return p


def with_(**over):
    d = json.loads(json.dumps(GOOD))
    for k, v in over.items():
        if k.startswith("expect_"):
            d["expect"][k.removeprefix("expect_")] = v
        else:
            d[k] = v
    return d


def test_shipped_golden_set_is_byte_identical_to_shared_data_and_matches_its_manifest():
    shared = REPO.parent / "shared" / "data" / "golden-field-policy-v1.jsonl"
    if shared.is_file():
        assert GOLDEN.read_bytes() == shared.read_bytes()
    g = load_golden(GOLDEN)
    m = json.loads(GOLDEN.with_name("v1.manifest.json").read_text())
    assert (g.name, g.version, g.sha256) == ("field-policy", "v1", m["sha256"])
    assert len(g.cases) == 63 == m["cases"]
    assert g.slices() == list(SLICES)
    assert default_golden_path("field-policy") == GOLDEN


def test_smoke_subset_is_fixed_about_twelve_cases_and_covers_every_slice():
    g = load_golden(GOLDEN)
    smoke = g.subset(smoke=True)
    assert 10 <= len(smoke) <= 14
    assert {c.slice for c in smoke} == set(SLICES)
    assert [c.id for c in smoke] == list(g.smoke_ids)


def test_facts_become_lists_of_spellings():
    c = load_golden(GOLDEN).case("par-003")
    assert c.facts == (("shift supervisor",), ("30 minutes", "30-minute", "30 min"))
    assert load_golden(GOLDEN).case("con-001").confidential is True
    assert load_golden(GOLDEN).case("abs-007").forbid == ("$142", "$128", "$119")


@pytest.mark.parametrize(("obj", "field", "words"), [
    (with_(slice="canonicl"), "slice", "unknown slice 'canonicl'"),
    (with_(id=""), "id", "non-empty string"),
    (with_(question=None), "question", "non-empty string"),
    ({k: v for k, v in GOOD.items() if k != "expect"}, "expect", "missing"),
    (with_(expect_facts="SK-2240"), "expect.facts", "must be a list"),
    (with_(expect_facts=["SK-2240", []]), "expect.facts[1]", "non-empty"),
    (with_(expect_citations=["POL-2"]), "expect.citations[0]", "not a citation id"),
    (with_(expect_abstain="no"), "expect.abstain", "true or false"),
    (with_(expect_abstain=True), "expect.abstain", "expects no facts"),
    (with_(expect_confidential="yes"), "expect.confidential", "true or false"),
    (with_(expect_forbid="$1"), "expect.forbid", "list of strings"),
    (with_(expect_abstian=True), "expect.abstian", "unknown field"),
    (with_(answer="x"), "answer", "unknown field"),
])
def test_bad_field_is_named_with_its_line(tmp_path, obj, field, words):
    p = write(tmp_path, GOOD | {"id": "ok-1"}, obj)
    with pytest.raises(GoldenError) as e:
        load_golden(p)
    assert e.value.line == 2 and e.value.field == field
    assert str(e.value).startswith(f"{p}:2: field {field}: ") and words in str(e.value)


def test_malformed_json_line_is_named(tmp_path):
    p = write(tmp_path, GOOD, raw=['{"id": "x-002", "slice": '])
    with pytest.raises(GoldenError, match=r"set\.jsonl:2: not valid JSON") as e:
        load_golden(p)
    assert e.value.line == 2


def test_duplicate_id_names_both_lines(tmp_path):
    p = write(tmp_path, GOOD, with_(id="x-002"), GOOD)
    with pytest.raises(GoldenError, match=r":3: field id: duplicate id 'x-001' \(first on line 1\)"):
        load_golden(p)


def test_manifest_hash_mismatch_is_refused(tmp_path):
    d = tmp_path / "fp"
    d.mkdir()
    shutil.copy(GOLDEN, d / "v1.jsonl")
    shutil.copy(GOLDEN.with_name("v1.manifest.json"), d / "v1.manifest.json")
    assert load_golden(d / "v1.jsonl").version == "v1"
    with (d / "v1.jsonl").open("a") as f:
        f.write(json.dumps(with_(id="extra-1")) + "\n")
    with pytest.raises(GoldenError, match="does not match its manifest v1.manifest.json") as e:
        load_golden(d / "v1.jsonl")
    assert e.value.field == "sha256"


def test_manifest_smoke_ids_must_exist(tmp_path):
    p = write(tmp_path, GOOD)
    m = {"name": "t", "version": "v1", "sha256": __import__("hashlib").sha256(p.read_bytes()).hexdigest(),
         "smoke": ["x-001", "nope"]}
    p.with_name("set.manifest.json").write_text(json.dumps(m))
    with pytest.raises(GoldenError, match=r"field smoke\[1\]: 'nope' is not a case"):
        load_golden(p)


def test_bare_jsonl_is_versioned_by_its_sha256_with_a_round_robin_smoke_subset(tmp_path):
    objs = [with_(id=f"c-{i}", slice=s) for i, s in enumerate(["canonical"] * 5 + ["messy"] * 3 + ["revision"])]
    p = write(tmp_path, *objs)
    g = load_golden(p)
    assert g.version == f"sha256:{g.sha256[:12]}" and g.manifest_path is None
    assert set(g.smoke_ids) == {c.id for c in g.cases}  # 9 cases < 12: all of them
    assert default_smoke(g.cases, size=3) == ("c-0", "c-5", "c-8")


def test_missing_file_and_empty_file_are_bad_input(tmp_path):
    with pytest.raises(GoldenError, match="no such file"):
        load_golden(tmp_path / "nope.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(GoldenError, match="no cases"):
        load_golden(tmp_path / "empty.jsonl")
