"""OCA: the layer stays orthogonal, the slice is the old-size head, the loss is its three terms."""

import pytest
import torch
from torch.nn import functional as F

from fctlib.methods.oca import OCAHead, class_prototypes, oca_loss, prototype_pull
from fctlib.suite.run import Run


def test_orthogonal_layer_keeps_norms_after_training_steps():
    torch.manual_seed(0)
    head = OCAHead(old_dim=8, num_classes=5, extra_dims=4)
    opt = torch.optim.SGD(head.parameters(), lr=0.5)
    x, y = torch.randn(32, 12), torch.randint(0, 5, (32,))
    for _ in range(5):
        z, logits = head(x)
        loss = F.cross_entropy(logits, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    w = head.orthogonal.weight
    assert torch.allclose(w @ w.T, torch.eye(12), atol=1e-5)
    z, _ = head(x)
    assert torch.allclose(z.norm(dim=1), torch.ones(32), atol=1e-5)  # unit in, unit out
    assert head.compatible_slice(z).shape == (32, 8)


def test_prototype_pull_is_zero_when_aligned_and_two_when_opposite():
    protos = torch.eye(3)
    labels = torch.tensor([0, 1, 2])
    assert prototype_pull(3 * protos, labels, protos).item() == pytest.approx(0.0)
    assert prototype_pull(-protos, labels, protos).item() == pytest.approx(2.0)


def test_oca_loss_is_the_weighted_sum_of_its_terms():
    torch.manual_seed(2)
    z, logits = torch.randn(10, 6), torch.randn(10, 4)
    labels = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3, 0, 1])
    protos = torch.randn(4, 4)
    covered = torch.tensor([True, True, True, False])  # class 3 has no prototype
    keep = covered[labels]
    head = z[:, :4]
    ce = F.cross_entropy(logits, labels, label_smoothing=0.1)
    masked = (head[keep] @ protos.T).masked_fill(~covered, float("-inf"))
    influence = F.cross_entropy(masked, labels[keep])
    pull = (1 - F.cosine_similarity(head[keep], protos[labels[keep]], dim=1)).mean()
    expected = 5 * ce + 10 * influence + 5 * pull
    got = oca_loss(z, logits, labels, 4, protos, covered)
    assert got.item() == pytest.approx(expected.item(), rel=1e-6)


def test_class_prototypes_are_per_class_means():
    torch.manual_seed(0)
    x, y = torch.randn(40, 6), torch.randint(0, 4, (40,))
    y[:4] = torch.arange(4)
    protos = class_prototypes(x, y, 4)
    for c in range(4):
        assert torch.allclose(protos[c], x[y == c].mean(0), atol=1e-6)
    with pytest.raises(ValueError, match=r"classes \[4\] have no samples"):
        class_prototypes(x, y, 5)


@pytest.mark.slow
def test_oca_model_trains_on_real_data(tmp_path):
    """Smoke-sized Fashion-MNIST: OCA's loss falls, its layer stays orthogonal, and its aligned
    embedding is the old size plus the extra dimensions, with unit norm."""
    run = Run("smoke", 0, runs_dir=tmp_path, overrides={
        "old": {"training": {"epochs": 3}}, "new": {"training": {"epochs": 4}},
        "oca": {"extra_dims": 8}})
    model, history = run.trained("oca")
    assert history[-1]["loss"] < 0.9 * history[0]["loss"], history
    w = model.head.orthogonal.weight
    assert torch.allclose(w @ w.T, torch.eye(24), atol=1e-4)
    aligned = run.embeddings("oca", "test")
    assert aligned.shape == (len(run.splits.test), 16 + 8)
    assert abs(float((aligned ** 2).sum(1).mean()) - 1.0) < 1e-3
