"""The distillation loss: hard CE + α·T²·KL(teacher_T ‖ student_T) on the teacher's top-k support
+ β·MSE(proj(student_hidden), teacher_hidden).

The KL is taken over the teacher's top-k tokens with both distributions renormalised on that
support, so it is a proper KL (≥ 0, zero exactly when the two agree there); mass the student puts
outside the support is penalised by the hard CE term. Every term is a mean over unmasked positions
(padding and prompt tokens are masked); a batch with no unmasked position gives 0 with a gradient.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class LossWeights:
    alpha: float = 0.8
    temperature: float = 2.0
    beta: float = 0.2  # used only when teacher hidden states exist


def topk_kl(student_logits: torch.Tensor, topk_ids: torch.Tensor, topk_logprobs: torch.Tensor,
            temperature: float) -> torch.Tensor:
    """Per-position KL(teacher_T ‖ student_T) on the support: [N, V], [N, k], [N, k] -> [N]."""
    t_logp = F.log_softmax(topk_logprobs.float() / temperature, dim=-1)
    s_logp = F.log_softmax(student_logits.float().gather(-1, topk_ids.long()) / temperature, dim=-1)
    return (t_logp.exp() * (t_logp - s_logp)).sum(-1)


def distill_loss(student_logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor,
                 topk_ids: torch.Tensor, topk_logprobs: torch.Tensor, w: LossWeights = LossWeights(),
                 student_hidden: torch.Tensor | None = None, teacher_hidden: torch.Tensor | None = None,
                 proj: torch.nn.Module | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """Loss over positions [..., ]: logits [..., V], targets/mask [...], top-k [..., k], hidden [..., d].

    Returns the total and its components as floats (for the progress bar).
    """
    m = mask.reshape(-1).bool()
    n = int(m.sum())
    if n == 0:
        zero = student_logits.sum() * 0.0
        return zero, {"loss": 0.0, "ce": 0.0, "kl": 0.0, "mse": 0.0, "positions": 0}
    v = student_logits.shape[-1]
    logits = student_logits.reshape(-1, v)[m]
    ce = F.cross_entropy(logits.float(), targets.reshape(-1)[m].long())
    k = topk_ids.shape[-1]
    kl = topk_kl(logits, topk_ids.reshape(-1, k)[m], topk_logprobs.reshape(-1, k)[m], w.temperature).mean()
    total = ce + w.alpha * w.temperature**2 * kl
    mse = torch.zeros(())
    if w.beta and student_hidden is not None and teacher_hidden is not None:
        sh = student_hidden.reshape(-1, student_hidden.shape[-1])[m]
        th = teacher_hidden.reshape(-1, teacher_hidden.shape[-1])[m].float()
        mse = F.mse_loss((proj(sh) if proj is not None else sh).float(), th)
        total = total + w.beta * mse
    parts = {"loss": float(total.detach()), "ce": float(ce.detach()), "kl": float(kl.detach()),
             "mse": float(mse.detach()), "positions": n}
    return total, parts
