"""BT², the basis transformation with extra dimensions (methods/bt2_basis.py)."""

import math

import numpy as np
import pytest
import torch

from fctlib.data.batches import ImageBatches
from fctlib.methods import registry
from fctlib.methods.bct import BCTName
from fctlib.methods.bct_variants import class_means
from fctlib.methods.bt2_basis import BasisTransformModel, bt2_basis_loss, bt2_basis_step
from fctlib.models.backbones import build_backbone, build_model
from fctlib.models.spec import ModelSpec
from fctlib.training.config import TrainConfig
from fctlib.training.loop import classification_loss, train
from tests.methods.real_images import CPU, SPEC, normalised, old_model_bench


def model(old_dim=16, new_dim=16, extra=4, classes=10):
    torch.manual_seed(0)
    spec = ModelSpec(arch="small_cnn", width=8, embedding_dim=old_dim + new_dim)
    return BasisTransformModel(build_backbone(spec, 1), old_dim, new_dim, classes, extra)


def test_both_bases_are_orthonormal_and_every_output_has_norm_sqrt_1_plus_c2():
    net = model()
    for layer in (net.rotate_new, net.rotate_old):
        w = layer.weight
        torch.testing.assert_close(w @ w.T, torch.eye(len(w)), atol=1e-5, rtol=0)
    output, compatible, feature, logits = net.parts(torch.randn(6, 1, 28, 28))
    assert output.shape == (6, 16 + 4) and compatible.shape == (6, 16) and logits.shape == (6, 10)
    torch.testing.assert_close(output.norm(dim=1), torch.full((6,), math.sqrt(1 + 2.0 ** 2)))
    torch.testing.assert_close(output[:, :16], compatible)


def test_sizes_it_cannot_build_are_refused():
    with pytest.raises(ValueError, match="extra_dims"):
        model(old_dim=16, new_dim=8, extra=4)


def test_loss_matches_its_four_terms_by_hand():
    torch.manual_seed(0)
    compatible, feature = torch.randn(4, 3), torch.randn(4, 3)
    logits, labels = torch.randn(4, 5), torch.tensor([0, 2, 4, 1])
    rows, old, new = torch.randn(5, 3), torch.randn(4, 3), torch.randn(4, 3)

    def unit(v):
        return [x / math.sqrt(sum(y * y for y in v)) for x in v]

    def ce(z, y):
        return math.log(sum(math.exp(v) for v in z)) - z[y]

    def cos(a, b):
        return sum(x * y for x, y in zip(unit(a), unit(b), strict=True))

    expected = 0.0
    for i in range(4):
        c, f, y = compatible[i].tolist(), feature[i].tolist(), int(labels[i])
        scores = [sum(a * b for a, b in zip(unit(c), r, strict=True)) for r in rows.tolist()]
        influence = ce(scores, y)
        expected += (ce(logits[i].tolist(), y) + 10 * influence + 5 * (1 - cos(c, old[i].tolist()))
                     + 1 * (1 - cos(f, new[i].tolist()))) / 4
    loss = bt2_basis_loss(compatible, feature, logits, labels, rows, old, new)
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_training_brings_the_compatible_part_to_the_old_features_on_real_images(fashion_mnist):
    """Real images: old (5 classes) and new (10) models, then BT²: its loss goes down and its
    compatible part ends nearer (cosine) the old model's features of test images than at start."""
    cfg = TrainConfig(epochs=3, batch_size=32, optimizer="adam", lr=1e-3, warmup_epochs=0)
    sgd = TrainConfig(epochs=3, batch_size=32, lr=0.05, warmup_epochs=0)
    bench = old_model_bench(fashion_mnist, sgd)
    images, transform, old, x = bench.images, bench.transform, bench.old, bench.x
    new = build_model(SPEC, 1, 10)
    train(new, ImageBatches(images, transform), classification_loss(0.1), sgd, seed=0, device=CPU)
    new.eval()
    x_train = normalised(fashion_mnist, images)
    with torch.no_grad():
        rows = class_means(old(x_train)[0], torch.as_tensor(images.labels), list(range(10)), 16,
                           normalize=True)
    net = model(old_dim=16, new_dim=16, extra=4)

    def agreement():
        with torch.no_grad():
            return torch.cosine_similarity(net.eval().parts(x)[1], old(x)[0], dim=1).mean().item()

    before = agreement()
    history = train(net, ImageBatches(images, transform), bt2_basis_step(rows, old, new), cfg,
                    seed=0, device=CPU)
    assert agreement() > before + 0.2, (before, agreement())
    losses = [h["loss"] for h in history]
    assert losses[-1] < losses[0], losses


def test_registered_under_cosine_and_measured_in_a_smoke_run(smoke_run):
    names = [m.name for m in registry.methods()]
    assert names.index("contrastive") < names.index("bt2-basis") < names.index("fct")
    method = registry.METHODS["bt2-basis"]
    assert method.protocol == ("cosine",) and method.criteria == (("bt2b/old", "old/old"),)
    result = method.cases(smoke_run)
    assert set(result.cases) == {"bt2b/old", "bt2b/bt2b", "bt2-new/bt2-new"}
    assert result.own_encoder == "bt2-basis"
    matched = smoke_run.embeddings(BCTName("bt2", 0.0), "test")
    # the same cached embeddings file read twice (no arithmetic between): exact by construction
    np.testing.assert_array_equal(result.cases["bt2-new/bt2-new"][0], matched)
    query, gallery = result.cases["bt2b/old"]
    assert query.shape == gallery.shape and np.isfinite(query).all()
    own = result.cases["bt2b/bt2b"][0]
    assert own.shape[1] == gallery.shape[1] + smoke_run.preset.method("bt2-basis").extra_dims


def test_every_preset_can_build_it_and_a_size_it_cannot_is_refused_before_training(tmp_path):
    from fctlib.experiment.config import load_preset
    from fctlib.paths import project_root
    from fctlib.suite.run import Run

    for path in sorted((project_root() / "params").glob("*.yaml")):
        if path.stem == "defaults":
            continue
        preset = load_preset(path.stem)
        extra = preset.method("bt2-basis").extra_dims
        old, new = preset.old.model.embedding_dim, preset.new.model.embedding_dim
        assert extra <= old <= new + extra, path.stem
    run = Run("smoke", 0, overrides={"methods": {"bt2-basis": {"extra_dims": 20}}},
              runs_dir=tmp_path, results_dir=tmp_path, device=torch.device("cpu"))
    with pytest.raises(registry.ArtifactNameError, match=r"extra_dims \(20\) must be at most"):
        run.artifact("bt2-basis")
