import numpy as np
import pytest
import torch

from fctlib.data.splits import nested_share
from fctlib.experiment.config import PresetError, load_preset
from fctlib.methods.fct import TransformationName, share_rows
from fctlib.methods.side_info import SideInfoName
from fctlib.models.backbones import build_model
from fctlib.suite.run import Run
from fctlib.training.runtime import seed_everything

LABELS = np.repeat([0, 1, 2, 3], [40, 10, 7, 1])


def test_nested_share_sizes_stratified_nested_and_deterministic():
    shares = (0.1, 0.25, 0.5, 1.0)
    subsets = {s: nested_share(LABELS, s, seed=3) for s in shares}
    for share, rows in subsets.items():
        assert np.all(np.diff(rows) > 0)  # sorted, no repeats
        counts = np.bincount(LABELS[rows], minlength=4)
        expected = [max(round(share * n), 1) for n in (40, 10, 7, 1)]
        assert counts.tolist() == expected, (share, counts)
    for small, large in zip(shares[:-1], shares[1:], strict=True):
        assert set(subsets[small]) <= set(subsets[large])
    assert subsets[1.0].tolist() == list(range(len(LABELS)))
    np.testing.assert_array_equal(nested_share(LABELS, 0.25, seed=3), subsets[0.25])
    assert not np.array_equal(nested_share(LABELS, 0.25, seed=4), subsets[0.25])
    for bad in (0.0, -0.5, 1.5):
        with pytest.raises(ValueError, match="share must be in"):
            nested_share(LABELS, bad, seed=0)


@pytest.mark.parametrize("ablation, message", [
    ({"side_info_sources": ["simclr", "imagenet"]}, "side_info_sources must be"),
    ({"side_info_sources": []}, "side_info_sources must be"),
    ({"data_shares": [0.0, 0.5]}, "data_shares must be"),
    ({"data_shares": [0.5, 1.2]}, "data_shares must be"),
    ({"width_factors": [0.0, 1.0]}, "width_factors must be"),
    ({"width_factors": [1.0, 1.0]}, "width_factors lists a value more than once"),
])
def test_ablation_keys_are_validated(ablation, message):
    with pytest.raises(PresetError, match=f"'ablation'.*{message}"):
        load_preset("smoke", {"ablation": ablation})
    with pytest.raises(PresetError, match="unknown key 'methods.projection.hidden'"):
        load_preset("smoke", {"methods": {"projection": {"hidden": [3]}}}).check_methods()


def test_side_info_sources_have_their_own_names_and_cache_keys(smoke_run):
    names = [SideInfoName(8, s) for s in ("simclr", "supervised", "random")]
    assert [str(n) for n in names] == ["side:8", "side:8:supervised", "side:8:random"]
    store = smoke_run.store
    assert len({store.key(smoke_run.artifact(n)) for n in names}) == 3
    assert len({store.folder(smoke_run.artifact(n)) for n in names}) == 3
    with pytest.raises(ValueError, match="unknown side-info source"):
        SideInfoName(8, "imagenet")
    with pytest.raises(ValueError, match="unknown side-info source"):
        TransformationName(0, source="imagenet")


def _bn_untouched(model):
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    return norms and all(int(m.num_batches_tracked) == 0 and not m.running_mean.any()
                         for m in norms)


def test_random_side_info_is_untrained_shaped_and_seeded(smoke_run):
    dim, images = 8, torch.randn(5, 1, 28, 28)
    net, history = smoke_run.trained(f"side:{dim}:random")
    assert history == [] and _bn_untouched(net)
    assert net(images).shape == (5, dim)
    again, _ = smoke_run.artifact(f"side:{dim}:random").fit(None)
    for a, b in zip(net.state_dict().values(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b)  # the same seeded initialisation: no arithmetic to differ
    other_seed, _ = Run(smoke_run.preset, 1, runs_dir=smoke_run.root.parent.parent,
                        device=smoke_run.device).trained(f"side:{dim}:random")
    first = next(iter(net.state_dict().values()))
    assert not torch.equal(first, next(iter(other_seed.state_dict().values())))
    seed_everything(smoke_run.seed)  # the old model's initialisation: not reused as side-info
    old_init = build_model(smoke_run.preset.old.model, 1, 5).backbone
    assert not torch.equal(first, next(iter(old_init.state_dict().values())))


def test_supervised_side_info_is_trained_on_old_labels_with_its_own_seed(smoke_run):
    dim = smoke_run.preset.side_info.model.embedding_dim
    net, history = smoke_run.trained(SideInfoName(dim, "supervised"))
    assert len(history) == smoke_run.preset.old.training.epochs
    assert not _bn_untouched(net)
    assert net(torch.randn(3, 1, 28, 28)).shape == (3, dim)
    emb = smoke_run.embeddings(SideInfoName(dim, "supervised"), "test")
    assert emb.shape == (len(smoke_run.splits.test), dim)
    assert not np.array_equal(emb, smoke_run.embeddings(SideInfoName(dim), "test"))


def test_transformation_ablations_fit_the_right_data_and_width(smoke_run, monkeypatch):
    import fctlib.methods.fct as fct

    dim, fitted = smoke_run.preset.side_info.model.embedding_dim, {}
    real = fct.train_transformation

    def spy(model, old, side, new, *args, **kwargs):
        fitted["rows"], fitted["side"] = len(old), side
        return real(model, old, side, new, *args, **kwargs)

    monkeypatch.setattr(fct, "train_transformation", spy)
    folders = [{p.name for p in smoke_run.root.glob("transformation-*")}]
    smoke_run.trained(TransformationName(dim, share=0.25))
    folders.append({p.name for p in smoke_run.root.glob("transformation-*")})
    counts = np.bincount(smoke_run.splits.train.labels[share_rows(smoke_run, 0.25)])
    assert fitted["rows"] == counts.sum() == len(share_rows(smoke_run, 0.25))
    assert len(set(counts.tolist())) == 1  # the smoke train split is balanced: so is its share
    h, _ = smoke_run.trained(TransformationName(dim, width=0.5))
    folders.append({p.name for p in smoke_run.root.glob("transformation-*")})
    widths = [m.out_features for m in h.modules() if isinstance(m, torch.nn.Linear)]
    cfg = smoke_run.preset.transformation
    assert widths[:-1] == [w // 2 for w in (*cfg.branch_widths, *cfg.branch_widths,
                                            *cfg.mixer_widths)]
    smoke_run.trained(TransformationName(dim, "random"))
    side = smoke_run.embeddings(SideInfoName(dim, "random"), "train")
    np.testing.assert_array_equal(fitted["side"], side)
    folders.append({p.name for p in smoke_run.root.glob("transformation-*")})
    # each ablated h gets a folder of its own, never the default h's
    assert [len(after - before) for before, after in zip(folders, folders[1:], strict=False)] == [
        1, 1, 1]
    default = smoke_run.store.folder(smoke_run.artifact(f"h:{dim}"))
    assert default.name not in folders[-1] - folders[0]
    smoke_run.trained(f"h:{dim}")  # the default h: a folder of its own
    assert (default / "model.pt").is_file()

