"""The student: a llama-architecture decoder in PyTorch (RMSNorm, RoPE, SwiGLU, GQA, tied embeddings).

Reads top to bottom: config, blocks, model. Weight names and layouts follow llama.cpp's GGUF
(`token_embd`, `blk.N.attn_q`, ...) so export is a straight copy. RoPE rotates adjacent pairs
(llama.cpp's "normal" mode) because GGUF stores q/k already permuted for it, so teacher weights load
without un-permuting and exports need no permutation either.

Two forward paths: `hidden(idx)` for training (causal SDPA, logits computed only where a loss needs
them), and `forward_cached(idx, past_k, past_v)` for export (explicit KV cache tensors stacked over
layers, shape [n_layers, batch, n_kv_heads, past, head_dim]).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class StudentConfig:
    vocab_size: int = 49152
    dim: int = 576
    n_layers: int = 15  # the defaults: the shape of SmolLM2-135M (the default teacher) at half its 30 blocks
    n_heads: int = 9
    n_kv_heads: int = 3  # grouped-query attention: n_heads / n_kv_heads query heads share each K/V head
    ffn_dim: int = 1536  # SwiGLU hidden width
    rope_theta: float = 100000.0
    norm_eps: float = 1e-5
    max_seq: int = 2048  # context length

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> StudentConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown student config keys {sorted(unknown)}: allowed {sorted(known)}")
        return cls(**d)


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)).type_as(x) * self.weight


def rope(x: torch.Tensor, pos: torch.Tensor, theta: float) -> torch.Tensor:
    """Rotate adjacent pairs (x[2i], x[2i+1]) by pos * theta^(-2i/d). x: [B, H, S, D], pos: [S]."""
    d = x.shape[-1]
    inv = theta ** (-torch.arange(0, d, 2, dtype=torch.float32, device=x.device) / d)
    ang = pos.float()[:, None] * inv[None, :]  # [S, D/2]
    cos, sin = ang.cos(), ang.sin()
    xp = x.float().reshape(*x.shape[:-1], d // 2, 2)
    x0, x1 = xp[..., 0], xp[..., 1]
    out = torch.stack((x0 * cos - x1 * sin, x0 * sin + x1 * cos), dim=-1)
    return out.reshape(x.shape).type_as(x)


class Attention(nn.Module):
    def __init__(self, c: StudentConfig):
        super().__init__()
        self.c = c
        hd = c.head_dim
        self.attn_q = nn.Linear(c.dim, c.n_heads * hd, bias=False)
        self.attn_k = nn.Linear(c.dim, c.n_kv_heads * hd, bias=False)
        self.attn_v = nn.Linear(c.dim, c.n_kv_heads * hd, bias=False)
        self.attn_output = nn.Linear(c.n_heads * hd, c.dim, bias=False)

    def forward(self, x, pos, past_k=None, past_v=None):
        c, (b, s, _) = self.c, x.shape
        hd = c.head_dim
        q = self.attn_q(x).view(b, s, c.n_heads, hd).transpose(1, 2)
        k = self.attn_k(x).view(b, s, c.n_kv_heads, hd).transpose(1, 2)
        v = self.attn_v(x).view(b, s, c.n_kv_heads, hd).transpose(1, 2)
        q, k = rope(q, pos, c.rope_theta), rope(k, pos, c.rope_theta)
        rep = c.n_heads // c.n_kv_heads
        if past_k is None:  # training: one causal pass
            kk, vv = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
            y = F.scaled_dot_product_attention(q, kk, vv, is_causal=True)
            present = None
        else:  # cached: explicit mask so the export handles any past length
            k_all, v_all = torch.cat([past_k, k], dim=2), torch.cat([past_v, v], dim=2)
            kk, vv = k_all.repeat_interleave(rep, dim=1), v_all.repeat_interleave(rep, dim=1)
            att = (q @ kk.transpose(-2, -1)) / math.sqrt(hd)
            k_pos = torch.arange(k_all.shape[2], device=x.device)
            mask = k_pos[None, :] > pos[:, None]
            att = att.masked_fill(mask, float("-inf")).softmax(-1)
            y = att @ vv
            present = (k_all, v_all)
        return self.attn_output(y.transpose(1, 2).reshape(b, s, c.n_heads * hd)), present


class Block(nn.Module):
    def __init__(self, c: StudentConfig):
        super().__init__()
        self.attn_norm = RMSNorm(c.dim, c.norm_eps)
        self.attn = Attention(c)
        self.ffn_norm = RMSNorm(c.dim, c.norm_eps)
        self.ffn_gate = nn.Linear(c.dim, c.ffn_dim, bias=False)
        self.ffn_up = nn.Linear(c.dim, c.ffn_dim, bias=False)
        self.ffn_down = nn.Linear(c.ffn_dim, c.dim, bias=False)

    def forward(self, x, pos, past_k=None, past_v=None):
        a, present = self.attn(self.attn_norm(x), pos, past_k, past_v)
        x = x + a
        h = self.ffn_norm(x)
        return x + self.ffn_down(F.silu(self.ffn_gate(h)) * self.ffn_up(h)), present


class Student(nn.Module):
    def __init__(self, c: StudentConfig):
        super().__init__()
        self.config = c
        self.token_embd = nn.Embedding(c.vocab_size, c.dim)
        self.blocks = nn.ModuleList(Block(c) for _ in range(c.n_layers))
        self.output_norm = RMSNorm(c.dim, c.norm_eps)

    def init_random(self, seed: int = 0, std: float = 0.02) -> Student:
        g = torch.Generator().manual_seed(seed)
        for name, p in self.named_parameters():
            with torch.no_grad():
                if name.endswith("norm.weight"):
                    p.fill_(1.0)
                else:
                    std_p = std / math.sqrt(2 * self.config.n_layers) if name.endswith(("attn_output.weight",
                                                                                        "ffn_down.weight")) else std
                    p.copy_(torch.randn(p.shape, generator=g) * std_p)
        return self

    def hidden(self, idx: torch.Tensor) -> torch.Tensor:
        """Final normed hidden states [B, S, dim] (what llama.cpp calls the embeddings)."""
        x = self.token_embd(idx)
        pos = torch.arange(idx.shape[1], device=idx.device)
        for blk in self.blocks:
            x, _ = blk(x, pos)
        return self.output_norm(x)

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        """Tied embeddings. A 2-D linear exports as one Gemm on the embedding matrix itself, so
        ONNX stores the tied weight once instead of folding a transposed copy."""
        out = F.linear(h.reshape(-1, h.shape[-1]), self.token_embd.weight)
        return out.reshape(*h.shape[:-1], out.shape[-1])

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.logits(self.hidden(idx))

    def forward_cached(self, idx, past_k, past_v):
        """idx [B, S]; past_k/v [L, B, KV, P, D] -> logits [B, S, V], present_k/v [L, B, KV, P+S, D]."""
        p = past_k.shape[3]
        pos = torch.arange(idx.shape[1], device=idx.device) + p
        x = self.token_embd(idx)
        ks, vs = [], []
        for i, blk in enumerate(self.blocks):
            x, (k, v) = blk(x, pos, past_k[i], past_v[i])
            ks.append(k)
            vs.append(v)
        return self.logits(self.output_norm(x)), torch.stack(ks), torch.stack(vs)

    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())


# GGUF tensor name <-> module parameter name, per block and global.
BLOCK_TENSORS = {
    "attn_norm.weight": "attn_norm.weight", "attn_q.weight": "attn.attn_q.weight",
    "attn_k.weight": "attn.attn_k.weight", "attn_v.weight": "attn.attn_v.weight",
    "attn_output.weight": "attn.attn_output.weight", "ffn_norm.weight": "ffn_norm.weight",
    "ffn_gate.weight": "ffn_gate.weight", "ffn_up.weight": "ffn_up.weight", "ffn_down.weight": "ffn_down.weight",
}


def gguf_names(model: Student) -> dict[str, torch.Tensor]:
    """The model's weights under their GGUF names (a view, not a copy)."""
    out = {"token_embd.weight": model.token_embd.weight, "output_norm.weight": model.output_norm.weight}
    for i, blk in enumerate(model.blocks):
        params = dict(blk.named_parameters())
        for gname, pname in BLOCK_TENSORS.items():
            out[f"blk.{i}.{gname}"] = params[pname]
    return out
