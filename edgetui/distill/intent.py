"""The intent gate classifier: policy question / escalation / small talk / out of scope.

Labelled examples are generated from the corpus (the capture's question templates) and from templates
for the other intents; golden-set questions are refused by the same guard as the capture. A hashed
n-gram vector (`intent_features`) feeds a small MLP, exported to ONNX and run by onnxruntime
(`OnnxIntentClassifier`). `measure` compares it with the assistant's rule gate on a
held-out split and on the golden set (evaluation only: golden questions never reach training).
"""

from __future__ import annotations

import json
import os
import random
import time
import zlib
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgetui.distill.prompts import OUT_OF_SCOPE, GoldenGuard, generate
from edgetui.engine.base import ModelFileError

INTENTS = ("policy_question", "escalation", "small_talk", "out_of_scope")
FEATURES = 4096

SMALL_TALK = ["hi", "hello", "hey there", "good morning", "good afternoon", "thanks", "thank you so much",
              "cheers mate", "ok thanks", "bye", "see you tomorrow", "how are you", "how's it going",
              "who are you", "what can you do", "are you a robot", "nice one", "you're helpful", "lol",
              "great, thanks for that", "morning all", "what's up", "hello assistant", "thx", "ok", "good night",
              "have a nice day", "are you there", "testing", "can you hear me"]
ESCALATION = ["I need to speak to a supervisor about {t}", "escalate this please: {t}",
              "can you get the on-call engineer, {t}", "this is urgent, who do I escalate {t} to",
              "put me through to the duty manager, {t}", "I want to raise a complaint about {t}",
              "nobody is answering about {t}, I need a human", "please flag {t} to my manager",
              "open an escalation ticket for {t}", "I disagree with the policy on {t}, who decides?"]
OOS_TEMPLATES = ["What is the best {x}?", "Can you help me with {x}?", "Tell me about {x}.", "How do I {y}?",
                 "Where can I find {x}?", "What's the latest on {x} today?", "Any news about {x}?",
                 "I want to {y}, any tips?", "Explain {x} to me", "Who is in charge of {x}?"]
OOS_X = ["football scores", "a pizza recipe", "my payslip", "holiday bookings", "the office wifi password",
         "a new phone", "stock tips", "the canteen menu", "parking permits", "a birthday gift", "movie times",
         "python programming", "the bus timetable", "my gym membership", "crypto prices", "share prices",
         "the election", "the weather", "interest rates", "a good restaurant", "the world cup", "celebrity gossip",
         "tax returns", "video games", "car insurance", "the history of Rome", "a song for my wedding"]
OOS_Y = ["bake bread", "change my desktop wallpaper", "book annual leave", "learn french", "fix my bike",
         "write a cover letter", "renew my passport", "play chess better", "claim mileage", "reset my voicemail",
         "invest in shares", "cook a steak", "train for a marathon", "buy a house", "update my phone"]


def intent_features(text: str) -> np.ndarray:
    """Hashed bag of words, word bigrams and character 3-grams, L2-normalised: float32 [FEATURES].

    Shared by the trainer and `OnnxIntentClassifier`, so both see the same vector.
    """
    t = " ".join(text.lower().split())
    words = t.replace("?", " ").replace(",", " ").replace(".", " ").split()
    grams = [f"w:{w}" for w in words] + [f"b:{a}_{b}" for a, b in zip(words, words[1:], strict=False)]
    padded = f" {t} "
    grams += [f"c:{padded[i:i + 3]}" for i in range(len(padded) - 2)]
    v = np.zeros(FEATURES, dtype=np.float32)
    for g in grams:
        v[zlib.crc32(g.encode()) % FEATURES] += 1.0
    n = float(np.linalg.norm(v))
    return v / n if n else v


class OnnxIntentClassifier:
    """The trained classifier run by onnxruntime: `classify(text) -> (intent, probability)`, well under 2 ms."""

    def __init__(self, model_path: str | os.PathLike, n_threads: int = 1):
        import onnxruntime as ort

        p = Path(model_path)
        if not p.is_file():
            raise ModelFileError(f"intent model {p} is missing: train it with `edgetui distill intent`")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = n_threads
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(p), opts, providers=["CPUExecutionProvider"])
        meta = self.session.get_modelmeta().custom_metadata_map
        self.labels = tuple(json.loads(meta.get("edgetui.intents", json.dumps(INTENTS))))

    def probabilities(self, text: str) -> dict[str, float]:
        (logits,) = self.session.run(None, {"features": intent_features(text)[None, :]})
        z = logits[0] - logits[0].max()
        p = np.exp(z) / np.exp(z).sum()
        return {label: float(x) for label, x in zip(self.labels, p, strict=True)}

    def classify(self, text: str) -> tuple[str, float]:
        probs = self.probabilities(text)
        best = max(probs, key=probs.get)
        return best, probs[best]


def examples(corpus_dir: Path, template: str, golden: Path | None, seed: int = 0) -> list[tuple[str, int]]:
    rng = random.Random(seed)
    guard = GoldenGuard(golden)
    plist, _ = generate(corpus_dir, template, golden, seed=seed)
    policy = [p.question for p in plist if p.kind != "out_of_scope"]
    topics = [q.rstrip("?").lower() for q in policy]
    data = [(q, 0) for q in policy]
    data += [(t.format(t=rng.choice(topics)), 1) for t in ESCALATION for _ in range(12)]
    data += [(v, 2) for s in SMALL_TALK for v in (s, s.capitalize() + "!", s + " :)")]
    data += [(t.format(x=rng.choice(OOS_X), y=rng.choice(OOS_Y)), 3) for t in OOS_TEMPLATES for _ in range(25)]
    data += [(q, 3) for q in OUT_OF_SCOPE]
    data = [(q, y) for q, y in dict(data).items() if not guard.refuses(q)]
    rng.shuffle(data)
    return data


class IntentMLP(nn.Module):
    def __init__(self, hidden: int = 64):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(FEATURES, hidden), nn.ReLU(), nn.Linear(hidden, len(INTENTS)))

    def forward(self, features):
        return self.net(features)


def train_intent(data: list[tuple[str, int]], out: Path, epochs: int = 30, seed: int = 0) -> dict:
    """Train, export ONNX to `out`, and report held-out accuracy and latency."""
    torch.manual_seed(seed)
    n_val = max(1, len(data) // 5)
    val, tr = data[:n_val], data[n_val:]
    x = torch.from_numpy(np.stack([intent_features(q) for q, _ in tr]))
    y = torch.tensor([lab for _, lab in tr])
    model = IntentMLP()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    for _ in range(epochs):
        perm = torch.randperm(len(x))
        for i in range(0, len(x), 64):
            b = perm[i:i + 64]
            loss = nn.functional.cross_entropy(model(x[b]), y[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
    export_intent(model.eval(), out)
    clf = OnnxIntentClassifier(out)
    correct = sum(INTENTS.index(clf.classify(q)[0]) == lab for q, lab in val)
    t0 = time.perf_counter()
    for q, _ in val:
        clf.classify(q)
    ms = (time.perf_counter() - t0) * 1000 / len(val)
    return {"train": len(tr), "val": len(val), "val_accuracy": round(correct / len(val), 3),
            "ms_per_query": round(ms, 3)}


def export_intent(model: IntentMLP, out: Path) -> Path:
    import warnings

    import onnx

    out.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(model, (torch.zeros(1, FEATURES),), str(out), dynamo=False, opset_version=17,
                          input_names=["features"], output_names=["logits"],
                          dynamic_axes={"features": {0: "batch"}, "logits": {0: "batch"}})
    proto = onnx.load(str(out))
    proto.metadata_props.add(key="edgetui.intents", value=json.dumps(INTENTS))
    onnx.save(proto, str(out))
    return out


def compare_with_rules(model: Path, data: list[tuple[str, int]], golden: Path | None, corpus_dir: Path) -> dict:
    """Classifier vs the assistant's rule gate, on the held-out split and on the golden set.

    The rules only stop small talk, instructions and out-of-scope text; anything they let through counts
    as `policy_question`. On the golden set the expected intent is `policy_question` for every case the
    corpus answers (a gate that stops one of those loses a correct answer).
    """
    clf = OnnxIntentClassifier(model)
    val = data[: max(1, len(data) // 5)]
    try:
        from edgetui.assistant.gate import check
        from edgetui.assistant.index import Retriever

        retriever = Retriever.in_memory(Path(corpus_dir))
        known = getattr(retriever, "_matches", None)

        def rules(q: str) -> int:
            r = check(q, known)
            if r is None:
                return 0
            return {"small_talk": 2, "out_of_scope": 3}.get(r.rule, 3)
    except ImportError:
        rules = None
    out = {"classifier_val_accuracy": _acc(lambda q: INTENTS.index(clf.classify(q)[0]), val)}
    if rules is not None:
        out["rules_val_accuracy"] = _acc(rules, val)
    if golden and Path(golden).is_file():
        cases = [json.loads(x) for x in Path(golden).read_text().splitlines() if x.strip()]
        answerable = [(c["question"], 0) for c in cases if not c["expect"].get("abstain")]
        out["classifier_golden_pass_through"] = _acc(lambda q: INTENTS.index(clf.classify(q)[0]), answerable)
        if rules is not None:
            out["rules_golden_pass_through"] = _acc(rules, answerable)
    return out


def _acc(fn, rows) -> float:
    return round(sum(fn(q) == y for q, y in rows) / max(1, len(rows)), 3)
