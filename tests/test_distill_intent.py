"""The intent gate classifier: generated labels, no golden question in training, ONNX under 2 ms."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.train

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO / "bundles" / "field-policy" / "corpus"
GOLDEN = REPO / "golden_sets" / "field-policy" / "v1.jsonl"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from edgetui.distill.intent import examples, train_intent

    torch.set_num_threads(1)
    data = examples(CORPUS, (REPO / "bundles" / "field-policy" / "template.txt").read_text(), GOLDEN)
    out = tmp_path_factory.mktemp("intent") / "intent.onnx"
    return data, out, train_intent(data, out, epochs=15)


def test_training_data_covers_every_intent_and_no_golden_question(trained):
    data, _, _ = trained
    from edgetui.distill.intent import INTENTS

    assert {y for _, y in data} == set(range(len(INTENTS)))
    golden = {json.loads(x)["question"] for x in GOLDEN.read_text().splitlines() if x.strip()}
    assert not golden & {q for q, _ in data}


def test_classifier_is_accurate_on_held_out_examples_and_fast(trained):
    _, _, report = trained
    assert report["val_accuracy"] >= 0.9
    assert report["ms_per_query"] < 2.0


def test_onnx_classifier_labels_obvious_cases(trained):
    from edgetui.distill.intent import OnnxIntentClassifier

    clf = OnnxIntentClassifier(trained[1])
    assert clf.classify("hello there")[0] == "small_talk"
    assert clf.classify("Any tips for my fantasy football team?")[0] == "out_of_scope"
    probs = clf.probabilities("which seal kit fits the raw water pumps?")
    assert abs(sum(probs.values()) - 1) < 1e-5
