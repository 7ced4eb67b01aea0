import math

import numpy as np
import pytest
import torch

from fctlib.methods.bct import bct_loss, influence_loss, old_classifier_for_all_classes


def test_influence_loss_hand_built():
    # old classifier rows for classes 0 and 1; new embedding [1, 0] of class 0:
    # logits [2, 0] -> CE = log(1 + e^-2); second sample [0, 3] of class 1: logits [0, 3].
    weight = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    covered = torch.tensor([True, True])
    emb = torch.tensor([[1.0, 0.0], [0.0, 3.0]])
    loss = influence_loss(emb, torch.tensor([0, 1]), weight, covered)
    expected = (math.log(1 + math.exp(-2)) + math.log(1 + math.exp(-3))) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_uncovered_classes_neither_count_nor_compete():
    weight = torch.tensor([[2.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    covered = torch.tensor([True, True, False])
    emb = torch.tensor([[1.0, 0.0], [5.0, 5.0]])
    loss = influence_loss(emb, torch.tensor([0, 2]), weight, covered)
    assert loss.item() == pytest.approx(math.log(1 + math.exp(-2)), rel=1e-6)
    none = influence_loss(emb[1:], torch.tensor([2]), weight, covered)
    assert none.item() == 0.0


def test_old_classifier_extended_with_class_means():
    old_weight = torch.tensor([[1.0, 0.0], [0.0, 1.0]])  # old classes 2 and 0, in that order
    embeddings = np.array([[1, 1], [3, 5], [0, 0], [2, 2]], dtype=np.float32)
    labels = np.array([1, 1, 2, 3])
    weight, covered = old_classifier_for_all_classes(
        old_weight, [2, 0], 4, embeddings, labels, new_class_rows="mean"
    )
    assert torch.equal(weight[2], torch.tensor([1.0, 0.0]))
    assert torch.equal(weight[0], torch.tensor([0.0, 1.0]))
    assert torch.equal(weight[1], torch.tensor([2.0, 3.0]))
    assert torch.equal(weight[3], torch.tensor([2.0, 2.0]))
    assert covered.all()
    _, dropped = old_classifier_for_all_classes(
        old_weight, [2, 0], 4, embeddings, labels, new_class_rows="drop"
    )
    assert dropped.tolist() == [True, False, True, False]
    with pytest.raises(ValueError, match="rows"):
        old_classifier_for_all_classes(old_weight, [0], 4, embeddings, labels)


def test_bct_step_adds_weighted_influence():
    torch.manual_seed(0)

    class Toy(torch.nn.Module):
        def forward(self, x):
            return x, x @ torch.tensor([[1.0, -1.0], [0.5, 2.0]])

    x, y = torch.randn(6, 2), torch.tensor([0, 1, 0, 1, 1, 0])
    weight, covered = torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([True, True])
    base = bct_loss(0.0, weight, covered, 0.0)(Toy(), (x, y))
    with_influence = bct_loss(0.0, weight, covered, 3.0)(Toy(), (x, y))
    assert (with_influence - base).item() == pytest.approx(
        3.0 * influence_loss(x, y, weight, covered).item(), rel=1e-5
    )
