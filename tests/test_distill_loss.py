"""The distillation loss, checked against values worked out by hand."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.train

from edgetui.distill.losses import LossWeights, distill_loss, topk_kl  # noqa: E402


def test_identical_distributions_give_zero_kl():
    logits = torch.randn(5, 50)
    logp = torch.log_softmax(logits, -1)
    ids = logp.topk(8, -1).indices
    kl = topk_kl(logits, ids, logp.gather(-1, ids), temperature=2.0)
    assert torch.allclose(kl, torch.zeros(5), atol=1e-6)


def test_tiny_example_matches_the_hand_computed_kl():
    # teacher puts 0.75 / 0.25 on tokens 1 and 3; the student is uniform over them (equal logits).
    student = torch.tensor([[0.0, 2.0, -1.0, 2.0]])
    ids = torch.tensor([[1, 3]])
    t_logp = torch.log(torch.tensor([[0.75, 0.25]]))
    expected_t1 = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)  # 0.130812
    assert topk_kl(student, ids, t_logp, 1.0).item() == pytest.approx(expected_t1, abs=1e-6)
    a, b = math.sqrt(0.75), math.sqrt(0.25)  # temperature 2 softens the teacher: p ∝ p^(1/2)
    pa, pb = a / (a + b), b / (a + b)
    expected_t2 = pa * math.log(pa / 0.5) + pb * math.log(pb / 0.5)
    assert topk_kl(student, ids, t_logp, 2.0).item() == pytest.approx(expected_t2, abs=1e-6)


def test_total_is_ce_plus_alpha_t_squared_kl():
    torch.manual_seed(0)
    logits, targets = torch.randn(2, 3, 20), torch.randint(0, 20, (2, 3))
    ids = torch.randint(0, 20, (2, 3, 4))
    t_logp = torch.log_softmax(torch.randn(2, 3, 4), -1)
    mask = torch.ones(2, 3)
    for temp in (1.0, 2.0, 4.0):
        w = LossWeights(alpha=0.8, temperature=temp, beta=0.0)
        total, parts = distill_loss(logits, targets, mask, ids, t_logp, w)
        assert total.item() == pytest.approx(parts["ce"] + 0.8 * temp**2 * parts["kl"], rel=1e-5)
        ce = torch.nn.functional.cross_entropy(logits.reshape(-1, 20), targets.reshape(-1))
        assert parts["ce"] == pytest.approx(ce.item(), rel=1e-5)


def test_masked_positions_are_ignored():
    torch.manual_seed(1)
    logits, targets = torch.randn(1, 4, 20), torch.randint(0, 20, (1, 4))
    ids = torch.randint(0, 20, (1, 4, 4))
    t_logp = torch.log_softmax(torch.randn(1, 4, 4), -1)
    mask = torch.tensor([[0.0, 1.0, 1.0, 0.0]])
    base, _ = distill_loss(logits, targets, mask, ids, t_logp)
    garbage = logits.clone()
    garbage[0, 0] = 1e4 * torch.randn(20)
    garbage[0, 3] = -1e4
    other_t = targets.clone()
    other_t[0, 0] = (targets[0, 0] + 1) % 20
    changed, _ = distill_loss(garbage, other_t, mask, ids, t_logp)
    assert changed.item() == pytest.approx(base.item(), rel=1e-6)


def test_all_masked_batch_gives_zero_with_a_gradient():
    logits = torch.randn(2, 3, 20, requires_grad=True)
    total, parts = distill_loss(logits, torch.zeros(2, 3), torch.zeros(2, 3),
                                torch.zeros(2, 3, 4, dtype=torch.long), torch.zeros(2, 3, 4))
    assert total.item() == 0.0 and parts["positions"] == 0
    total.backward()
    assert torch.count_nonzero(logits.grad) == 0


def test_hidden_mse_term_uses_the_projection_and_beta():
    torch.manual_seed(2)
    logits, targets = torch.randn(1, 2, 10), torch.randint(0, 10, (1, 2))
    ids, t_logp = torch.randint(0, 10, (1, 2, 3)), torch.log_softmax(torch.randn(1, 2, 3), -1)
    sh, th = torch.randn(1, 2, 4), torch.randn(1, 2, 6)
    proj = torch.nn.Linear(4, 6)
    w = LossWeights(alpha=0.0, temperature=1.0, beta=0.5)
    total, parts = distill_loss(logits, targets, torch.ones(1, 2), ids, t_logp, w, sh, th, proj)
    mse = torch.nn.functional.mse_loss(proj(sh), th).item()
    assert parts["mse"] == pytest.approx(mse, rel=1e-5)
    assert total.item() == pytest.approx(parts["ce"] + 0.5 * mse, rel=1e-5)
