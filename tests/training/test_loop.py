import pytest
import torch

from fctlib.data.batches import ImageBatches
from fctlib.data.splits import subsample_per_class
from fctlib.data.transforms import CropFlipTransform
from fctlib.models.backbones import build_model
from fctlib.models.spec import ModelSpec
from fctlib.training.checkpoint import load_torch
from fctlib.training.config import TrainConfig
from fctlib.training.loop import classification_loss, train

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def fashion_small(fashion_mnist):
    images = subsample_per_class(fashion_mnist.train, 64, seed=0)
    return ImageBatches(images, CropFlipTransform(28, 1, fashion_mnist.mean, fashion_mnist.std))


def _model(seed=0):
    torch.manual_seed(seed)
    return build_model(ModelSpec(arch="small_cnn", width=8, embedding_dim=16), 1, 10)


CFG = TrainConfig(epochs=3, batch_size=64, lr=0.05, warmup_epochs=1, weight_decay=1e-4)


def test_loss_goes_down_on_real_images(fashion_small):
    cfg = TrainConfig(epochs=5, batch_size=32, lr=0.1, warmup_epochs=1, weight_decay=1e-4)
    history = train(_model(), fashion_small, classification_loss(0.1), cfg, seed=0, device=CPU)
    losses = [h["loss"] for h in history]
    assert all(a > b for a, b in zip(losses, losses[1:], strict=False)), losses
    assert losses[-1] < 0.8 * losses[0], losses
    assert all(h["items_per_s"] > 0 for h in history)


def test_resume_after_interruption_gives_same_weights(fashion_small, tmp_path):
    straight = _model()
    train(straight, fashion_small, classification_loss(0.1), CFG, seed=3, device=CPU)

    def crash(epoch, step):
        if epoch == 1 and step == 4:
            raise KeyboardInterrupt

    interrupted = _model()
    ckpt = tmp_path / "model.pt"
    with pytest.raises(KeyboardInterrupt):
        train(interrupted, fashion_small, classification_loss(0.1), CFG, seed=3, device=CPU,
              checkpoint=ckpt, on_batch_end=crash)
    assert load_torch(ckpt)["epoch"] == 1
    resumed = _model(seed=99)  # fresh weights: everything must come from the checkpoint
    history = train(resumed, fashion_small, classification_loss(0.1), CFG, seed=3, device=CPU,
                    checkpoint=ckpt)
    assert [h["epoch"] for h in history] == [1, 2, 3]
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values(),
                            strict=True):
        assert torch.equal(a, b), name


def test_finished_checkpoint_is_loaded_not_retrained(fashion_small, tmp_path):
    ckpt = tmp_path / "m.pt"
    first = _model()
    train(first, fashion_small, classification_loss(0.1), CFG, seed=0, device=CPU, checkpoint=ckpt)

    def never(epoch, step):
        raise AssertionError("a finished run must not train again")

    again = _model(seed=5)
    train(again, fashion_small, classification_loss(0.1), CFG, seed=0, device=CPU,
          checkpoint=ckpt, on_batch_end=never)
    assert torch.equal(first.classifier.weight, again.classifier.weight)


def test_checkpoint_from_other_settings_is_refused(fashion_small, tmp_path):
    ckpt = tmp_path / "m.pt"
    one_epoch = TrainConfig(epochs=1, batch_size=64, lr=0.05)
    train(_model(), fashion_small, classification_loss(0.1), one_epoch, seed=0, device=CPU,
          checkpoint=ckpt)
    with pytest.raises(ValueError, match="other settings"):
        train(_model(), fashion_small, classification_loss(0.1), CFG, seed=0, device=CPU,
              checkpoint=ckpt)


def test_adam_and_bad_config():
    assert TrainConfig(optimizer="adam").optimizer == "adam"
    with pytest.raises(ValueError, match="optimizer"):
        TrainConfig(optimizer="lamb")
    with pytest.raises(ValueError, match="warmup"):
        TrainConfig(epochs=2, warmup_epochs=3)
