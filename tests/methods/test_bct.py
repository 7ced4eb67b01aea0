import dataclasses
import math
import re

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from fctlib.experiment.config import PresetError, load_preset
from fctlib.methods import bct, bct_diagnostic
from fctlib.methods.bct import BCTName, choose_from
from fctlib.methods.bct_variants import (
    VARIANTS,
    WholeBatchInfluence,
    bct_loss,
    build_bct_model,
    influence_loss,
    influence_rows,
    variant_loss,
)
from fctlib.methods.registry import parse_name
from fctlib.models.backbones import CosineClassifier, KernelNormClassifier
from fctlib.models.spec import ModelSpec


def _ce(logits, target, smoothing=0.0):
    """Label-smoothed cross-entropy of one sample, written from its definition."""
    k = len(logits)
    log_z = math.log(sum(math.exp(v) for v in logits))
    log_p = [v - log_z for v in logits]
    return -(1 - smoothing) * log_p[target] - smoothing / k * sum(log_p)


def test_influence_loss_hand_built():
    # rows for classes 0 and 1; embedding [1, 0] of class 0: logits [2, 0]; [0, 3] of class 1
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


@pytest.mark.parametrize("smoothing, normalize", [(0.0, False), (0.1, False), (0.1, True)])
def test_the_whole_batch_influence_is_the_selected_samples_influence(smoothing, normalize):
    """The accelerator's form (no sample selection) gives influence_loss's value and gradient:
    the uncovered classes' samples add nothing, their rows do not compete."""
    generator = torch.Generator().manual_seed(7)
    weight = torch.randn(10, 8, generator=generator)
    covered = torch.tensor([True, False] * 5)
    labels = torch.randint(0, 10, (32,), generator=generator)
    emb = torch.randn(32, 8, generator=generator, requires_grad=True)
    reference = influence_loss(emb, labels, weight, covered, label_smoothing=smoothing,
                               normalize=normalize)
    (expected,) = torch.autograd.grad(reference, emb)
    whole = WholeBatchInfluence(weight, covered, label_smoothing=smoothing, normalize=normalize)
    loss = whole(emb, labels)
    (gradient,) = torch.autograd.grad(loss, emb)
    # the two forms multiply different numbers of rows, so a CPU's kernels may round apart
    assert loss.item() == pytest.approx(reference.item(), rel=1e-6)
    assert torch.allclose(gradient, expected, rtol=1e-5, atol=1e-7)
    none = whole(emb[:2], torch.tensor([1, 3]))  # no sample of a covered class
    # exactly zero: every term is an ignored target's 0, summed and divided by 1
    assert none.item() == 0.0 and torch.autograd.grad(none, emb)[0].abs().sum() == 0


def test_openbct_keeps_the_old_rows_and_masks_new_class_samples():
    # old classes 2 and 0 (classifier rows in that order), new classes 1 and 3
    old_weight = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    embeddings = np.array([[1, 1], [3, 5], [0, 0], [2, 2]], dtype=np.float32)
    labels = np.array([1, 1, 2, 3])
    for name in ("openbct", "openbct-normsm"):
        rows, covered = influence_rows(name, old_weight, [2, 0], 4, embeddings, labels)
        assert covered.tolist() == [True, False, True, False]
        assert rows[2].tolist() == [1.0, 0.0] and rows[0].tolist() == [0.0, 1.0]
    # a batch of classes 2, 1 (new: no loss), 0: only rows 0 and 2 compete, no smoothing
    emb = torch.tensor([[3.0, 1.0], [9.0, -9.0], [0.5, 2.0]])
    loss = variant_loss("openbct", 0.0, rows, covered, 1.0)
    step = loss(lambda x: (x, torch.zeros(len(x), 4)), (emb, torch.tensor([2, 1, 0])))
    by_hand = (_ce([1.0, 3.0], 1) + _ce([2.0, 0.5], 0)) / 2  # columns: class 0, class 2
    assert step.item() == pytest.approx(math.log(4) + by_hand, rel=1e-6)


def test_openbct_g_rows_are_means_of_unit_old_features_for_every_class():
    old_weight = torch.tensor([[5.0, 5.0]])
    embeddings = np.array([[3, 4], [0, 2], [6, 8], [1, 0], [0, 5]], dtype=np.float32)
    labels = np.array([0, 0, 1, 1, 2])
    rows, covered = influence_rows("openbct-g", old_weight, [0], 3, embeddings, labels)
    assert covered.all()
    # class 0: ([0.6, 0.8] + [0, 1]) / 2; class 1: ([0.6, 0.8] + [1, 0]) / 2; class 2: [0, 1]
    expected = torch.tensor([[0.3, 0.9], [0.8, 0.4], [0.0, 1.0]])
    assert torch.allclose(rows, expected)
    assert rows[0].norm() < 1  # the mean itself is not re-normalised (authors' code)


def test_bt2_normalises_the_feature_and_smooths_over_every_class():
    rows = torch.tensor([[0.6, 0.8], [1.0, 0.0], [0.0, -1.0]])
    covered = torch.ones(3, dtype=torch.bool)
    emb = torch.tensor([[3.0, 4.0], [10.0, 0.0]])  # unit: [0.6, 0.8] and [1, 0]
    labels = torch.tensor([0, 2])
    loss = variant_loss("bt2", 0.1, rows, covered, 10.0)
    own = torch.tensor([[2.0, 0.0, 1.0], [0.0, 0.5, 0.0]])
    step = loss(lambda x: (x, own), (emb, labels))
    # influence logits: [1, 0.6, -0.8] (class 0) and [0.6, 1, 0] (class 2), smoothing 0.1
    influence = (_ce([1.0, 0.6, -0.8], 0, 0.1) + _ce([0.6, 1.0, 0.0], 2, 0.1)) / 2
    classifier = (_ce([2.0, 0.0, 1.0], 0, 0.1) + _ce([0.0, 0.5, 0.0], 2, 0.1)) / 2
    assert step.item() == pytest.approx(classifier + 10 * influence, rel=1e-5)
    raw = influence_loss(emb, labels, rows, covered, label_smoothing=0.1)
    assert raw.item() != pytest.approx(influence, rel=1e-3)  # the normalisation matters


def test_hybrid_mixes_old_rows_with_raw_new_class_means():
    old_weight = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    embeddings = np.array([[1, 1], [3, 5], [0, 0], [2, 2]], dtype=np.float32)
    rows, covered = influence_rows("hybrid", old_weight, [2, 0], 4, embeddings,
                                   np.array([1, 1, 2, 3]))
    assert covered.all()
    assert rows.tolist() == [[0.0, 1.0], [2.0, 3.0], [1.0, 0.0], [2.0, 2.0]]
    with pytest.raises(ValueError, match="rows"):
        influence_rows("openbct", old_weight, [0], 4, embeddings, np.array([1, 1, 2, 3]))


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
        3.0 * influence_loss(x, y, weight, covered).item(), rel=1e-5)


def test_variants_are_the_published_ones_with_their_weights():
    sweep = [s.variant for s in load_preset("smoke").method("bct").sweep]
    assert sweep == [name for name, v in VARIANTS.items() if v.choosable] + ["random-rows"]
    published = {name: v.published_weight for name, v in VARIANTS.items() if v.choosable}
    assert published == {"openbct": 1.0, "openbct-g": 1.0, "bt2": 10.0, "openbct-normsm": 1.0}
    assert not VARIANTS["hybrid"].choosable
    assert VARIANTS["bt2"].normalize and VARIANTS["bt2"].influence_smoothing == 0.1
    assert VARIANTS["openbct-normsm"].normsm and VARIANTS["openbct-normsm"].classes == "old"


@pytest.mark.parametrize("section, message", [
    ({"sweep": 3}, "'methods.bct.sweep' must be a list"),
    ({"sweep": [{"variant": "drop", "weights": [1]}]}, "variant must be one of"),
    ({"sweep": [{"variant": "hybrid", "weights": [1]}]}, "a variant that can be chosen"),
    ({"sweep": [{"variant": "bt2", "weights": [1, 1]}]}, "must be distinct"),
    ({"normsm_scale": 0}, "normsm_scale must be > 0"),
    ({"sweep": [{"variant": "openbct-normsm", "weights": [1]}]},
     "a variant the multi-step chain can train"),
    ({"sweeps": []}, "unknown key 'methods.bct.sweeps'"),
])
def test_bct_settings_are_refused_before_a_run_starts(section, message):
    with pytest.raises(PresetError, match=re.escape(message)):
        load_preset("smoke", {"methods": {"bct": section}}).check_methods()


def test_a_variant_is_matched_by_the_new_model_trained_as_it_trains_its_own():
    preset = load_preset("smoke")
    assert bct.matched_encoder(preset, "openbct") == "new"  # the new model's network and recipe
    assert bct.matched_encoder(preset, "openbct-g") == "new"
    assert bct.matched_encoder(preset, "bt2") == BCTName("bt2", 0.0)  # normalised, BT-2's Adam
    assert bct.matched_encoder(preset, "openbct-normsm") == BCTName("openbct-normsm", 0.0)
    same = {"methods": {"bct": {"bt2_training": dataclasses.asdict(preset.new.training)}}}
    assert bct.matched_encoder(load_preset("smoke", same), "bt2") == BCTName("bt2", 0.0)


def test_artifact_names_carry_the_variant():
    assert parse_name("bct:openbct-g:3") == BCTName("openbct-g", 3.0)
    assert str(BCTName("bt2", 10)) == "bct:bt2:10.0"  # one string form per name
    for bad in ("bct:1.0", "bct:nope:1", "bct:openbct:x", "bct:openbct:-1"):
        with pytest.raises(ValueError, match="bct"):
            parse_name(bad)


def test_bt2_model_embeds_on_the_unit_sphere_and_normsm_uses_scale_30():
    spec = ModelSpec(width=2, embedding_dim=4)
    torch.manual_seed(0)
    x = torch.randn(3, 1, 12, 12)
    embedding, _ = build_bct_model("bt2", spec, 1, 5, 30.0).eval()(x)
    assert torch.allclose(embedding.norm(dim=1), torch.ones(3), atol=1e-5)
    normsm = build_bct_model("openbct-normsm", spec, 1, 5, 30.0)
    assert isinstance(normsm.classifier, KernelNormClassifier) and normsm.classifier.scale == 30.0
    normface = build_bct_model("normface", spec, 1, 5, 30.0)
    assert isinstance(normface.classifier, CosineClassifier) and normface.classifier.scale == 30.0
    plain = build_bct_model("openbct", spec, 1, 5, 30.0)
    assert isinstance(plain.classifier, torch.nn.Linear) and plain.classifier.bias is None


def test_openbct_s_normalised_softmax_is_computed_as_its_code_computes_it():
    """openBCT models/resnet.py @69e798c: normalize(kernel, dim=1) of a (d, C) kernel, the
    normalised feature times it, clamped to [-1, 1], times s."""
    torch.manual_seed(0)
    head = KernelNormClassifier(4, 3, scale=30.0)
    assert torch.allclose(head.kernel.norm(dim=0), torch.ones(3))  # unit columns at the start
    with torch.no_grad():
        head.kernel.copy_(torch.tensor([[3.0, 4.0, 0.0], [0.0, 0.0, 2.0], [1.0, 0.0, 0.0],
                                        [0.0, 1.0, 1.0]]))
    x = torch.tensor([[1.0, 1.0, 1.0, 1.0], [-2.0, 0.0, 0.0, 0.0]])
    kernel = head.kernel.detach()
    rows = kernel / kernel.norm(dim=1, keepdim=True)  # each feature dimension across classes
    feature = x / x.norm(dim=1, keepdim=True)
    expected = 30.0 * (feature @ rows).clamp(-1, 1)
    assert torch.allclose(head(x), expected)
    assert not torch.allclose(expected, 30.0 * feature @ (kernel / kernel.norm(dim=0)))


def _point(variant, weight, split, distance, cross):
    metrics = {"top1": cross, "top5": cross, "mAP": cross}
    return {"variant": variant, "weight": weight, "split": split, "distance": distance,
            "bct/old": metrics, "bct/bct": metrics, "old/old": metrics, "new/new": metrics,
            "norm_ratio": 1.0}


def test_the_choice_reads_tune_numbers_of_choosable_variants_under_the_distance():
    points = [_point("openbct", 1.0, "tune", "l2", 0.40), _point("openbct", 1.0, "test", "l2", 0.9),
              _point("bt2", 10.0, "tune", "l2", 0.50), _point("bt2", 10.0, "test", "l2", 0.1),
              _point("openbct", 3.0, "tune", "cosine", 0.80),
              _point("openbct", 3.0, "tune", "l2", 0.20),
              _point("hybrid", 1.0, "tune", "l2", 0.99)]
    assert choose_from(points, "l2") == ("bt2", 10.0)
    assert choose_from(points, "cosine") == ("openbct", 3.0)
    with pytest.raises(ValueError, match="tune"):
        choose_from([p for p in points if p["split"] == "test"], "l2")


NORMSM_DRIFT = ("a normalised softmax leaves the embedding's norm free (openBCT --use-norm-sm): "
                "its updates are orthogonal to the embedding and grow it, with or without BCT")


@pytest.mark.parametrize("variant", [
    "openbct", "openbct-g", "bt2",
    pytest.param("openbct-normsm", marks=pytest.mark.xfail(strict=True, reason=NORMSM_DRIFT))])
def test_smoke_run_bct_embeddings_stay_within_10x_of_the_old_norm(smoke_run, variant):
    old = np.linalg.norm(smoke_run.embeddings("old", "tune"), axis=1).mean()
    name = BCTName(variant, VARIANTS[variant].published_weight)
    norm = np.linalg.norm(smoke_run.embeddings(name, "tune"), axis=1).mean()
    assert 0.1 * old < norm < 10 * old, (name, norm, old)


def test_smoke_run_normsm_norm_is_its_classifier_s_not_bct_s(smoke_run):
    """The influence term adds no drift to the normalised-softmax model: its norm stays within
    10x of the same model trained without it (weight 0)."""
    alone = np.linalg.norm(smoke_run.embeddings("bct:openbct-normsm:0", "tune"), axis=1).mean()
    norm = np.linalg.norm(smoke_run.embeddings("bct:openbct-normsm:1", "tune"), axis=1).mean()
    assert 0.1 * alone < norm < 10 * alone


def test_smoke_run_points_cover_both_splits_and_distances_and_the_choice_is_swept(smoke_run):
    points = bct.variant_points(smoke_run)
    assert {(p["split"], p["distance"]) for p in points} == {
        (s, d) for s in ("tune", "test") for d in ("l2", "cosine")}
    assert len(points) == 4 * len(smoke_run.preset.method("bct").models())
    variant, weight = choose_from(points, bct.PROTOCOL[0])
    assert (variant, weight) in smoke_run.preset.method("bct").models()
    for p in points:  # each variant priced against the new model trained as it trains its own
        matched = bct.matched_encoder(smoke_run.preset, p["variant"])
        alone = smoke_run.embeddings(matched, p["split"])  # the same evaluation, so equal exactly
        assert p["matched/matched"] == smoke_run.evaluate(alone, alone, p["split"],
                                                          p["distance"])["all"]
        assert (p["matched/matched"] == p["new/new"]) == (matched == "new")
    rows = bct_diagnostic.run_diagnostic(smoke_run)
    assert [r["variant"] for r in rows] == list(VARIANTS)


def test_a_run_without_the_sweep_chooses_as_the_seed_s_bct_record_says(smoke_run, tmp_path):
    """Notebook 04's record names each sweep model's key beside its tune numbers: a run of the
    seed on a machine without the sweep (an empty runs folder, as a lent session's) chooses from
    them and trains none of the sweep; a record of another sweep (a setting changed: its keys
    moved), of other data or of older code (points without keys) is not read, with a warning
    that says which."""
    from fctlib.experiment.record_rows import BCTPoint
    from fctlib.experiment.records import BCTRecord, load_record
    from fctlib.suite.run import Run

    points = bct.variant_points(smoke_run)
    assert all(p["key"] == smoke_run.artifact_key(BCTName(p["variant"], p["weight"]))
               for p in points)
    results = tmp_path / "results"
    variant, weight = choose_from(points, bct.PROTOCOL[0])

    def fresh(name, **overrides):
        return Run("smoke", 0, overrides=overrides, runs_dir=tmp_path / name,
                   results_dir=results, device=torch.device("cpu"))

    def save(record):
        return load_record(fresh("writer").save_record(record))

    record = save(BCTRecord(cases={}, weight=weight, variant=variant, distance=bct.PROTOCOL[0],
                            points=[BCTPoint.from_json(p) for p in points], history=[]))
    assert record.data == {"key": smoke_run.data_key(), **smoke_run.data_digests}
    elsewhere = fresh("runs")
    assert bct.choose(elsewhere)[:2] == (variant, weight)
    assert bct.choose(elsewhere, chainable=True)[:2] == choose_from(
        points, bct.PROTOCOL[0], chainable=True)
    assert not (tmp_path / "runs").exists()  # nothing trained, nothing embedded

    def unread(run, reason):
        with pytest.warns(UserWarning, match=re.escape(reason)):
            assert bct.recorded_points(run) is None

    def names(pairs):
        return ", ".join(sorted({str(BCTName(v, w)) for v, w in pairs}))

    changed = fresh("other", methods={"bct": {"bt2_training": {"lr": 0.002}}})
    sweep = changed.preset.method("bct").models()
    moved = [(v, w) for v, w in sweep
             if changed.artifact_key(BCTName(v, w)) != smoke_run.artifact_key(BCTName(v, w))]
    assert moved and len(moved) < len(sweep)  # the bt2 models, not the others
    unread(changed, f"the same data, but other keys for {names(moved)}: other settings")
    unread(fresh("split", data={"tune_fraction": 0.25}),
           "the same images under another data config or class split")
    here = smoke_run.data_digests["test"][:12]
    other = [dataclasses.replace(p, key="0" * 10) for p in record.points]  # another data key's
    dataclasses.replace(record, points=other, data={"key": "0" * 10, "train": record.data["train"],
                                                    "test": "f" * 64}).save(results, 0)
    unread(elsewhere, "other data: the test images or labels differ (another data set, or the "
                      f"same files decoded to other pixels; test: ffffffffffff there, {here} here)")
    dataclasses.replace(record, data={}).save(results, 0)  # as code before the data field wrote it
    unread(changed, "it names no data to tell whether the data or the models' settings differ")
    dataclasses.replace(record, points=[dataclasses.replace(p, key="") for p in record.points]
                        ).save(results, 0)
    unread(elsewhere, "its points name no model keys")
    kept = [p for p in record.points if p.variant == variant]
    dataclasses.replace(record, points=kept).save(results, 0)
    unread(elsewhere, f"another sweep ({names((p.variant, p.weight) for p in kept)}; "
                      f"the preset's: {names(sweep)})")


def test_the_control_s_rows_carry_no_old_model_information():
    rng = np.random.default_rng(0)
    embeddings = rng.normal(size=(40, 6)).astype(np.float32)
    labels = np.repeat(np.arange(4), 10)
    old_weight = torch.zeros(2, 6)
    means, _ = influence_rows("openbct-g", old_weight, [0, 1], 4, embeddings, labels)
    rows, covered = influence_rows("random-rows", old_weight, [0, 1], 4, embeddings, labels,
                                   seed=3)
    assert covered.all() and rows.shape == (4, 6)
    norms = rows.norm(dim=1)  # every row at the class means' mean norm
    assert torch.allclose(norms, means.norm(dim=1).mean().expand(4), rtol=1e-5)
    other, _ = influence_rows("random-rows", old_weight, [0, 1], 4, -3 * embeddings, labels,
                              seed=3)  # other old features: the same directions
    assert torch.allclose(F.normalize(other, dim=1), F.normalize(rows, dim=1), atol=1e-6)
    again, _ = influence_rows("random-rows", old_weight, [0, 1], 4, embeddings, labels, seed=4)
    assert not torch.allclose(again, rows)
    assert not VARIANTS["random-rows"].choosable


def test_a_construction_is_flagged_relative_to_the_old_classifier_itself():
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(4), 25)
    centres = rng.normal(size=(4, 8)).astype(np.float32) * 3
    x = centres[labels] + rng.normal(size=(100, 8)).astype(np.float32)
    weak = torch.as_tensor(centres[[0, 1]]) + 3 * torch.randn(2, 8)  # an old classifier that errs
    rows = {r["variant"]: r for r in bct_diagnostic.influence_diagnostic(
        x, labels, weak, [0, 1], 4, ("openbct", "random-rows"), seed=0)}
    reference = rows["openbct"]["old_classifier_accuracy"]
    assert reference == rows["openbct"]["accuracy_old"]  # openbct's rows are the classifier's
    for row in rows.values():
        assert row["flagged"] == (row["accuracy_old"] < bct_diagnostic.FLAG_ACCURACY * reference)
    assert not rows["openbct"]["flagged"]
