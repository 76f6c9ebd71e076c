"""Scorers on hand-made answers: facts on word boundaries, citation precision/recall, abstention,
the confidential marker and forbidden strings, each failure named in the result."""

from __future__ import annotations

import pytest

from edgetui.evals.golden import GoldenCase
from edgetui.evals.scoring import citation_scores, fact_present, normalize, score_case


def case(facts=(("72 hours", "72-hour"),), citations=("POL-02#5",), abstain=False, confidential=None, forbid=()):
    return GoldenCase("t-1", "canonical", "q?", tuple(tuple(f) for f in facts), tuple(citations), abstain,
                      confidential, tuple(forbid))


@pytest.mark.parametrize(("spellings", "answer", "found"), [
    ("1 hour", "Report it within 1 hour.", True),
    ("1 hour", "It may run for 11 hours.", False),
    ("1 hour", "within 1 hours", False),
    ("72 h", "up to 72 hours", False),
    ("3 ppm", "the alarm trips at 0.3 ppm", False),
    ("3 ppm", "the scrubber starts at 3 ppm.", True),
    ("142", "Ostrander charges $142 per hour", True),
    ("$142", "Ostrander charges $142 per hour", True),
    ("142", "a rate of $142.50", False),
    ("SK-2240", "Use seal kit sk-2240 from stores", True),
    ("SK-2240", "Use seal kit SK-22400", False),
    ("shift supervisor", "call the Shift\n   Supervisor now", True),
    ("95 °C", "above 95 °C stop it", True),
    (["2 minutes", "two minutes"], "acknowledge within TWO   minutes", True),
    (["2 minutes", "two minutes"], "acknowledge within 12 minutes", False),
])
def test_fact_matches_one_spelling_case_insensitive_whitespace_normalised_on_word_boundaries(spellings, answer, found):
    assert fact_present(spellings, answer) is found


def test_normalize_casefolds_and_collapses_whitespace():
    assert normalize("  A\u00a0B\t\tC\nD ") == "a b c d"


def test_citation_precision_and_recall():
    assert citation_scores(("A-1#1", "A-1#2"), ("A-1#1",)) == (1.0, 0.5)
    assert citation_scores(("A-1#1",), ("A-1#1", "B-2#1")) == (0.5, 1.0)
    assert citation_scores(("A-1#1",), ("B-2#1", "C-3#1", "A-1#1")) == (pytest.approx(1 / 3), 1.0)
    assert citation_scores((), ()) == (1.0, 1.0)
    assert citation_scores(("A-1#1",), ()) == (0.0, 0.0)


def test_correct_answer_passes_every_check():
    s = score_case(case(), "Up to 72 hours while scheduled [POL-02#5].", ("POL-02#5",), False)
    assert s.passed and s.reasons == () and s.precision == 1.0 and s.recall == 1.0
    assert set(s.checks) == {"facts", "citations", "abstain", "lead"}  # its first line states "72": a lead


def test_missing_fact_fails_with_the_spellings_named():
    s = score_case(case(), "Up to 7 hours.", ("POL-02#5",), False)
    assert not s.passed and s.failed == ("facts", "lead")  # and the lead names a value no fact spells
    assert "'72 hours' or '72-hour'" in s.reasons[0]


def test_half_precision_passes_but_less_fails_and_recall_must_be_one():
    two = case(citations=("POL-02#5",))
    assert score_case(two, "72 hours", ("POL-02#5", "POL-03#1"), False).passed  # precision 0.5
    s = score_case(two, "72 hours", ("POL-02#5", "POL-03#1", "POL-04#1"), False)
    assert s.failed == ("citations",) and "precision 0.33" in s.reasons[0] and "unexpected POL-03#1" in s.reasons[0]
    multi = case(citations=("POL-02#2", "POL-02#4"))
    s = score_case(multi, "72 hours", ("POL-02#4",), False)
    assert s.failed == ("citations",) and s.recall == 0.5 and "not cited POL-02#2" in s.reasons[0]


def test_repeated_citations_count_once():
    assert score_case(case(), "72 hours", ("POL-02#5", "POL-02#5"), False).precision == 1.0


def test_abstention_expected_and_given_passes_only_when_it_cites_nothing():
    abst = case(facts=(), citations=(), abstain=True)
    assert score_case(abst, "The policy documents don't cover this.", (), True).passed
    s = score_case(abst, "The policy documents don't cover this.", ("POL-02#4",), True)
    assert not s.passed and "abstain" in s.failed and "must cite nothing" in " ".join(s.reasons)


def test_answering_an_abstain_case_and_abstaining_on_an_answerable_one_both_fail():
    abst = case(facts=(), citations=(), abstain=True)
    s = score_case(abst, "Use 45 Nm.", (), False)
    assert s.failed == ("abstain", "lead") and "should have said" in s.reasons[0]
    s = score_case(case(), "The policy documents don't cover this.", (), True)
    assert {"facts", "citations", "abstain"} <= set(s.failed)


def test_confidential_marker_must_equal_the_expectation_when_present():
    conf = case(confidential=True)
    assert score_case(conf, "72 hours", ("POL-02#5",), False, confidential=True).passed
    s = score_case(conf, "72 hours", ("POL-02#5",), False, confidential=False)
    assert s.failed == ("confidential",) and "not marked confidential" in s.reasons[0]
    assert "confidential" not in score_case(case(), "72 hours", ("POL-02#5",), False, True).checks


def test_forbidden_strings_fail_the_case():
    abst = case(facts=(), citations=(), abstain=True, forbid=("$142", "$128"))
    s = score_case(abst, "Not covered, but Ostrander bills $142.", (), True)
    assert s.failed == ("forbid", "lead") and "'$142'" in s.reasons[0]
    assert score_case(abst, "The policy documents don't cover this.", (), True).passed


# -- the lead check (scorer version 2) -------------------------------------------------------------
KIT = case(facts=(("SK-3110",),), citations=("POL-02#4",))
QUOTE = '"Treated water pumps P-301 to P-306 use seal kit SK-3110." [POL-02#4]'


@pytest.mark.parametrize(("answer", "holds"), [
    (f"SK-3110.\n{QUOTE}", True),  # a correct lead
    (f"Use SK-3110 on P-305, 2 in stock.\n{QUOTE}", True),  # a correct lead with an extra number
    (f"SK-2240.\n{QUOTE}", False),  # a wrong code, though the quote below is right
    (f"1. 1. 1. 1.\n{QUOTE}", False),  # a degenerate lead
    (f"Use the treated-water kit.\n{QUOTE}", None),  # no digit: the check does not apply
    (QUOTE, None),  # no lead at all
])
def test_a_lead_stating_a_digit_must_spell_a_fact(answer, holds):
    sc = score_case(KIT, answer, ("POL-02#4",), False)
    assert sc.checks.get("lead") is holds
    assert sc.passed is (holds is not False)
    if holds is False:
        assert any(r.startswith("lead: the first line") for r in sc.reasons)


def test_a_stale_revised_value_in_the_lead_fails():
    rev = case(facts=(("15 minutes",),), citations=("POL-08#3",))
    quote = ('"The duty manager answers a Severity 1 call within 15 minutes; Revision 4 shortened this target '
             'from 30 minutes to 15 minutes." [POL-08#3]')
    assert not score_case(rev, f"30 minutes.\n{quote}", ("POL-08#3",), False).passed
    assert score_case(rev, f"Within 15 minutes.\n{quote}", ("POL-08#3",), False).passed


def test_the_abstention_sentence_is_not_a_wrong_lead():
    sc = score_case(case(facts=(), citations=(), abstain=True), "The policy documents don't cover this.", (), True)
    assert sc.passed and "lead" not in sc.checks
