"""FCT across architecture and loss: the cross models train on real data and h maps into them."""

import pytest

from fctlib.methods.fct import TransformationName, transformed_gallery
from fctlib.methods.fct_cross import CrossName
from fctlib.models.backbones import CosineClassifier, SmallResNet
from fctlib.suite.run import Run


@pytest.mark.slow
def test_cross_models_train_and_h_targets_them(tmp_path):
    run = Run("smoke", 0, runs_dir=tmp_path, overrides={
        "new": {"training": {"epochs": 3}},
        "methods": {"cross": {"model": {"arch": "small_resnet", "width": 4,
                                        "embedding_dim": 12}}}})
    arch, arch_history = run.trained("cross:arch")
    loss, loss_history = run.trained("cross:loss")
    assert isinstance(arch.backbone, SmallResNet)
    assert isinstance(loss.classifier, CosineClassifier)
    for history in (arch_history, loss_history):
        assert history[-1]["loss"] < 0.9 * history[0]["loss"], history
    gallery = transformed_gallery(run, TransformationName(0, to=CrossName("arch")))
    assert gallery.shape == (len(run.splits.test), 12)  # the cross model's embedding size
    assert transformed_gallery(run, TransformationName(0)).shape[1] == 16  # own h: into `new`
    with pytest.raises(ValueError, match="change must be one of"):
        run.trained("cross:depth")
