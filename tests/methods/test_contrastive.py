"""Cross-model contrastive compatibility, OpenCompatible's `contra` (methods/contrastive.py)."""

import re

import numpy as np
import pytest
import torch

from fctlib.data.batches import ImageBatches
from fctlib.experiment.config import PresetError, load_preset
from fctlib.methods import registry
from fctlib.methods.contrastive import ContrastiveConfig, contrastive_loss, cross_model_infonce
from fctlib.models.backbones import build_model
from fctlib.training.config import TrainConfig
from fctlib.training.loop import classification_loss, train
from tests.methods.real_images import CPU, SPEC, old_model_bench


def by_hand(new, old, labels, temperature, topk, new_negatives):
    """InfoNCE per anchor from the definition: positive = the old embedding of the same image,
    negatives = old (and new) embeddings of other-class images, the topk most similar kept."""
    f = [v / np.linalg.norm(v) for v in new.numpy().astype(np.float64)]
    g = [v / np.linalg.norm(v) for v in old.numpy().astype(np.float64)]
    total = 0.0
    for i in range(len(f)):
        others = [j for j in range(len(f)) if labels[j] != labels[i]]
        sets = [[f[i] @ g[j] for j in others]] + ([[f[i] @ f[j] for j in others]]
                                                  if new_negatives else [])
        kept = [x for s in sets for x in sorted(s, reverse=True)[:topk or None]]
        logits = np.array([f[i] @ g[i], *kept]) / temperature
        total += -(logits[0] - np.log(np.exp(logits - logits.max()).sum()) - logits.max())
    return total / len(f)


@pytest.mark.parametrize("new_negatives", [False, True])
@pytest.mark.parametrize("topk", [0, 2])
def test_infonce_matches_its_definition(new_negatives, topk):
    torch.manual_seed(0)
    new, old = torch.randn(6, 5), torch.randn(6, 5)
    labels = torch.tensor([0, 1, 0, 2, 1, 2])
    cfg = ContrastiveConfig(temperature=0.5, topk_neg=topk, new_negatives=new_negatives)
    expected = by_hand(new, old, labels.tolist(), 0.5, topk, new_negatives)
    assert cross_model_infonce(new, old, labels, cfg).item() == pytest.approx(expected, rel=1e-5)


def test_only_the_new_embedding_receives_gradient():
    new, old = torch.randn(4, 3, requires_grad=True), torch.randn(4, 3, requires_grad=True)
    cross_model_infonce(new, old, torch.tensor([0, 1, 2, 3]), ContrastiveConfig()).backward()
    assert new.grad is not None and old.grad is None


def test_training_with_the_term_aligns_new_and_old_on_real_images(fashion_mnist):
    """Real images: with the term each test image's new embedding is nearer (cosine) its own old
    embedding than other images' old embeddings far more often than without it; the loss drops."""
    cfg = TrainConfig(epochs=3, batch_size=32, lr=0.05, warmup_epochs=0, weight_decay=1e-4)
    bench = old_model_bench(fashion_mnist, TrainConfig(epochs=10, batch_size=32, lr=0.05,
                                                       warmup_epochs=0))
    images, transform, old, x, test = (bench.images, bench.transform, bench.old, bench.x,
                                       bench.test)
    with torch.no_grad():
        old_unit = torch.nn.functional.normalize(old(x)[0], dim=1)
    same_class = torch.as_tensor(test.labels)[:, None] == torch.as_tensor(test.labels)[None, :]
    top1, histories = {}, {}
    for name, loss in (("plain", classification_loss(0.1)),
                       ("con", contrastive_loss(0.1, old, ContrastiveConfig(temperature=0.1)))):
        torch.manual_seed(1)
        new = build_model(SPEC, 1, 10)
        histories[name] = train(new, ImageBatches(images, transform), loss, cfg, seed=1,
                                device=CPU)
        with torch.no_grad():
            similarity = torch.nn.functional.normalize(new.eval()(x)[0], dim=1) @ old_unit.T
        top1[name] = float(same_class[torch.arange(len(x)), similarity.argmax(1)].float().mean())
    assert top1["con"] > top1["plain"] + 0.2, top1
    losses = [h["loss"] for h in histories["con"]]
    assert losses[-1] < losses[0], losses


def test_registered_with_its_criterion_and_checked_settings(smoke_run, tmp_path):
    names = [m.name for m in registry.methods()]
    assert names.index("lwf") < names.index("contrastive") < names.index("fct")
    method = registry.METHODS["contrastive"]
    assert method.protocol == ("cosine",) and method.criteria == (("con/old", "old/old"),)
    assert load_preset("fashion-mnist").method("contrastive") == ContrastiveConfig()
    path = tmp_path / "p.yaml"
    path.write_text("name: x\nmethods: {contrastive: {temperature: 0}}\n")
    with pytest.raises(PresetError, match=re.escape("temperature and weight must be > 0")):
        load_preset(path).check_methods()
    result = method.cases(smoke_run)
    assert set(result.cases) == {"con/old", "con/con"} and result.own_encoder == "contrastive"
    query, gallery = result.cases["con/old"]
    assert query.shape == gallery.shape and np.isfinite(query).all()


@pytest.mark.parametrize("name", ["contrastive", "lwf", "l2:1", "bct:openbct:1"])
def test_methods_comparing_old_and_new_embeddings_refuse_different_sizes(fashion_mnist, tmp_path,
                                                                        name):
    from fctlib.suite.run import Run

    run = Run("smoke", 0, overrides={"new": {"model": {"embedding_dim": 24}}},
              runs_dir=tmp_path, results_dir=tmp_path, device=torch.device("cpu"))
    with pytest.raises(registry.ArtifactNameError, match=r"sizes to match \(16 vs 24\)"):
        run.artifact(name)
