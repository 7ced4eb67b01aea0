"""d-Simplex as iamcl2r @18495ac: the fixed classifier is a preallocated regular simplex whose
every vertex enters the cross-entropy, the new model starts from the old one's weights, and HOC
matches a per-sample loop written from the authors' definition."""

import math

import pytest
import torch
from torch.nn import functional as F

from fctlib.experiment.config import PresetError, load_preset
from fctlib.methods.dsimplex import (
    SimplexClassifier,
    dsimplex_loss,
    dsimplex_training_step,
    finetune_recipe,
    hoc_loss,
    simplex_network,
    simplex_size,
    simplex_vertices,
)
from fctlib.methods.registry import METHODS
from fctlib.suite.run import Run

CPU = torch.device("cpu")


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


def test_classifier_is_frozen_and_has_every_vertex():
    classifier = SimplexClassifier(16, 12)
    assert not list(classifier.parameters())  # a buffer, not a parameter: nothing to train
    assert torch.equal(classifier.weight, simplex_vertices(12, 16))
    assert classifier(torch.randn(3, 16)).shape == (3, 12)


def test_hoc_loss_matches_a_per_sample_loop():
    """iamcl2r `methods/hoc.py`, per image i: anchored on the old feature o_i,
    -mu cos(o_i, n_i) + log sum_j exp(s_ij), where s_ij = mu cos(o_i, n_j) for j of another class
    and 0 for j of the same class (i itself included): the positive is not in the denominator."""
    torch.manual_seed(0)
    new, old = torch.randn(12, 8), torch.randn(12, 8)
    labels = torch.tensor([0, 0, 1, 1, 1, 2, 2, 3, 3, 3, 3, 4])
    n = new / new.norm(dim=1, keepdim=True)
    o = old / old.norm(dim=1, keepdim=True)
    losses = []
    for i in range(12):
        terms = [10 * float(o[i] @ n[j]) if labels[j] != labels[i] else 0.0 for j in range(12)]
        losses.append(-10 * float(o[i] @ n[i]) + math.log(sum(math.exp(t) for t in terms)))
    assert hoc_loss(new, old, labels).item() == pytest.approx(sum(losses) / 12, rel=1e-5)
    # anchored on the old feature: swapping the roles changes the value
    assert hoc_loss(old, new, labels).item() != pytest.approx(sum(losses) / 12, rel=1e-3)


def test_dsimplex_loss_weights_cross_entropy_and_hoc():
    torch.manual_seed(1)
    new, old = torch.randn(6, 9), torch.randn(6, 9)
    labels = torch.tensor([0, 1, 2, 3, 4, 5])
    logits = SimplexClassifier(9, 10)(new)
    expected = 0.1 * torch.nn.functional.cross_entropy(logits, labels) + 0.9 * hoc_loss(
        new, old, labels)
    assert dsimplex_loss(logits, new, old, labels).item() == pytest.approx(expected.item())


def test_simplex_size_is_a_preset_key():
    assert load_preset("smoke").method("dsimplex").vertices is None
    with pytest.raises(PresetError, match="vertices must be >= 2"):
        load_preset("smoke", {"methods": {"dsimplex": {"vertices": 1}}}).check_methods()
    assert METHODS["dsimplex"].protocol == ("cosine",)  # the authors L2-normalise features


def test_new_model_starts_from_the_old_weights_and_every_vertex_is_in_its_loss(tmp_path):
    """At step 0 the new d-Simplex network is the trained old one (state dicts equal), on a
    simplex of the preset's size, and its training loss is the cross-entropy over all of its
    vertices (here 12 for 10 classes) plus HOC."""
    run = Run("smoke", 0, runs_dir=tmp_path, device=CPU,
              overrides={"methods": {"dsimplex": {"vertices": 12}}})
    assert simplex_size(run) == 12
    old = run.trained("dsimplex:old")[0]
    start = simplex_network(run, "new")()
    old_state, new_state = old.state_dict(), start.state_dict()
    assert old_state.keys() == new_state.keys()
    assert all(torch.equal(old_state[k], new_state[k]) for k in old_state)
    assert start.classifier.weight.shape == (12, 16)
    assert torch.equal(start.classifier.weight, simplex_vertices(12, 16))
    assert old.classifier.weight.shape == (12, 16)  # the old model's softmax: every vertex too
    images = torch.randn(6, 1, 28, 28)
    labels = torch.tensor([0, 3, 5, 7, 9, 9])
    start.train()
    feature, logits = start(images)
    assert logits.shape == (6, 12)
    with torch.no_grad():
        old_feature, _ = old.eval()(images)
    expected = 0.1 * F.cross_entropy(logits, labels) + 0.9 * hoc_loss(feature, old_feature, labels)
    got = dsimplex_training_step(old)(start, (images, labels))
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)
    with pytest.raises(ValueError, match="fewer than the data set's 10 classes"):
        simplex_size(Run("smoke", 0, runs_dir=tmp_path,
                         overrides={"methods": {"dsimplex": {"vertices": 8}}}))


@pytest.mark.slow
def test_dsimplex_models_train_on_real_data(tmp_path):
    """Smoke-sized Fashion-MNIST: both generations' losses fall, the classifier stays the
    simplex of every class, for both generations."""
    run = Run("smoke", 0, runs_dir=tmp_path,
              overrides={"old": {"training": {"epochs": 4}}, "new": {"training": {"epochs": 4}}})
    for generation in ("old", "new"):
        model, history = run.trained(f"dsimplex:{generation}")
        assert history[-1]["loss"] < 0.9 * history[0]["loss"], (generation, history)
    old, new = run.trained("dsimplex:old")[0], run.trained("dsimplex:new")[0]
    vertices = simplex_vertices(10, 16)
    assert torch.equal(new.classifier.weight, vertices)
    assert torch.equal(old.classifier.weight, vertices)
    features = run.embeddings("dsimplex:new", "test")
    assert features.shape == (len(run.splits.test), 16)
    assert (features < 0).any()  # no ReLU: features can point at the vertices' negative parts


def test_a_generation_is_fine_tuned_as_iamcl2r_fine_tunes(fashion_mnist, tmp_path):
    run = Run("smoke", 0, runs_dir=tmp_path)
    tuned = finetune_recipe(run, run.preset.new.training)
    assert (tuned.optimizer, tuned.lr, tuned.momentum, tuned.warmup_epochs) == ("sgd", 1e-3, 0.9, 0)
    assert tuned.epochs == run.preset.new.training.epochs  # the new recipe's budget
    other = Run("smoke", 0, runs_dir=tmp_path,
                overrides={"methods": {"dsimplex": {"finetune_lr": 0.01}}})
    for generation, moves in (("old", False), ("new", True)):
        keys = {r.store.key(r.artifact(f"dsimplex:{generation}")) for r in (run, other)}
        assert (len(keys) == 2) == moves, generation
