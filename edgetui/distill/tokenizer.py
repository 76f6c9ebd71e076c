"""Rebuild the teacher's tokenizer as a `tokenizers` tokenizer from the GGUF vocabulary.

The ONNX runtime has no llama.cpp to tokenize with, so the export writes this as tokenizer.json
beside model.onnx. Pre-tokenizers mirror llama.cpp's regexes for the `tokenizer.ggml.pre` types we
support; anything else is refused rather than tokenized differently. Parity with llama.cpp is
tested on a probe corpus.
"""

from __future__ import annotations

from pathlib import Path

from edgetui.distill.gguf_io import GGUFError

CONTROL, USER_DEFINED = 3, 4
# Token texts llama.cpp treats as end-of-generation besides eos (llama-vocab.cpp).
EOG_TEXTS = {"<|endoftext|>", "<|im_end|>", "<|eot_id|>", "<|end|>", "</s>", "<end_of_turn>", "<|return|>"}


def build_tokenizer(tokenizer_fields: dict):
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    f = {k: v[0] for k, v in tokenizer_fields.items()}
    if f.get("tokenizer.ggml.model") != "gpt2":
        raise GGUFError(f"tokenizer model {f.get('tokenizer.ggml.model')!r} is not byte-level BPE: "
                        "ONNX export supports gpt2-style tokenizers only")
    pre = f.get("tokenizer.ggml.pre", "default")
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    if pre in ("smollm", "starcoder", "refact", "codeshell"):
        pre_tok = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte_level])
    elif pre in ("gpt2", "default", "gpt-2"):
        pre_tok = byte_level
    else:
        raise GGUFError(f"pre-tokenizer {pre!r} is not supported by the ONNX export: use the GGUF runtime")
    tokens, types = f["tokenizer.ggml.tokens"], f.get("tokenizer.ggml.token_type", [])
    vocab = {t: i for i, t in enumerate(tokens)}
    merges = [tuple(m.split(" ", 1)) for m in f.get("tokenizer.ggml.merges", [])]
    tk = Tokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False))
    tk.pre_tokenizer = pre_tok
    tk.decoder = decoders.ByteLevel()
    special = [AddedToken(t, special=True, normalized=False)
               for t, ty in zip(tokens, types, strict=False) if ty in (CONTROL, USER_DEFINED)]
    tk.add_special_tokens(special)
    return tk


def special_ids(tokenizer_fields: dict) -> dict:
    """bos/eos ids, whether to add bos, and the end-of-generation set, as the ONNX runtime needs them."""
    f = {k: v[0] for k, v in tokenizer_fields.items()}
    tokens = f["tokenizer.ggml.tokens"]
    eos = f.get("tokenizer.ggml.eos_token_id")
    eog = {i for i, t in enumerate(tokens) if t in EOG_TEXTS}
    if eos is not None:
        eog.add(int(eos))
    return {"bos": f.get("tokenizer.ggml.bos_token_id"), "eos": eos,
            "add_bos": bool(f.get("tokenizer.ggml.add_bos_token", False)), "eog": sorted(eog)}


def save_tokenizer(tokenizer_fields: dict, out: str | Path) -> Path:
    out = Path(out)
    build_tokenizer(tokenizer_fields).save(str(out))
    return out
