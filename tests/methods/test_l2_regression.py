"""L2 feature regression to the old model (methods/l2_regression.py)."""

import copy
import re

import numpy as np
import pytest
import torch
from torch import nn

from fctlib.data.batches import ImageBatches
from fctlib.experiment.config import PresetError, load_preset
from fctlib.methods import registry
from fctlib.methods.l2_regression import L2Name, chosen_weight, l2_regression_loss
from fctlib.models.backbones import build_model
from fctlib.training.config import TrainConfig
from fctlib.training.loop import classification_loss, train
from tests.methods.real_images import CPU, SPEC, old_model_bench


class _Fixed(nn.Module):
    """Returns the given (embedding, logits) whatever the input."""

    def __init__(self, embedding, logits):
        super().__init__()
        self.embedding, self.logits = embedding, logits

    def forward(self, images):
        return self.embedding, self.logits


def test_loss_is_smoothed_cross_entropy_plus_weighted_mean_squared_distance():
    torch.manual_seed(0)
    embedding, old_embedding = torch.randn(4, 3), torch.randn(4, 3)
    logits, labels = torch.randn(4, 5), torch.tensor([0, 2, 4, 1])
    new, old = _Fixed(embedding, logits), _Fixed(old_embedding, None)
    loss = l2_regression_loss(0.1, old, 2.5)(new, (torch.zeros(4, 1), labels))
    # by hand: CE with 10% of the target mass spread evenly over the 5 classes, then the LFL term
    log_p = logits - logits.exp().sum(1, keepdim=True).log()
    target = torch.full((4, 5), 0.1 / 5)
    target[torch.arange(4), labels] += 0.9
    ce = -(target * log_p).sum(1).mean()
    pull = ((embedding - old_embedding) ** 2).sum() / (4 * 3)
    assert loss.item() == pytest.approx((ce + 2.5 * pull).item(), rel=1e-6)


def test_the_pull_vanishes_on_the_old_models_own_features():
    torch.manual_seed(0)
    old = build_model(SPEC, 1, 10).eval()
    new = copy.deepcopy(old).eval()
    images, labels = torch.randn(8, 1, 28, 28), torch.randint(0, 10, (8,))
    with_pull = l2_regression_loss(0.1, old, 100.0)(new, (images, labels))
    alone = classification_loss(0.1)(new, (images, labels))
    assert with_pull.item() == pytest.approx(alone.item(), abs=1e-6)


def test_training_with_the_pull_brings_the_new_embedding_to_the_old_one(fashion_mnist):
    """Real images: the old model on 5 classes, then new models on all 10 with and without the
    pull; the pull leaves the new embedding several times closer to the old one on test images,
    and the training loss goes down."""
    cfg = TrainConfig(epochs=3, batch_size=32, lr=0.05, warmup_epochs=0, weight_decay=1e-4)
    bench = old_model_bench(fashion_mnist, cfg)
    images, transform, old, x = bench.images, bench.transform, bench.old, bench.x
    distances, histories = {}, {}
    for weight in (1e-9, 10.0):
        torch.manual_seed(1)
        new = build_model(SPEC, 1, 10)
        histories[weight] = train(new, ImageBatches(images, transform),
                                  l2_regression_loss(0.1, old.eval(), weight), cfg, seed=1,
                                  device=CPU)
        with torch.no_grad():
            distances[weight] = float(((new(x)[0] - old(x)[0]) ** 2).mean())
    assert distances[10.0] < distances[1e-9] / 3, distances
    losses = [h["loss"] for h in histories[10.0]]
    assert losses[-1] < losses[0], losses


def test_registered_after_bct_with_its_criterion_and_its_preset_section(tmp_path):
    names = [m.name for m in registry.methods()]
    assert names.index("bct") < names.index("l2-regression") < names.index("fct")
    assert {"method": "l2-regression", "case": "l2/old", "reference": "old/old"} in \
        registry.criteria()
    assert "l2-regression" not in registry.unpriced_methods()
    assert load_preset("smoke").method("l2-regression").weights == [1.0, 10.0]
    assert load_preset("fashion-mnist").method("l2-regression").weights == [0.1, 1.0, 10.0]
    path = tmp_path / "p.yaml"
    path.write_text("name: x\nmethods: {l2-regression: {weights: [1, 1]}}\n")
    with pytest.raises(PresetError, match=re.escape("weights must be distinct and > 0")):
        load_preset(path).check_methods()


@pytest.mark.parametrize("name", ["l2:abc", "l2:0", "l2:-1"])
def test_a_bad_weight_is_refused_by_name(smoke_run, name):
    with pytest.raises(registry.ArtifactNameError, match=re.escape(f"artifact {name!r}")):
        smoke_run.artifact(name)


def test_smoke_run_chooses_the_weight_on_tune_and_measures_both_cases(smoke_run):
    weight = chosen_weight(smoke_run)
    assert weight in smoke_run.preset.method("l2-regression").weights
    old = smoke_run.embeddings("old", "tune")

    def tune_score(w):
        m = smoke_run.evaluate(smoke_run.embeddings(L2Name(w), "tune"), old, "tune")["all"]
        return (m["top1"] + m["mAP"]) / 2

    assert tune_score(weight) == max(tune_score(w) for w in (1.0, 10.0))
    result = registry.METHODS["l2-regression"].cases(smoke_run)
    assert set(result.cases) == {"l2/old", "l2/l2"} and result.own_encoder == L2Name(weight)
    query, gallery = result.cases["l2/old"]
    assert query.shape == gallery.shape and np.isfinite(query).all()
