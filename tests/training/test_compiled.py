import os
import subprocess
import sys

import pytest
import torch
from torch import nn

from fctlib.data.batches import ImageBatches
from fctlib.data.splits import subsample_per_class
from fctlib.data.transforms import CropFlipTransform
from fctlib.errors import UserError
from fctlib.models.backbones import build_model
from fctlib.models.spec import ModelSpec
from fctlib.training.compiled import LossStep, compile_mode
from fctlib.training.config import TrainConfig
from fctlib.training.loop import classification_loss, train

CPU = torch.device("cpu")
CFG = TrainConfig(epochs=2, batch_size=32, lr=0.05, warmup_epochs=0, weight_decay=1e-4)


def _model():
    torch.manual_seed(0)
    return build_model(ModelSpec(arch="small_cnn", width=8, embedding_dim=16), 1, 10)


@pytest.fixture(scope="module")
def fashion_small(fashion_mnist):
    images = subsample_per_class(fashion_mnist.train, 16, seed=0)
    return ImageBatches(images, CropFlipTransform(28, 1, fashion_mnist.mean, fashion_mnist.std))


def test_compile_mode_defaults_to_cuda_only_and_names_bad_values(monkeypatch):
    monkeypatch.delenv("FCT_COMPILE", raising=False)
    assert compile_mode(CPU) is None
    assert compile_mode(torch.device("cuda")) == "reduce-overhead"
    monkeypatch.setenv("FCT_COMPILE", "0")
    assert compile_mode(torch.device("cuda")) is None
    monkeypatch.setenv("FCT_COMPILE", "reduce-overhead")
    assert compile_mode(CPU) == "reduce-overhead"
    monkeypatch.setenv("FCT_COMPILE", "fast")
    with pytest.raises(UserError, match="FCT_COMPILE='fast'"):  # `fct` prints it as one line
        compile_mode(CPU)


def test_h_s_compile_mode_follows_fct_compile_unless_set_apart(monkeypatch):
    cuda = torch.device("cuda")
    monkeypatch.delenv("FCT_COMPILE", raising=False)
    monkeypatch.delenv("FCT_COMPILE_H", raising=False)
    assert compile_mode(cuda, h_fit=True) == "reduce-overhead"
    monkeypatch.setenv("FCT_COMPILE", "max-autotune-no-cudagraphs")
    assert compile_mode(cuda, h_fit=True) == "max-autotune-no-cudagraphs"
    monkeypatch.setenv("FCT_COMPILE_H", "0")  # what the GPU check sets when h's fits disagree
    assert compile_mode(cuda, h_fit=True) is None
    assert compile_mode(cuda) == "max-autotune-no-cudagraphs"  # the networks stay compiled
    monkeypatch.setenv("FCT_COMPILE_H", "graphs")
    with pytest.raises(UserError, match="FCT_COMPILE_H='graphs'"):
        compile_mode(cuda, h_fit=True)


@pytest.mark.filterwarnings("error::RuntimeWarning")  # a fallback to eager would prove nothing
def test_compiled_training_computes_the_eager_losses(fashion_small, monkeypatch):
    """Two epochs of real images, compiled (inductor's C++ kernels on this CPU) and eager: the same
    per-epoch losses up to float32 reassociation (inductor fuses and reorders reductions)."""
    histories = {}
    for value in ("0", "1"):
        monkeypatch.setenv("FCT_COMPILE", value)
        histories[value] = train(_model(), fashion_small, classification_loss(0.1), CFG, seed=0,
                                 device=CPU)
    eager = [h["loss"] for h in histories["0"]]
    compiled = [h["loss"] for h in histories["1"]]
    assert compiled == pytest.approx(eager, rel=1e-4), (eager, compiled)
    assert compiled[1] < compiled[0]


def test_more_networks_of_one_class_than_dynamo_s_default_limit_stay_compiled(monkeypatch):
    """Six h's of different widths, each through its BatchNorm freeze: 12 compiled entries of
    Transformation.forward, past dynamo's default 8 (after which it would run them eagerly)."""
    from torch._dynamo import config as dynamo
    from torch._dynamo.eval_frame import _debug_get_cache_entry_list

    from fctlib.methods.fct import train_transformation
    from fctlib.models.transformation import Transformation

    real_compile = torch.compile  # dynamo's tracing and guards, without inductor's seconds
    monkeypatch.setattr(torch, "compile", lambda net, mode: real_compile(net, backend="eager"))
    monkeypatch.setenv("FCT_COMPILE_H", "default")
    features = [torch.randn(64, n).numpy() for n in (4, 2, 3)]
    cfg = TrainConfig(epochs=2, batch_size=32, optimizer="adam", lr=1e-3, warmup_epochs=0)
    # set by hand: monkeypatch's undo would delete the setting, which dynamo's config then hides
    limit, dynamo.recompile_limit = dynamo.recompile_limit, 8
    torch._dynamo.reset()
    try:
        for width in range(1, 7):
            h = Transformation(4, 2, 3, branch_widths=(width,), mixer_widths=(width,))
            train_transformation(h, *features, cfg, seed=0, device=CPU)
        entries = _debug_get_cache_entry_list(Transformation.forward.__code__)
        assert len(entries) == 12
    finally:
        dynamo.recompile_limit = limit
        torch._dynamo.reset()  # no entries compiled by the eager backend left for later tests


def test_failed_compilation_falls_back_to_eager(monkeypatch):
    class Broken(nn.Module):
        def forward(self, x):
            raise RuntimeError("backend compiler failed\nmore detail")

    monkeypatch.setattr(torch, "compile", lambda net, mode: Broken())
    net = nn.Linear(3, 1)
    step = LossStep(lambda model, batch: model(batch).sum(), net, CPU, "default")
    assert step.compiled
    batch = torch.ones(2, 3)
    with pytest.warns(RuntimeWarning, match="training eagerly: backend compiler failed"):
        loss = step(batch)
    assert not step.compiled
    assert torch.equal(loss, net(batch).sum())


def test_a_cpu_trains_a_narrow_strided_1x1_convolution_eagerly(monkeypatch):
    """Compiled on a CPU, convolutions run channels-last, where oneDNN 3.12 miscomputes the
    weight gradient of a 1x1 stride-2 convolution with few input channels
    (uxlfoundation/oneDNN#6035): such a network is not compiled there, and the warning says why."""
    def refuse(net, mode):
        raise AssertionError("compiled")

    monkeypatch.setattr(torch, "compile", refuse)
    net = nn.Sequential(nn.Conv2d(3, 8, 1, stride=2), nn.Flatten())
    with pytest.warns(RuntimeWarning, match=r"would train 0 \(3 input channels\) "
                      r"channels-last.*oneDNN#6035\): training eagerly"):
        step = LossStep(lambda model, batch: model(batch).sum(), net, CPU, "default")
    assert not step.compiled and step.mode is None
    batch = torch.ones(2, 3, 4, 4)
    assert torch.equal(step(batch), net(batch).sum())


def test_errors_of_the_step_itself_are_raised_when_eager():
    def bad_step(model, batch):
        raise ValueError("shape mismatch")

    with pytest.raises(ValueError, match="shape mismatch"):
        LossStep(bad_step, nn.Linear(3, 1), CPU, None)(torch.ones(2, 3))


@pytest.mark.parametrize("env, folder", [
    ({}, None), ({"ATEN_CPU_CAPABILITY": "avx2"}, "aten_cpu_capability_avx2"),
    ({"ATEN_CPU_CAPABILITY": "avx2", "TORCHINDUCTOR_CACHE_DIR": "/elsewhere"}, "/elsewhere")])
def test_a_steered_kernel_setting_compiles_into_a_cache_of_its_own(env, folder):
    code = "import os, fctlib; print(os.environ.get('TORCHINDUCTOR_CACHE_DIR'))"
    clean = {k: v for k, v in os.environ.items()
             if k not in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS",
                          "TORCHINDUCTOR_CACHE_DIR")}
    out = subprocess.run([sys.executable, "-c", code], env={**clean, **env}, capture_output=True,
                         text=True, check=True).stdout.strip()
    if folder is None:
        assert out == "None"  # torch's default cache, untouched
    else:
        assert out.endswith(folder)
