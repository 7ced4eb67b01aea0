import pytest
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import Dataset, TensorDataset

from fctlib.data.batches import ImageBatches
from fctlib.data.splits import subsample_per_class
from fctlib.data.transforms import CropFlipTransform
from fctlib.errors import UserError
from fctlib.models.backbones import build_model
from fctlib.models.spec import ModelSpec
from fctlib.training import distributed, loop
from fctlib.training.checkpoint import load_torch
from fctlib.training.config import TrainConfig
from fctlib.training.loop import (
    _epoch_batches,
    _loader,
    classification_loss,
    finished_history,
    train,
)

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


def test_channels_last_training_follows_channels_first_training(fashion_small, monkeypatch):
    """FCT_CPU_CHANNELS_LAST=1 trains through channels-last kernels (a hook sees a convolution's
    output in that layout) the same model as channels-first up to rounding: per-epoch losses
    within rtol 2e-3 (measured at most 4.4e-4 over these 3 epochs of a width-16 CNN; the
    roundings' difference grows with the steps)."""
    histories = {}
    for value in ("0", "1"):
        monkeypatch.setenv("FCT_CPU_CHANNELS_LAST", value)
        torch.manual_seed(0)
        model = build_model(ModelSpec(arch="small_cnn", width=16, embedding_dim=16), 1, 10)
        layouts = set()
        model.backbone.body[4].register_forward_hook(
            lambda module, args, out, seen=layouts: seen.add(
                out.is_contiguous(memory_format=torch.channels_last)))
        histories[value] = train(model, fashion_small, classification_loss(0.1), CFG, seed=0,
                                 device=CPU)
        assert layouts == {value == "1"}
    losses = [[h["loss"] for h in histories[v]] for v in ("0", "1")]
    assert losses[1] == pytest.approx(losses[0], rel=2e-3)


def test_channels_last_cpu_training_refuses_a_narrow_strided_1x1_convolution(
        fashion_small, monkeypatch, tmp_path):
    """oneDNN 3.12 writes the channels-last weight gradient of a 1x1 stride-2 convolution with
    fewer input channels than its vector block past its workspace (uxlfoundation/oneDNN#6035):
    on an AVX2 CPU a width-4 ResNet hung or crashed. One line names the convolutions and the fix
    before anything is trained or saved; channels-first, the same network trains."""
    monkeypatch.setenv("FCT_CPU_CHANNELS_LAST", "1")
    model = build_model(ModelSpec(arch="small_resnet", width=8, embedding_dim=16), 1, 10)
    before = [p.clone() for p in model.parameters()]
    checkpoint = tmp_path / "model.pt"
    cfg = TrainConfig(epochs=1, batch_size=64, lr=0.05, warmup_epochs=0)
    with pytest.raises(UserError, match=r"old: FCT_CPU_CHANNELS_LAST=1 would train "
                       r"backbone\.body\.5\.downsample\.0 \(8 input channels\).*unset "
                       "FCT_CPU_CHANNELS_LAST, or widen the network to 16 channels"):
        train(model, fashion_small, classification_loss(0.1), cfg, seed=0, device=CPU,
              checkpoint=checkpoint, desc="old")
    assert not checkpoint.exists()
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    monkeypatch.setenv("FCT_CPU_CHANNELS_LAST", "0")
    history = train(model, fashion_small, classification_loss(0.1), cfg, seed=0, device=CPU)
    assert len(history) == 1


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
              checkpoint=ckpt, on_batch_end=crash, checkpoint_every_s=0)
    assert load_torch(ckpt)["epoch"] == 1 and "optimizer" in load_torch(ckpt)
    resumed = _model(seed=99)  # fresh weights: everything must come from the checkpoint
    history = train(resumed, fashion_small, classification_loss(0.1), CFG, seed=3, device=CPU,
                    checkpoint=ckpt)
    assert [h["epoch"] for h in history] == [1, 2, 3]
    # Bit for bit: the same batches in the same order through the same kernels in one process.
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values(),
                            strict=True):
        assert torch.equal(a, b), name


def test_a_checkpoint_is_written_at_the_end_and_every_so_many_seconds(fashion_small, tmp_path,
                                                                      monkeypatch):
    written = []
    monkeypatch.setattr(loop, "save_torch", lambda state, path: written.append(
        (state["epoch"], "optimizer" in state)))
    train(_model(), fashion_small, classification_loss(0.1), CFG, seed=0, device=CPU,
          checkpoint=tmp_path / "a.pt")  # epochs far shorter than CHECKPOINT_EVERY_S
    assert written == [(3, False)]
    written.clear()
    train(_model(), fashion_small, classification_loss(0.1), CFG, seed=0, device=CPU,
          checkpoint=tmp_path / "b.pt", checkpoint_every_s=0)
    assert written == [(1, True), (2, True), (3, False)]


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
    assert not {"optimizer", "scheduler"} & set(load_torch(ckpt))  # the weights alone


def test_finished_history_loads_only_a_finished_training(fashion_small, tmp_path):
    """None without a checkpoint and for an interrupted one (training is left to do); a finished
    one's history and weights; another config's checkpoint refused, as train refuses it."""
    ckpt = tmp_path / "m.pt"
    assert finished_history(_model(), ckpt, CFG, seed=0) is None

    def crash(epoch, step):
        if epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(_model(), fashion_small, classification_loss(0.1), CFG, seed=0, device=CPU,
              checkpoint=ckpt, on_batch_end=crash, checkpoint_every_s=0)
    untouched = _model(seed=5)
    before = {k: v.clone() for k, v in untouched.state_dict().items()}
    assert finished_history(untouched, ckpt, CFG, seed=0) is None
    assert all(torch.equal(before[k], v) for k, v in untouched.state_dict().items())
    trained = _model()
    history = train(trained, fashion_small, classification_loss(0.1), CFG, seed=0, device=CPU,
                    checkpoint=ckpt)
    loaded = _model(seed=5)
    # exact: the checkpoint holds the trained tensors themselves, which loading reads back
    assert finished_history(loaded, ckpt, CFG, seed=0) == history
    for (name, a), b in zip(trained.state_dict().items(), loaded.state_dict().values(),
                            strict=True):
        assert torch.equal(a, b), name
    with pytest.raises(ValueError, match="other settings"):
        finished_history(_model(), ckpt, CFG, seed=1)


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


def test_a_capturable_optimizer_keeps_adams_step_count_as_capture_needs():
    """`capturable` reaches Adam (a whole-step CUDA graph needs it); SGD keeps no count to move."""
    params = list(_model().parameters())
    assert not loop.make_optimizer(params, TrainConfig(optimizer="adam")).defaults["capturable"]
    adam = loop.make_optimizer(params, TrainConfig(optimizer="adam"), capturable=True)
    assert isinstance(adam, torch.optim.Adam) and adam.defaults["capturable"]
    sgd = loop.make_optimizer(params, TrainConfig(), capturable=True)
    assert isinstance(sgd, torch.optim.SGD) and "capturable" not in sgd.defaults


class _ItemByItem(Dataset):
    """A TensorDataset's items under another type, so that `train` collates them one by one."""

    def __init__(self, tensors):
        self.tensors = tensors

    def __len__(self):
        return len(self.tensors[0])

    def __getitem__(self, index):
        return tuple(t[index] for t in self.tensors)


@pytest.mark.parametrize(("samples", "batch_size", "epoch", "world", "rank"), [
    (100, 32, 0, 1, 0), (100, 32, 4, 1, 0), (96, 32, 1, 1, 0), (20, 32, 0, 1, 0),
    (32, 32, 2, 1, 0), (100, 32, 0, 2, 1), (101, 16, 3, 4, 2), (64, 16, 1, 2, 0),
])
def test_tensor_batches_are_the_loader_batches(monkeypatch, samples, batch_size, epoch, world,
                                               rank):
    monkeypatch.setattr(distributed, "is_distributed", lambda: world > 1)
    monkeypatch.setattr(distributed, "world_size", lambda: world)
    monkeypatch.setattr(distributed, "rank", lambda: rank)
    cfg = TrainConfig(epochs=5, batch_size=batch_size)
    data = TensorDataset(torch.arange(samples), torch.randn(samples, 3))
    loader_batches = list(_loader(data, cfg, seed=7, epoch=epoch))
    tensor_batches = _epoch_batches(data, cfg, 7, epoch)
    assert len(tensor_batches) == len(loader_batches) == len(list(tensor_batches))
    for ours, theirs in zip(tensor_batches, loader_batches, strict=True):
        assert len(ours) == len(theirs) == 2
        assert all(torch.equal(a, b) for a, b in zip(ours, theirs, strict=True))
    indices = torch.cat([batch[0] for batch in tensor_batches])
    assert not torch.equal(indices, indices.sort().values)  # shuffled, so the match means something


def test_tensor_batches_train_the_weights_item_by_item_collation_trains():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(100, 6, generator=g)
    tensors = (x, x[:, :2] * 3 - x[:, 2:4])

    def fit(data):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(6, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 2))
        history = train(model, data, lambda m, batch: F.mse_loss(m(batch[0]), batch[1]),
                        TrainConfig(epochs=3, batch_size=32, optimizer="adam", lr=1e-2),
                        seed=5, device=CPU)
        return model, [h["loss"] for h in history]

    tensor_model, tensor_losses = fit(TensorDataset(*tensors))
    item_model, item_losses = fit(_ItemByItem(tensors))
    # Bit for bit: both paths feed the same values in batches of the same shape and order.
    assert tensor_losses == item_losses and tensor_losses[-1] < tensor_losses[0]
    for (name, a), b in zip(tensor_model.state_dict().items(), item_model.state_dict().values(),
                            strict=True):
        assert torch.equal(a, b), name
