"""d-Simplex: the fixed classifier is a regular simplex; HOC matches a per-sample loop."""

import math

import pytest
import torch

from fctlib.methods.dsimplex import SimplexClassifier, dsimplex_loss, hoc_loss, simplex_vertices
from fctlib.suite.run import Run


@pytest.mark.parametrize(("classes", "dim"), [(2, 1), (10, 9), (10, 16), (100, 128)])
def test_vertices_form_a_regular_simplex(classes, dim):
    v = simplex_vertices(classes, dim).double()
    gram = v @ v.T
    off_diagonal = gram[~torch.eye(classes, dtype=torch.bool)]
    assert torch.allclose(gram.diagonal(), torch.ones(classes, dtype=torch.float64), atol=1e-6)
    assert torch.allclose(off_diagonal, torch.full_like(off_diagonal, -1 / (classes - 1)),
                          atol=1e-6)
    assert torch.allclose(v.sum(0), torch.zeros(dim, dtype=torch.float64), atol=1e-5)


def test_too_small_an_embedding_is_refused():
    with pytest.raises(ValueError, match=">= 9 dimensions"):
        simplex_vertices(10, 8)


def test_classifier_is_frozen_and_keeps_old_class_rows():
    full = SimplexClassifier(16, 10)
    old = SimplexClassifier(16, 10, classes=[0, 1, 2, 3, 4])
    assert not list(full.parameters())  # a buffer, not a parameter: nothing to train
    assert torch.equal(old.weight, full.weight[:5])


def test_hoc_loss_matches_a_per_sample_loop():
    torch.manual_seed(0)
    new, old = torch.randn(12, 8), torch.randn(12, 8)
    labels = torch.tensor([0, 0, 1, 1, 1, 2, 2, 3, 3, 3, 3, 4])
    n = new / new.norm(dim=1, keepdim=True)
    o = old / old.norm(dim=1, keepdim=True)
    losses = []
    for i in range(12):
        negatives = [j for j in range(12) if labels[j] != labels[i]]
        positive = math.exp(10 * float(n[i] @ o[i]))
        others = sum(math.exp(10 * float(n[i] @ o[j])) for j in negatives)
        losses.append(-math.log(positive / (positive + others)))
    assert hoc_loss(new, old, labels).item() == pytest.approx(sum(losses) / 12, rel=1e-5)


def test_dsimplex_loss_weights_cross_entropy_and_hoc():
    torch.manual_seed(1)
    new, old = torch.randn(6, 9), torch.randn(6, 9)
    labels = torch.tensor([0, 1, 2, 3, 4, 5])
    logits = SimplexClassifier(9, 10)(new)
    expected = 0.1 * torch.nn.functional.cross_entropy(logits, labels) + 0.9 * hoc_loss(
        new, old, labels)
    assert dsimplex_loss(logits, new, old, labels).item() == pytest.approx(expected.item())


@pytest.mark.slow
def test_dsimplex_models_train_on_real_data(tmp_path):
    """Smoke-sized Fashion-MNIST: both generations' losses fall, the classifier stays the
    simplex, and the new model's old-class rows are the old model's."""
    run = Run("smoke", 0, runs_dir=tmp_path,
              overrides={"old": {"training": {"epochs": 4}}, "new": {"training": {"epochs": 4}}})
    for generation in ("old", "new"):
        model, history = run.trained(f"dsimplex:{generation}")
        assert history[-1]["loss"] < 0.9 * history[0]["loss"], (generation, history)
    old, new = run.trained("dsimplex:old")[0], run.trained("dsimplex:new")[0]
    vertices = simplex_vertices(10, 16)
    assert torch.equal(new.classifier.weight, vertices)
    assert torch.equal(old.classifier.weight, vertices[run.splits.old_classes])
    features = run.embeddings("dsimplex:new", "test")
    assert features.shape == (len(run.splits.test), 16)
    assert (features < 0).any()  # no ReLU: features can point at the vertices' negative parts
