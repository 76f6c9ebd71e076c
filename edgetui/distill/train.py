"""The training loop: distill a captured teacher into the student.

Reads like the procedure: seed → data → model (+ resume) → for each step: batches, loss, backward,
clip, AdamW, warmup+cosine → progress line → periodic validation and checkpoint. Runs unchanged
under `torchrun` (DDP): the process group is initialised only when torchrun launched us, each rank
takes its share of every batch, rank 0 writes checkpoints and logs.
"""

from __future__ import annotations

import math
import random
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from edgetui.distill.config import TrainSection as TrainConfig
from edgetui.distill.losses import LossWeights, distill_loss
from edgetui.distill.model import Student, StudentConfig

CHECKPOINT = "last.pt"


class TrainError(Exception):
    """A training run that cannot start or resume; the message names the problem and the fix."""


def lr_at(step: int, total: int, c: TrainConfig) -> float:
    if step < c.warmup_steps:
        return c.lr * (step + 1) / c.warmup_steps
    frac = (step - c.warmup_steps) / max(1, total - c.warmup_steps)
    return c.lr * (c.min_lr_ratio + (1 - c.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, frac))))


def _dist():
    """(rank, world, device) — initialising DDP only under torchrun."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_torchelastic_launched() and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    if dist.is_available() and dist.is_initialized():
        rank, world = dist.get_rank(), dist.get_world_size()
        if torch.cuda.is_available():
            local = dist.get_node_local_rank(fallback_rank=rank)
            torch.cuda.set_device(local)
            return rank, world, torch.device("cuda", local)
        return rank, world, torch.device("cpu")
    return 0, 1, torch.device("cuda" if torch.cuda.is_available() else "cpu")


def collate(seqs: list[dict], pad_id: int, max_seq: int, hidden: bool):
    """Pad a batch; mask covers the positions that predict generated tokens (not prompt, not padding)."""
    seqs = [s for s in seqs if s["n_prompt"] < max_seq]
    length = min(max_seq, max(len(s["tokens"]) for s in seqs))
    b, k = len(seqs), seqs[0]["topk_ids"].shape[1]
    idx = torch.full((b, length), pad_id, dtype=torch.long)
    tgt = torch.zeros((b, length), dtype=torch.long)
    mask = torch.zeros((b, length), dtype=torch.bool)
    tids = torch.zeros((b, length, k), dtype=torch.long)
    tlp = torch.zeros((b, length, k))
    th = torch.zeros((b, length, seqs[0]["hidden"].shape[1])) if hidden else None
    for i, s in enumerate(seqs):
        toks = torch.from_numpy(np.asarray(s["tokens"][:length], dtype=np.int64))
        idx[i, :len(toks)] = toks
        n_gen = min(len(s["topk_ids"]), length - s["n_prompt"] + 1)
        p0 = s["n_prompt"] - 1
        if n_gen <= 0:
            continue
        pos = slice(p0, p0 + n_gen)
        full = torch.from_numpy(np.asarray(s["tokens"], dtype=np.int64))
        tgt[i, pos] = full[p0 + 1:p0 + 1 + n_gen]
        mask[i, pos] = True
        tids[i, pos] = torch.from_numpy(s["topk_ids"][:n_gen])
        tlp[i, pos] = torch.from_numpy(s["topk_logprobs"][:n_gen])
        if hidden:
            th[i, pos] = torch.from_numpy(s["hidden"][:n_gen])
    return idx, tgt, mask, tids, tlp, th


def batch_loss(model: Student, hidden_fn, proj, batch, w: LossWeights, device, dtype: str):
    """`hidden_fn` is the student's hidden-state forward, DDP-wrapped when distributed."""
    idx, tgt, mask, tids, tlp, th = (t.to(device) if t is not None else None for t in batch)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=dtype == "bf16"):
        h = hidden_fn(idx)
        sel = h[mask]  # logits only where a loss needs them: the vocab matmul is the costliest layer
        logits = model.logits(sel)
    ones = torch.ones(sel.shape[0], dtype=torch.bool, device=device)
    return distill_loss(logits, tgt[mask], ones, tids[mask], tlp[mask], w, sel if th is not None else None,
                        th[mask] if th is not None else None, proj)


class _HiddenOnly(torch.nn.Module):
    """What DDP wraps: the student's hidden-state forward (logits are taken on selected positions)."""

    def __init__(self, m: Student):
        super().__init__()
        self.student = m

    def forward(self, idx):
        return self.student.hidden(idx)


def train(model: Student, seqs: list[dict], out_dir: Path, c: TrainConfig, w: LossWeights,
          pad_id: int, resume: bool = False, log: Callable[[str], None] | None = None) -> dict:
    """Train in place; checkpoints in out_dir; returns a summary (losses, tokens/s, steps)."""
    if c.threads:
        torch.set_num_threads(c.threads)
    random.seed(c.seed)
    np.random.seed(c.seed)
    torch.manual_seed(c.seed)
    rank, world, device = _dist()
    log = log or (lambda s: print(s, file=sys.stderr, flush=True))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    hidden = w.beta > 0 and all(s.get("hidden") is not None for s in seqs)
    order = list(range(len(seqs)))
    random.Random(c.seed).shuffle(order)
    n_val = max(1, int(len(seqs) * c.val_fraction)) if len(seqs) > 4 else 0
    val = [seqs[i] for i in order[:n_val]]
    tr = [seqs[i] for i in order[n_val:]]
    per_step = c.batch_size * c.grad_accum * world
    total = c.max_steps or max(1, math.ceil(len(tr) * c.epochs / per_step))
    model.to(device).train()
    proj = None
    if hidden:
        t_dim = tr[0]["hidden"].shape[1]
        proj = torch.nn.Linear(model.config.dim, t_dim, bias=False).to(device)
        with torch.no_grad():
            proj.weight.copy_(torch.eye(t_dim, model.config.dim))
    params = list(model.parameters()) + (list(proj.parameters()) if proj else [])
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": c.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=c.lr, betas=(0.9, 0.95))
    step, history = 0, []
    ckpt = out_dir / CHECKPOINT
    if resume:
        step, history = _load_checkpoint(ckpt, model, proj, opt, c)
        log(f"resumed from {ckpt} at step {step}/{total}")
    hidden_fn = _HiddenOnly(model)
    if world > 1:
        hidden_fn = torch.nn.parallel.DistributedDataParallel(hidden_fn)
    rng = random.Random(c.seed * 1000 + step)
    t_start, tokens_seen, step0 = time.monotonic(), 0, step
    summary = {"steps": total, "train_sequences": len(tr), "val_sequences": len(val)}
    if val and step == 0:
        summary["val_loss_start"] = evaluate(model, proj, val, w, device, c, pad_id, hidden)
        log(f"val loss before training: {summary['val_loss_start']:.4f}")
    while step < total:
        lr = lr_at(step, total, c)
        for g in opt.param_groups:
            g["lr"] = lr
        parts_acc: dict[str, float] = {}
        for _ in range(c.grad_accum):
            picks = [tr[rng.randrange(len(tr))] for _ in range(c.batch_size * world)][rank::world]
            batch = collate(picks, pad_id, c.max_seq, hidden)
            tokens_seen += int(batch[0].numel()) * world
            loss, parts = batch_loss(model, hidden_fn, proj, batch, w, device, c.dtype)
            (loss / c.grad_accum).backward()
            for key, v in parts.items():
                parts_acc[key] = parts_acc.get(key, 0.0) + v / c.grad_accum
        torch.nn.utils.clip_grad_norm_(params, c.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        step += 1
        elapsed = time.monotonic() - t_start
        tps = tokens_seen / max(elapsed, 1e-6)
        eta = elapsed / (step - step0) * (total - step)
        history.append({"step": step, **{k: round(v, 4) for k, v in parts_acc.items()}, "lr": lr})
        if rank == 0:
            _progress(step, total, parts_acc, tps, eta)
        if val and (step % c.val_every == 0 or step == total):
            vl = evaluate(model, proj, val, w, device, c, pad_id, hidden)
            history[-1]["val_loss"] = vl
            if rank == 0:
                log(f"\nstep {step}: val loss {vl:.4f}")
        if rank == 0 and (step % c.checkpoint_every == 0 or step == total):
            _save_checkpoint(ckpt, model, proj, opt, c, step, history)
    elapsed = time.monotonic() - t_start
    if rank == 0:
        sys.stderr.write("\n")
    val_losses = [h["val_loss"] for h in history if "val_loss" in h]
    summary.update(tokens=tokens_seen, seconds=round(elapsed, 1), final=history[-1] if history else {},
                   tokens_per_s=round(tokens_seen / max(elapsed, 1e-6), 1),
                   val_loss=val_losses[-1] if val_losses else None, val_loss_start=summary.get("val_loss_start"))
    return summary


@torch.no_grad()
def evaluate(model, proj, val, w, device, c: TrainConfig, pad_id: int, hidden: bool) -> float:
    model.eval()
    total, n = 0.0, 0
    for i in range(0, len(val), c.batch_size):
        batch = collate(val[i:i + c.batch_size], pad_id, c.max_seq, hidden)
        loss, parts = batch_loss(model, model.hidden, proj, batch, w, device, c.dtype)
        total += parts["loss"] * parts["positions"]
        n += parts["positions"]
    model.train()
    return round(total / max(1, n), 4)


def _progress(step, total, parts, tps, eta):
    width = 24
    filled = int(width * step / total)
    bar = "█" * filled + "·" * (width - filled)
    line = (f"\r[{bar}] {step}/{total} loss {parts.get('loss', 0):.3f} ce {parts.get('ce', 0):.3f} "
            f"kl {parts.get('kl', 0):.3f} mse {parts.get('mse', 0):.3f} | {tps:.0f} tok/s | ETA {eta / 60:.1f} min ")
    sys.stderr.write(line)
    sys.stderr.flush()


def _save_checkpoint(path: Path, model, proj, opt, c: TrainConfig, step: int, history: list) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save({"model": model.state_dict(), "proj": proj.state_dict() if proj else None,
                "optim": opt.state_dict(), "student_config": model.config.to_dict(), "train_config": asdict(c),
                "step": step, "history": history}, tmp)
    tmp.replace(path)


def _load_checkpoint(path: Path, model, proj, opt, c: TrainConfig):
    if not path.is_file():
        raise TrainError(f"--resume: no checkpoint at {path}: start without --resume")
    ck = torch.load(path, map_location="cpu", weights_only=False)
    if ck["student_config"] != model.config.to_dict():
        raise TrainError(f"checkpoint {path} is for another architecture ({ck['student_config']}): "
                         "use the config it was trained with or a new output directory")
    model.load_state_dict(ck["model"])
    if proj is not None and ck.get("proj"):
        proj.load_state_dict(ck["proj"])
    opt.load_state_dict(ck["optim"])
    return int(ck["step"]), list(ck["history"])


def load_student_checkpoint(path: Path) -> Student:
    """A student from a checkpoint (for export)."""
    ck = torch.load(Path(path), map_location="cpu", weights_only=False)
    m = Student(StudentConfig.from_dict(ck["student_config"]))
    m.load_state_dict(ck["model"])
    return m.eval()

