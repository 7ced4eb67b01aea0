"""h and FastFill as deployed: their layers, h applied to stored vectors in batches, and their saved
files (tensors and plain data only, so a file saved before a module moved still loads)."""

import numpy as np
import pytest
import torch

from fctlib.models.transformation import (
    FASTFILL_FORMAT,
    TRANSFORMATION_FORMAT,
    FastFill,
    Transformation,
    load_fastfill,
    load_transformation,
    save_fastfill,
    save_transformation,
    upgrade_embeddings,
    upgrade_with_uncertainty,
)

CPU = torch.device("cpu")


def _vectors(n=1000, old_dim=8, side_dim=4):
    rng = np.random.default_rng(0)
    return (rng.normal(size=(n, old_dim)).astype(np.float32),
            rng.normal(size=(n, side_dim)).astype(np.float32))


def _fastfill(side_dim=3, seed=0):
    torch.manual_seed(seed)
    return FastFill(Transformation(5, side_dim, 4, branch_widths=(8,), mixer_widths=(8,)),
                    head_width=6)


def test_reference_architecture_sizes():
    h = Transformation(128, 128, 128)
    linears = [m for m in h.modules() if isinstance(m, torch.nn.Linear)]
    shapes = [(m.in_features, m.out_features) for m in linears]
    assert shapes == [(128, 256), (256, 256), (128, 256), (256, 256),
                      (512, 2048), (2048, 2048), (2048, 128)]
    assert isinstance(h.mixer[-1], torch.nn.Linear)  # plain last layer


def test_no_side_info_feeds_old_into_both_branches():
    torch.manual_seed(0)
    h = Transformation(8, 0, 6, branch_widths=(16,), mixer_widths=(16,)).eval()
    old = torch.randn(5, 8)
    assert torch.equal(h(old), h(old, old))
    assert h.side_branch[0].in_features == 8


def test_upgrade_in_batches_equals_one_pass_and_checks_shapes():
    torch.manual_seed(0)
    h = Transformation(8, 4, 6, branch_widths=(16,), mixer_widths=(16,)).eval()
    old, side = _vectors()
    whole = h(torch.from_numpy(old), torch.from_numpy(side)).detach().numpy()
    batched = upgrade_embeddings(h, old, side, batch_size=77, device=CPU)
    np.testing.assert_allclose(batched, whole, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="side-info"):
        upgrade_embeddings(h, old, side[:, :3], device=CPU)
    with pytest.raises(ValueError, match="old embeddings"):
        upgrade_embeddings(h, old[:, :5], side, device=CPU)


def test_fastfill_forward_is_the_transformation_plus_a_sigma_per_sample():
    model = _fastfill().eval()
    old, side = torch.randn(7, 5), torch.randn(7, 3)
    feature, sigma = model(old, side)
    assert torch.equal(feature, model.transformation(old, side))  # the same call on one batch
    assert sigma.shape == (7,)
    assert torch.allclose(sigma, model.uncertainty(feature).squeeze(1))


def test_upgrade_with_uncertainty_in_batches():
    model = _fastfill().eval()
    old, side = _vectors(50, 5, 3)
    features, sigma = upgrade_with_uncertainty(model, old, side, batch_size=16, device=CPU)
    whole_feature, whole_sigma = model(torch.from_numpy(old), torch.from_numpy(side))
    # Batches of 16 against one batch of 50 take other GEMM kernel paths: equal within float32
    # rounding, not bit for bit (an AVX-512 Xeon differed by 1.5e-8).
    np.testing.assert_allclose(features, whole_feature.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(sigma, whole_sigma.detach().numpy(), rtol=1e-5, atol=1e-6)
    # The features are h's own upgrade at the same batch size: the same arithmetic, bit for bit.
    np.testing.assert_array_equal(features, upgrade_embeddings(model.transformation, old, side,
                                                               batch_size=16, device=CPU))


def test_saved_files_hold_tensors_and_plain_data_only(tmp_path):
    """No class path is pickled: files load as weights, wherever the classes live."""
    torch.manual_seed(0)
    h = Transformation(8, 4, 6, (16,), (16,)).eval()
    fastfill = FastFill(Transformation(8, 0, 6, (16,), (16,))).eval()
    for path, fmt in ((save_transformation(h, tmp_path / "h.pt"), TRANSFORMATION_FORMAT),
                      (save_fastfill(fastfill, tmp_path / "f.pt"), FASTFILL_FORMAT)):
        saved = torch.load(path, weights_only=True)
        assert saved["format"] == fmt and set(saved["sizes"]) == {
            "old_dim", "side_info_dim", "new_dim", "branch_widths", "mixer_widths"}


def test_a_file_in_the_saved_format_loads(tmp_path):
    """The format as written since fct-transformation/1 and fct-fastfill/1, by hand: a file
    saved by an earlier version of the suite loads and computes the same."""
    torch.manual_seed(0)
    h = Transformation(8, 4, 6, (16,), (16,)).eval()
    sizes = {"old_dim": 8, "side_info_dim": 4, "new_dim": 6, "branch_widths": [16],
             "mixer_widths": [16]}
    torch.save({"format": "fct-transformation/1", "sizes": sizes, "state_dict": h.state_dict()},
               tmp_path / "h.pt")
    fastfill = FastFill(h, head_width=5).eval()
    torch.save({"format": "fct-fastfill/1", "head_width": 5, "sizes": sizes,
                "state_dict": fastfill.state_dict()}, tmp_path / "f.pt")
    old, side = _vectors(20)
    expected = upgrade_embeddings(h, old, side, device=CPU)
    np.testing.assert_array_equal(
        upgrade_embeddings(load_transformation(tmp_path / "h.pt"), old, side, device=CPU),
        expected)
    for got, want in zip(
            upgrade_with_uncertainty(load_fastfill(tmp_path / "f.pt"), old, side, device=CPU),
            upgrade_with_uncertainty(fastfill, old, side, device=CPU), strict=True):
        np.testing.assert_array_equal(got, want)


class _Payload:
    """Anything but tensors and plain data: unpickling it would run this module's code."""


def test_a_file_holding_objects_is_refused_unread(tmp_path):
    import pickle

    from fctlib.models.transformation import read_saved_model

    path = tmp_path / "h.pt"
    torch.save({"format": TRANSFORMATION_FORMAT, "payload": _Payload()}, path)
    with pytest.raises(pickle.UnpicklingError):
        read_saved_model(path, (TRANSFORMATION_FORMAT,))
