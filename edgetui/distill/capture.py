"""Teacher capture: the teacher answers capture prompts (greedy, production template) and we keep,
per generated position, its top-k log-probabilities and optionally its final hidden states.

llama.cpp runs in a separate subprocess (`python -m edgetui.distill.capture JOB`), away from the
trainer and anything UI. Shards (`shard-NNNNN.npz`) are written atomically and the prompt list is
frozen in `prompts.jsonl` on the first run, so a re-run resumes at the first missing shard. Per shard:
`tokens` (int32, prompt + completion, concatenated), `offsets`, `n_prompt`, `topk_ids` (uint16 when
the vocabulary fits), `topk_logprobs` (float16), `gen_offsets`, optional `hidden` (float16).
`manifest.json` records the teacher and template hashes, k, token counts and bytes per token.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from edgetui.distill.config import CaptureSettings

MANIFEST = "manifest.json"
PROMPTS = "prompts.jsonl"


class CaptureError(Exception):
    """A capture that cannot start or resume; the message names the problem and the fix."""


@dataclass(frozen=True)
class CaptureJob(CaptureSettings):
    """One capture run: its settings, the teacher GGUF and the output directory."""

    model_path: str
    out_dir: str

    @classmethod
    def of(cls, model_path: str, out_dir: str, settings: CaptureSettings) -> CaptureJob:
        """A job with the capture settings of `settings` (a [capture] section carries more fields)."""
        return cls(model_path, out_dir, **{f.name: getattr(settings, f.name) for f in fields(CaptureSettings)})


def sha256_path(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def shard_path(out_dir: Path, i: int) -> Path:
    return out_dir / f"shard-{i:05d}.npz"


def check_disk(out_dir: Path, n_prompts: int, job: CaptureJob, dim: int = 576) -> None:
    per_token = job.k * 4 + (dim * 2 if job.hidden else 0) + 8
    need = n_prompts * job.max_tokens * per_token * 1.5 + (64 << 20)
    free = shutil.disk_usage(out_dir).free
    if free < need:
        raise CaptureError(f"capture needs about {need / 1e6:.0f} MB but {out_dir} has {free / 1e6:.0f} MB free: "
                           "free some disk or capture fewer prompts")


def run_capture(job: CaptureJob, prompts: list[dict], meta: dict,
                progress: Callable[[int, int, int], None] | None = None) -> dict:
    """Capture every prompt not yet in a shard, then write the manifest; returns it.

    `meta` (teacher/template hashes, prompt settings) must match a previous run in the same directory.
    """
    out = Path(job.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    frozen = out / PROMPTS
    old_manifest = out / MANIFEST
    if frozen.is_file():
        prev = json.loads((out / "capture.json").read_text())
        for key in ("teacher_sha256", "template_sha256", "k", "hidden", "max_tokens"):
            mine = meta.get(key, asdict(job).get(key))
            if prev.get(key) != mine:
                raise CaptureError(f"{out} holds a capture with {key}={prev.get(key)!r}, not {mine!r}: "
                                   "use a new capture directory or the original settings")
        prompts = [json.loads(x) for x in frozen.read_text().splitlines() if x.strip()]
    else:
        check_disk(out, len(prompts), job)
        frozen.write_text("".join(json.dumps(p) + "\n" for p in prompts))
        (out / "capture.json").write_text(json.dumps({**meta, **asdict(job)}, indent=2))
    if old_manifest.is_file():
        old_manifest.unlink()
    n_shards = (len(prompts) + job.shard_size - 1) // job.shard_size
    todo = [i for i in range(n_shards) if not shard_path(out, i).is_file()]
    if todo:
        _run_worker(job, todo, len(prompts), progress)
    return write_manifest(out, job, meta, n_shards)


def _run_worker(job: CaptureJob, todo: list[int], n_prompts: int, progress) -> None:
    job_file = Path(job.out_dir) / "job.json"
    job_file.write_text(json.dumps({"job": asdict(job), "shards": todo}))
    done0 = (n_prompts - sum(min(job.shard_size, n_prompts - i * job.shard_size) for i in todo))
    with open(Path(job.out_dir) / "capture.log", "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "edgetui.distill.capture", str(job_file)],
                                stdout=subprocess.PIPE, stderr=log, text=True)
        try:
            for line in proc.stdout:
                try:
                    ev = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if progress and "done" in ev:
                    progress(ev["done"] + done0, n_prompts, ev["tokens"])
        finally:
            rc = proc.wait()
    if rc != 0:
        raise CaptureError(f"capture worker exited with code {rc}: see {Path(job.out_dir) / 'capture.log'}; "
                           "re-run the same command to resume")


def write_manifest(out: Path, job: CaptureJob, meta: dict, n_shards: int) -> dict:
    shards, n_seq, n_prompt_tok, n_gen, n_bytes = [], 0, 0, 0, 0
    for i in range(n_shards):
        p = shard_path(out, i)
        with np.load(p) as z:
            n_seq += len(z["n_prompt"])
            n_prompt_tok += int(z["n_prompt"].sum())
            n_gen += int(z["topk_ids"].shape[0])
        size = p.stat().st_size
        n_bytes += size
        shards.append({"path": p.name, "sha256": sha256_path(p), "size": size})
    m = {**meta, "k": job.k, "hidden": job.hidden, "max_tokens": job.max_tokens, "sequences": n_seq,
         "prompt_tokens": n_prompt_tok, "generated_tokens": n_gen, "bytes": n_bytes,
         "bytes_per_token": round(n_bytes / max(1, n_gen), 1), "shards": shards,
         "prompts_sha256": sha256_path(out / PROMPTS)}
    (out / MANIFEST).write_text(json.dumps(m, indent=2) + "\n")
    return m


def manifest_sha256(capture_dir: Path) -> str:
    return sha256_path(Path(capture_dir) / MANIFEST)


# -- worker (runs in its own process) -----------------------------------------------------------

def _worker(job_file: Path) -> None:
    import llama_cpp

    spec = json.loads(job_file.read_text())
    job = CaptureJob(**spec["job"])
    out = Path(job.out_dir)
    prompts = [json.loads(x) for x in (out / PROMPTS).read_text().splitlines() if x.strip()]
    kw = {"embedding": True, "pooling_type": llama_cpp.LLAMA_POOLING_TYPE_NONE} if job.hidden else {}
    llm = llama_cpp.Llama(job.model_path, n_ctx=job.n_ctx, n_threads=job.threads,
                          n_threads_batch=job.threads, verbose=False, **kw)
    n_vocab, n_embd = llm.n_vocab(), llm.n_embd()
    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    eog = {t for t in range(n_vocab) if llama_cpp.llama_vocab_is_eog(vocab, t)}
    id_dtype = np.uint16 if n_vocab <= 65536 else np.int32
    done, tokens_total = 0, 0
    grammars: dict[str, object] = {}
    for si in spec["shards"]:
        rows = prompts[si * job.shard_size:(si + 1) * job.shard_size]
        seqs, n_prompt, ids, lps, hid, gen_off = [], [], [], [], [], [0]
        for row in rows:
            toks = llm.tokenize(row["prompt"].encode("utf-8"), add_bos=True, special=True)
            toks = toks[: job.n_ctx - job.max_tokens - 1]
            out_toks = []
            gen = llm.generate(toks, temp=0.0, top_k=1, top_p=1.0, min_p=0.0, repeat_penalty=1.0, reset=True,
                               grammar=_grammar(grammars, row.get("grammar")))
            for nxt in gen:
                # the raw logits of the position that produced `nxt` (the grammar only masks sampling)
                logits = np.ctypeslib.as_array(llm._ctx.get_logits_ith(-1), shape=(n_vocab,)).astype(np.float32)
                m = logits.max()
                logp = logits - (m + np.log(np.exp(logits - m).sum()))
                top = np.argpartition(-logp, job.k)[: job.k]
                top = top[np.argsort(-logp[top])]
                ids.append(top.astype(id_dtype))
                lps.append(logp[top].astype(np.float16))
                if job.hidden:
                    e = np.ctypeslib.as_array(llm._ctx.get_embeddings_ith(-1), shape=(n_embd,))
                    hid.append(e.astype(np.float16))
                out_toks.append(int(nxt))
                if nxt in eog or len(out_toks) >= job.max_tokens:
                    break
            gen.close()
            seqs.append(np.asarray(toks + out_toks, dtype=np.int32))
            n_prompt.append(len(toks))
            gen_off.append(gen_off[-1] + len(out_toks))
            done += 1
            tokens_total += len(out_toks)
            print(json.dumps({"done": done, "tokens": tokens_total}), flush=True)
        arrays = {
            "tokens": np.concatenate(seqs), "offsets": np.cumsum([0] + [len(s) for s in seqs]).astype(np.int64),
            "n_prompt": np.asarray(n_prompt, dtype=np.int32), "gen_offsets": np.asarray(gen_off, dtype=np.int64),
            "topk_ids": np.stack(ids), "topk_logprobs": np.stack(lps),
            "prompt_ids": np.asarray([r["id"] for r in rows]),
        }
        if job.hidden:
            arrays["hidden"] = np.stack(hid)
        tmp = out / f".shard-{si:05d}.tmp.npz"
        np.savez(tmp, **arrays)
        os.replace(tmp, shard_path(out, si))


def _grammar(cache: dict, text: str | None):
    if not text:
        return None
    if text not in cache:
        from llama_cpp import LlamaGrammar

        cache[text] = LlamaGrammar.from_string(text, verbose=False)
    return cache[text]


def load_shards(capture_dir: Path) -> list[dict]:
    """Sequences as dicts: tokens, n_prompt, topk_ids, topk_logprobs, hidden (or None)."""
    capture_dir = Path(capture_dir)
    m = json.loads((capture_dir / MANIFEST).read_text())
    seqs = []
    for s in m["shards"]:
        with np.load(capture_dir / s["path"]) as z:
            off, goff = z["offsets"], z["gen_offsets"]
            hidden = z["hidden"] if "hidden" in z.files else None
            for i in range(len(z["n_prompt"])):
                seqs.append({"tokens": z["tokens"][off[i]:off[i + 1]], "n_prompt": int(z["n_prompt"][i]),
                             "topk_ids": z["topk_ids"][goff[i]:goff[i + 1]].astype(np.int64),
                             "topk_logprobs": z["topk_logprobs"][goff[i]:goff[i + 1]].astype(np.float32),
                             "hidden": None if hidden is None else hidden[goff[i]:goff[i + 1]].astype(np.float32)})
    return seqs


if __name__ == "__main__":
    t0 = time.monotonic()
    _worker(Path(sys.argv[1]))
    print(json.dumps({"finished_s": round(time.monotonic() - t0, 2)}), flush=True)
