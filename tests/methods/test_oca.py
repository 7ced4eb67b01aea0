"""OCA as z3n0e/OCA @af89d7d: the layer stays orthogonal (with a bias), the slice is the
re-normalised old-size head of the normalised embedding, the prototypes are means of normalised
old features, and the loss is its three published terms."""

import math

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from fctlib.methods.oca import (
    OCAHead,
    class_prototypes,
    compatible_slice,
    oca_loss,
    oca_training_step,
    prototype_diagnostics,
    prototype_pull,
)
from fctlib.methods.registry import METHODS
from fctlib.suite.run import Run


def test_orthogonal_layer_with_bias_stays_orthogonal_after_training_steps():
    torch.manual_seed(0)
    head = OCAHead(old_dim=8, num_classes=5, extra_dims=4)
    assert head.orthogonal.bias is not None and head.orthogonal.bias.shape == (12,)
    opt = torch.optim.SGD(head.parameters(), lr=0.5)
    x, y = torch.randn(32, 12), torch.randint(0, 5, (32,))
    for _ in range(5):
        _, logits = head(x)
        loss = F.cross_entropy(logits, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    w = head.orthogonal.weight
    assert torch.allclose(w @ w.T, torch.eye(12), atol=1e-5)
    f, logits = head(x)
    assert torch.allclose(f, F.normalize(x, dim=1))  # the embedding: the normalised feature
    expected = head.classifier(f @ w.T + head.orthogonal.bias)  # classifier after the layer
    assert torch.allclose(logits, expected, atol=1e-6)
    sliced = head.compatible_slice(f)
    assert sliced.shape == (32, 8)
    assert torch.allclose(sliced.norm(dim=1), torch.ones(32), atol=1e-6)  # re-normalised


def test_prototype_pull_is_zero_when_aligned_and_two_when_opposite():
    protos = torch.eye(3)
    labels = torch.tensor([0, 1, 2])
    assert prototype_pull(3 * protos, labels, protos).item() == pytest.approx(0.0)
    assert prototype_pull(-protos, labels, protos).item() == pytest.approx(2.0)


def test_class_prototypes_are_means_of_normalised_features():
    torch.manual_seed(0)
    x, y = 5 * torch.rand(40, 6), torch.randint(0, 4, (40,))
    y[:4] = torch.arange(4)
    protos = class_prototypes(x, y, 4)
    for c in range(4):
        rows = [x[i] / math.sqrt(float((x[i] ** 2).sum())) for i in range(40) if y[i] == c]
        assert torch.allclose(protos[c], sum(rows) / len(rows), atol=1e-6)
    assert (protos.norm(dim=1) <= 1 + 1e-6).all()  # means of unit vectors, not re-normalised
    with pytest.raises(ValueError, match=r"classes \[4\] have no samples"):
        class_prototypes(x, y, 5)


def _smoothed_ce(logits, label, eps=0.1):
    log_z = math.log(sum(math.exp(v) for v in logits))
    nll = [log_z - v for v in logits]
    return (1 - eps) * nll[label] + eps * sum(nll) / len(nll)


def test_oca_loss_by_hand():
    """OCA_trainer.py: 5 LS-CE(logits) + 10 LS-CE(normalize(f[:, :old]) @ P^T)
    + 5 mean(1 - cos(P[y], normalize(f[:, :old]))), P = means of normalised old features."""
    torch.manual_seed(2)
    f, logits = F.normalize(torch.randn(6, 6), dim=1), torch.randn(6, 3)
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    old_features = torch.rand(9, 4) * 3
    old_labels = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2])
    protos = class_prototypes(old_features, old_labels, 3)
    ce = influence = pull = 0.0
    for i in range(6):
        head = f[i, :4].tolist()
        norm = math.sqrt(sum(v * v for v in head))
        head = [v / norm for v in head]  # the re-normalised slice
        p = protos.tolist()
        ce += _smoothed_ce(logits[i].tolist(), int(labels[i]))
        influence += _smoothed_ce([sum(a * b for a, b in zip(head, row, strict=True))
                                   for row in p], int(labels[i]))
        proto = p[int(labels[i])]
        cos = sum(a * b for a, b in zip(head, proto, strict=True)) / math.sqrt(
            sum(v * v for v in proto))
        pull += 1 - cos
    expected = (5 * ce + 10 * influence + 5 * pull) / 6
    assert oca_loss(f, logits, labels, 4, protos).item() == pytest.approx(expected, rel=1e-5)
    # the slice is re-normalised: a shorter embedding gives the same influence and pull
    assert oca_loss(0.5 * f, logits, labels, 4, protos).item() == pytest.approx(expected, rel=1e-5)
    step = oca_training_step(protos, 4)
    model = lambda images: (f, logits)  # noqa: E731
    assert step(model, (None, labels)).item() == pytest.approx(expected, rel=1e-5)


def _diagnostics_by_loops(old_train, train_labels, old_test, test_labels, aligned, old_class):
    """prototype_diagnostics from its definitions, one image at a time, in float64."""
    classes = int(train_labels.max()) + 1

    def unit(v):
        return v / np.linalg.norm(v)

    protos = np.array([np.mean([unit(x) for x, y in zip(old_train, train_labels, strict=True)
                                if y == c], axis=0) for c in range(classes)])

    def own(features, labels):
        return np.array([np.argmax(protos @ unit(x)) == y
                         for x, y in zip(features, labels, strict=True)])

    slices = [unit(a[:old_test.shape[1]]) for a in aligned]
    own_slice = own(slices, test_labels)
    hits = []
    for y in test_labels:
        scores = [unit(protos[y]) @ unit(g) for g in old_test]
        hits.append(test_labels[int(np.argmax(scores))] == y)
    return {"old_prototype_train": own(old_train, train_labels).mean(),
            "old_prototype_test": own(old_test, test_labels).mean(),
            "slice_prototype_test": own_slice.mean(),
            "slice_prototype_test_old_classes": own_slice[old_class].mean(),
            "slice_prototype_test_new_classes": own_slice[~old_class].mean(),
            "oracle_prototype_top1": np.mean(hits)}


def test_prototype_diagnostics_match_a_computation_one_image_at_a_time():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 3))
    train_labels, test_labels = rng.integers(0, 4, 60), rng.integers(0, 4, 40)
    train_labels[:4] = np.arange(4)  # every class has a prototype
    old_train = (centres[train_labels] + rng.normal(scale=0.9, size=(60, 3))).astype(np.float32)
    old_test = (centres[test_labels] + rng.normal(scale=0.9, size=(40, 3))).astype(np.float32)
    aligned = rng.normal(size=(40, 5)).astype(np.float32)
    aligned[:, :3] += 2 * centres[test_labels]
    old_class = test_labels < 2
    got = prototype_diagnostics(old_train, train_labels, old_test, test_labels, aligned,
                                old_class)
    want = _diagnostics_by_loops(old_train, train_labels, old_test, test_labels, aligned,
                                 old_class)
    assert got == pytest.approx(want, abs=1e-12)
    assert 0.3 < got["old_prototype_test"] < 1.0  # noisy classes: neither trivial nor hopeless


def test_prototype_diagnostics_of_separated_classes_are_perfect():
    labels = np.array([0, 1, 2, 0, 1, 2])
    features = np.eye(3, dtype=np.float32)[labels] * np.float32(2.0)
    aligned = np.concatenate([features, np.ones((6, 2), np.float32)], axis=1)
    got = prototype_diagnostics(features, labels, features, labels, aligned, labels == 0)
    assert got == {"old_prototype_train": 1.0, "old_prototype_test": 1.0,
                   "slice_prototype_test": 1.0, "slice_prototype_test_old_classes": 1.0,
                   "slice_prototype_test_new_classes": 1.0, "oracle_prototype_top1": 1.0}


def test_cosine_is_its_protocol():
    assert METHODS["oca"].protocol == ("cosine",)
    assert not METHODS["oca"].in_protocol("l2") and METHODS["oca"].in_protocol("cosine")
    f = torch.tensor([[3.0, 4.0, 12.0]])
    assert torch.allclose(compatible_slice(f, 2), torch.tensor([[0.6, 0.8]]))


@pytest.mark.slow
def test_oca_model_trains_on_real_data(tmp_path):
    """Smoke-sized Fashion-MNIST: OCA's loss falls, its layer stays orthogonal, and its aligned
    embedding is the old size plus the extra dimensions, with unit norm and (no ReLU) negative
    coordinates."""
    run = Run("smoke", 0, runs_dir=tmp_path, overrides={
        "old": {"training": {"epochs": 3}},
        "methods": {"oca": {"extra_dims": 8, "training": {"epochs": 4}}}})
    model, history = run.trained("oca")
    assert [u.name for u in run.artifact("oca").upstream] == ["oca-old"]  # its own old model
    old_model, old_history = run.trained("oca-old")
    assert len(old_history) == 3 and old_history[-1]["loss"] < old_history[0]["loss"]
    old = run.embeddings("oca-old", "test")  # normalised, without the final ReLU
    assert np.allclose((old ** 2).sum(1), 1.0, atol=1e-4) and (old < 0).any()
    assert old_model.classifier.weight.shape == (len(run.splits.old_classes), 16)
    # the influence term's logits lie in [-1, 1] (unit slice, prototypes of norm <= 1), so it
    # stays near 10 log(10 classes) = 23: the loss falls by points, not by a factor
    assert history[-1]["loss"] < history[0]["loss"] - 1.0, history
    w = model.head.orthogonal.weight
    assert torch.allclose(w @ w.T, torch.eye(24), atol=1e-4)
    aligned = run.embeddings("oca", "test")
    assert aligned.shape == (len(run.splits.test), 16 + 8)
    assert abs(float((aligned ** 2).sum(1).mean()) - 1.0) < 1e-3
    assert (aligned < 0).any()
