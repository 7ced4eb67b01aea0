import pytest
from torch import nn

from fctlib.methods.projection import Projection
from fctlib.models.mlp import mlp_layers
from fctlib.models.transformation import FastFill, Transformation


def _kinds(layers):
    return [type(layer).__name__ for layer in layers]


def test_layers_with_and_without_batchnorm_and_a_plain_last_layer():
    assert _kinds(mlp_layers([4, 8, 2])) == ["Linear", "BatchNorm1d", "ReLU", "Linear"]
    assert _kinds(mlp_layers([4, 8], last_plain=False)) == ["Linear", "BatchNorm1d", "ReLU"]
    assert _kinds(mlp_layers([4, 8, 1], batchnorm=False)) == ["Linear", "ReLU", "Linear"]
    sizes = [(m.in_features, m.out_features) for m in mlp_layers([4, 8, 6, 2])
             if isinstance(m, nn.Linear)]
    assert sizes == [(4, 8), (8, 6), (6, 2)]
    with pytest.raises(ValueError, match="at least two positive widths"):
        mlp_layers([4])


def test_the_heads_built_on_it_keep_their_saved_parameter_names():
    """Saved transformations and checkpoints load by these names: the builder must not move
    them."""
    h = Transformation(4, 3, 5, (8,), (16,))
    assert list(h.state_dict())[:6] == ["old_branch.0.weight", "old_branch.0.bias",
                                        "old_branch.1.weight", "old_branch.1.bias",
                                        "old_branch.1.running_mean", "old_branch.1.running_var"]
    assert "mixer.3.weight" in h.state_dict() and "mixer.4.weight" not in h.state_dict()
    assert sorted(Projection(5, 4, (8,)).state_dict())[-2:] == ["net.3.bias", "net.3.weight"]
    head = FastFill(h, 6).uncertainty
    assert _kinds(head) == ["Linear", "ReLU", "Linear"] and head[2].out_features == 1
