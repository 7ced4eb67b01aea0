"""Data-parallel training: two CPU processes (gloo, loopback) must train what one process trains."""

import os
import socket

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from torch import nn
from torch.utils.data import TensorDataset

from fctlib.methods.side_info import SimCLRModel, simclr_loss
from fctlib.suite.cli import main, train_step
from fctlib.suite.run import Run
from fctlib.training import distributed
from fctlib.training.checkpoint import load_torch
from fctlib.training.config import TrainConfig
from fctlib.training.loop import _RankShare, classification_loss, train

CPU = torch.device("cpu")
WORLD = 2
CFG = TrainConfig(epochs=3, batch_size=16, lr=0.2, momentum=0.9, weight_decay=1e-3,
                  warmup_epochs=1, label_smoothing=0.1)
TORCHRUN_ENV = ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


class TinyNet(nn.Module):
    """An MLP without BatchNorm (so per-process batch statistics play no part); (embedding,
    logits) like the suite's models."""

    def __init__(self, seed: int):
        super().__init__()
        torch.manual_seed(seed)
        self.body = nn.Sequential(nn.Linear(12, 32), nn.ReLU(), nn.Linear(32, 8))
        self.classifier = nn.Linear(8, 4, bias=False)

    def forward(self, x):
        embedding = self.body(x)
        return embedding, self.classifier(embedding)


def _data() -> TensorDataset:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 12, generator=g)
    return TensorDataset(x, (x[:, :4].argmax(1) + torch.randint(0, 2, (64,), generator=g)) % 4)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _join(rank: int, port: int) -> None:
    torch.set_num_threads(1)
    os.environ.update(WORLD_SIZE=str(WORLD), RANK=str(rank), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    assert distributed.init_from_env() and distributed.init_from_env()  # idempotent


def _worker(rank: int, port: int, folder: str) -> None:
    _join(rank, port)
    out = {"rank": distributed.rank(), "world": distributed.world_size()}
    try:
        train(TinyNet(0), _data(), classification_loss(0.1),
              TrainConfig(epochs=1, batch_size=15), seed=0, device=CPU)
    except ValueError as err:
        out["indivisible"] = str(err)

    def crash(epoch, step):
        if epoch == 1 and step == 1:
            raise KeyboardInterrupt

    ckpt = os.path.join(folder, "ckpt", "model.pt")
    # each rank starts from other weights: DDP must broadcast rank 0's
    first = TinyNet(100 + rank)
    try:
        train(first, _data(), classification_loss(0.1), CFG, seed=3, device=CPU,
              checkpoint=ckpt, on_batch_end=crash, checkpoint_every_s=0)
    except KeyboardInterrupt:
        out["interrupted_at_epoch"] = load_torch(ckpt)["epoch"]
    distributed.barrier()
    resumed = TinyNet(7)  # fresh weights: everything must come from the checkpoint
    out["history"] = train(resumed, _data(), classification_loss(0.1), CFG, seed=3, device=CPU,
                           checkpoint=ckpt)
    out["weights"] = resumed.state_dict()

    # SimCLR calls the model twice per step (BatchNorm included): DDP must accept that
    torch.manual_seed(rank)
    simclr = SimCLRModel(nn.Sequential(nn.Linear(12, 8), nn.ReLU()), 8, projection_dim=16)
    views = TensorDataset(_data().tensors[0], _data().tensors[0].flip(1))
    train(simclr, views, simclr_loss(0.5), TrainConfig(epochs=1, batch_size=16, optimizer="adam",
                                                       lr=1e-3), seed=0, device=CPU)
    out["simclr"] = simclr.state_dict()
    torch.save(out, os.path.join(folder, f"rank{rank}.pt"))
    distributed.shutdown()


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ddp")
    mp.spawn(_worker, args=(_free_port(), str(folder)), nprocs=WORLD, join=True)
    return folder, [torch.load(folder / f"rank{r}.pt") for r in range(WORLD)]


@pytest.fixture
def single_process(monkeypatch):
    for name in TORCHRUN_ENV:
        monkeypatch.delenv(name, raising=False)


def test_two_processes_train_the_single_process_weights(two_ranks, single_process):
    folder, ranks = two_ranks
    reference = TinyNet(100)
    history = train(reference, _data(), classification_loss(0.1), CFG, seed=3, device=CPU)
    assert [r["rank"] for r in ranks] == [0, 1] and ranks[0]["world"] == WORLD
    for r in ranks:
        assert r["interrupted_at_epoch"] == 1
        for name, value in reference.state_dict().items():
            torch.testing.assert_close(r["weights"][name], value, rtol=0, atol=1e-5)
        losses = [h["loss"] for h in r["history"]]
        assert losses == pytest.approx([h["loss"] for h in history], abs=1e-5)
    start = TinyNet(100).state_dict()
    moved = max((ranks[0]["weights"][k] - v).abs().max() for k, v in start.items())
    assert moved > 0.01  # training changed the weights, so the comparison means something
    saved = load_torch(folder / "ckpt" / "model.pt")  # rank 0's weights, saved: no arithmetic
    assert saved["epoch"] == CFG.epochs
    for name, value in saved["model"].items():
        assert torch.equal(value, ranks[0]["weights"][name]), name
    assert sorted(p.name for p in (folder / "ckpt").iterdir()) == ["model.pt"]


def test_processes_agree_after_two_forwards_per_step(two_ranks):
    _, ranks = two_ranks
    # Bit for bit: every rank applies the same all-reduced gradients to the same weights.
    for name, value in ranks[0]["simclr"].items():
        assert torch.equal(value, ranks[1]["simclr"][name]), name


def test_batch_size_must_split_over_processes(two_ranks):
    _, ranks = two_ranks
    assert "batch_size 15 does not split evenly over 2 processes" in ranks[0]["indivisible"]


def test_rank_share_gives_each_process_its_part_of_every_batch():
    batches = [[5, 1, 7, 3], [0, 2, 6, 4]]
    shares = [list(_RankShare(batches, r, 2)) for r in range(2)]
    assert shares == [[[5, 1], [0, 2]], [[7, 3], [6, 4]]]
    assert len(_RankShare(batches, 1, 2)) == 2


def test_helpers_in_a_single_process(single_process):
    assert distributed.init_from_env() is False
    assert (distributed.world_size(), distributed.rank()) == (1, 0)
    assert distributed.is_main_process() and not distributed.is_distributed()
    distributed.barrier()
    assert distributed.sum_over_processes([1.5, 2.0]) == [1.5, 2.0]
    with distributed.main_process_first():
        pass
    distributed.shutdown()


def test_missing_torchrun_variables_are_named(single_process, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(RuntimeError, match="LOCAL_RANK, MASTER_ADDR, MASTER_PORT not set"):
        distributed.init_from_env()


# ------------------------------------------------------------------ the `fct train-step` command

TINY_PRESET = """
name: tiny
data:
  dataset: {{name: npz, root: {root}, layout: NHWC}}
  tune_fraction: 0.25
  crop_padding: 1
old:
  model: {{width: 2, embedding_dim: 4}}
  training: {{epochs: 1, batch_size: 8, warmup_epochs: 0}}
new:
  model: {{width: 2, embedding_dim: 4}}
  training: {{epochs: 1, batch_size: 8, warmup_epochs: 0}}
side_info:
  model: {{width: 2, embedding_dim: 4}}
  training: {{epochs: 1, batch_size: 8, warmup_epochs: 0}}
  ablation_dims: [2]
transformation:
  branch_widths: [8]
  mixer_widths: [8]
  training: {{epochs: 2, batch_size: 8, warmup_epochs: 0}}
methods:
  bct:
    sweep: [{{variant: openbct, weights: [1]}}]
"""


@pytest.fixture(scope="module")
def tiny_preset(tmp_path_factory):
    """A preset on 8x8 RGB images of 4 classes (16 train, 4 test each) and tiny networks."""
    folder = tmp_path_factory.mktemp("tiny")
    rng = np.random.default_rng(0)
    arrays = {}
    for split, per_class in (("train", 16), ("test", 4)):
        labels = np.repeat(np.arange(4), per_class)
        images = rng.integers(0, 120, (len(labels), 8, 8, 3))
        for image, label in zip(images, labels, strict=True):
            image[..., label % 3] += 100 + 30 * (label // 3)  # a class-dependent colour
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = images.astype(np.uint8), labels
    np.savez(folder / "tiny.npz", **arrays)
    path = folder / "tiny.yaml"
    path.write_text(TINY_PRESET.format(root=folder / "tiny.npz"))
    return path


def _cli_worker(rank: int, port: int, preset: str, runs: str) -> None:
    _join(rank, port)
    assert main(["train-step", "--preset", preset, "--step", "h:0", "h:4",
                 "--runs-dir", runs]) == 0


def _checkpoints(runs):
    return {p: p.stat().st_mtime_ns for p in runs.rglob("model.pt")}


def test_train_step_under_two_processes_leaves_what_one_process_loads(
    tiny_preset, tmp_path, single_process
):
    runs = tmp_path / "runs"
    mp.spawn(_cli_worker, args=(_free_port(), str(tiny_preset), str(runs)), nprocs=WORLD)
    folders = sorted(p.parent.name.split("-")[0] for p in _checkpoints(runs))
    assert folders == ["new", "old", "side", "transformation", "transformation"]
    written = _checkpoints(runs)
    run = Run(str(tiny_preset), 0, runs_dir=runs, device=CPU)
    histories = train_step(run, ["h:0", "h:4"])  # loads every model, trains nothing
    assert _checkpoints(runs) == written
    assert sorted(histories) == ["h:0", "h:4"]
    assert all(len(h) == 2 for h in histories.values())
    bct = train_step(run, ["bct:openbct:1"])  # the old model trained by two processes feeds BCT
    assert list(bct) == ["bct:openbct:1.0"] and len(bct["bct:openbct:1.0"]) == 1


def test_train_step_command_in_one_process(tiny_preset, tmp_path, single_process, capsys):
    runs = tmp_path / "runs"
    args = ["train-step", "--preset", str(tiny_preset), "--step", "old", "--runs-dir", str(runs)]
    assert main(args) == 0
    assert "old: 1 epochs, last loss" in capsys.readouterr().out
    written = _checkpoints(runs)
    assert len(written) == 1
    assert main(args) == 0 and _checkpoints(runs) == written  # loaded, not trained again
    run = Run(str(tiny_preset), 0, runs_dir=runs, device=CPU)
    with pytest.raises(ValueError, match="unknown side-info source"):
        train_step(run, ["side:4:imagenet"])
    with pytest.raises(ValueError, match="unknown artifact 'everything'"):
        train_step(run, ["everything"])
