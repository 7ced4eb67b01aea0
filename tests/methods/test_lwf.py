"""LwF through the old classifier, openBCT's `--lwf` (methods/lwf.py)."""

import copy

import numpy as np
import pytest
import torch
from torch import nn

from fctlib.data.batches import ImageBatches
from fctlib.methods import registry
from fctlib.methods.lwf import distillation, lwf_loss
from fctlib.models.backbones import build_model
from fctlib.training.config import TrainConfig
from fctlib.training.loop import classification_loss, train
from tests.methods.real_images import CPU, SPEC, old_model_bench


def test_distillation_is_the_soft_cross_entropy_of_openbct_by_hand():
    torch.manual_seed(0)
    new_logits, old_logits = torch.randn(4, 3), torch.randn(4, 3)
    expected = 0.0
    for row in range(4):  # -sum_c q_c log p_c, then the batch mean
        q = [float(v) for v in torch.softmax(old_logits[row], 0)]
        z = [float(v) for v in new_logits[row]]
        log_norm = np.log(sum(np.exp(v) for v in z))
        expected -= sum(q[c] * (z[c] - log_norm) for c in range(3)) / 4
    assert distillation(new_logits, old_logits).item() == pytest.approx(expected, rel=1e-6)


def test_the_loss_goes_through_the_old_classifier_and_is_minimal_on_the_old_features():
    """On the old model's own embedding the term is the entropy of the old softmax (its floor);
    the gradient reaches the new embedding but never the frozen old model."""
    torch.manual_seed(0)
    old = build_model(SPEC, 1, 5).eval()
    new = build_model(SPEC, 1, 10)
    new.backbone = copy.deepcopy(old.backbone)
    images, labels = torch.randn(8, 1, 28, 28), torch.randint(0, 10, (8,))
    total = lwf_loss(0.0, old)(new.eval(), (images, labels))
    with torch.no_grad():
        q = torch.softmax(old(images)[1], dim=1)
    entropy = -(q * q.log()).sum(1).mean()
    alone = classification_loss(0.0)(new, (images, labels))
    assert (total - alone).item() == pytest.approx(entropy.item(), rel=1e-5)
    total.backward()
    assert all(p.grad is not None for p in new.backbone.parameters())
    assert all(p.grad is None for p in old.parameters())


def test_training_with_the_term_keeps_the_old_classifiers_view_on_real_images(fashion_mnist):
    """Real images: on test images the KL divergence of the old classifier on the new embedding
    from the old model's softmax ends far lower with the term than without it, and the training
    loss goes down."""
    cfg = TrainConfig(epochs=3, batch_size=32, lr=0.05, warmup_epochs=0, weight_decay=1e-4)
    confident = TrainConfig(epochs=10, batch_size=32, lr=0.05, warmup_epochs=0)  # a peaked softmax
    bench = old_model_bench(fashion_mnist, confident, label_smoothing=0.0)
    images, transform, old, x = bench.images, bench.transform, bench.old, bench.x
    term, histories = {}, {}
    for name, loss in (("plain", classification_loss(0.1)), ("lwf", lwf_loss(0.1, old))):
        torch.manual_seed(1)
        new = build_model(SPEC, 1, 10)
        histories[name] = train(new, ImageBatches(images, transform), loss, cfg, seed=1,
                                device=CPU)
        with torch.no_grad():
            through_old = nn.functional.linear(new.eval()(x)[0], old.classifier.weight)
            q = torch.softmax(old(x)[1], dim=1)
            term[name] = distillation(through_old, old(x)[1]).item() + (q * q.log()).sum(1).mean()
    assert term["lwf"] < 0.5 * term["plain"], term  # the KL to the old softmax
    losses = [h["loss"] for h in histories["lwf"]]
    assert losses[-1] < losses[0], losses


def test_registered_beside_l2_regression_under_cosine(smoke_run):
    names = [m.name for m in registry.methods()]
    assert names.index("l2-regression") < names.index("lwf") < names.index("fct")
    method = registry.METHODS["lwf"]
    assert method.protocol == ("cosine",) and method.criteria == (("lwf/old", "old/old"),)
    result = method.cases(smoke_run)
    assert set(result.cases) == {"lwf/old", "lwf/lwf"} and result.own_encoder == "lwf"
    query, gallery = result.cases["lwf/old"]
    assert query.shape == gallery.shape and np.isfinite(query).all()
