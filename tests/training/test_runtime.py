import os
import subprocess
import sys

import pytest
import torch

from fctlib.training.runtime import cpu_threads, set_cpu_threads


def test_cpu_threads_share_the_usable_cpus_among_torchrun_processes(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)))
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert cpu_threads() == 16
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    assert cpu_threads() == 4
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "32")
    assert cpu_threads() == 1


def test_cpu_threads_follow_omp_num_threads_when_set(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert cpu_threads() == 3


def test_set_cpu_threads_sets_torch(monkeypatch):
    before = torch.get_num_threads()
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    try:
        assert set_cpu_threads() == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_importing_fctlib_makes_waiting_openmp_threads_sleep():
    script = "import os, fctlib, torch; print(os.environ['OMP_WAIT_POLICY'])"
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    for given, expected in ((None, "PASSIVE"), ("ACTIVE", "ACTIVE")):  # a user's value is kept
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                             check=True, env={**env, **({"OMP_WAIT_POLICY": given} if given
                                                        else {})})
        assert out.stdout.strip() == expected


@pytest.mark.parametrize("value", ["yes", "2", ""])
@pytest.mark.parametrize("variable, reader", [("FCT_DETERMINISTIC", "set_gpu_kernels"),
                                              ("FCT_CPU_BF16", "cpu_bf16"),
                                              ("FCT_CPU_FLUSH_DENORMAL", "cpu_flush_denormal"),
                                              ("FCT_CPU_CHANNELS_LAST", "cpu_channels_last")])
def test_a_bad_switch_is_one_line_naming_the_values(monkeypatch, variable, reader, value):
    from fctlib.errors import UserError
    from fctlib.training import runtime

    monkeypatch.setenv(variable, value)
    with pytest.raises(UserError, match=rf"{variable}=.* is not 0 or 1") as err:
        getattr(runtime, reader)()
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("value", ["0", "1"])
def test_gpu_kernel_choice_leaves_a_cpu_run_as_it_was(monkeypatch, value):
    """CPU kernels are deterministic either way: the switch touches no CPU setting."""
    from fctlib.training.runtime import gpu_kernels_deterministic, set_gpu_kernels

    monkeypatch.setenv("FCT_DETERMINISTIC", value)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert set_gpu_kernels() is gpu_kernels_deterministic() is (value == "1")
    assert not torch.are_deterministic_algorithms_enabled()


def test_a_cpu_computes_in_float32_unless_fct_cpu_bf16_is_1(monkeypatch):
    from fctlib.training.runtime import autocast

    layer, x = torch.nn.Linear(4, 3), torch.randn(2, 4)
    monkeypatch.delenv("FCT_CPU_BF16", raising=False)
    with autocast(torch.device("cpu")):
        assert layer(x).dtype == torch.float32
    monkeypatch.setenv("FCT_CPU_BF16", "1")
    with autocast(torch.device("cpu")):
        assert layer(x).dtype == torch.bfloat16


def test_a_cpu_lays_out_images_and_convolutions_channels_last_only_when_asked(monkeypatch):
    """A GPU always uses channels-last; a CPU under FCT_CPU_CHANNELS_LAST=1; vectors keep theirs."""
    from fctlib.training.runtime import channels_last, prepare_model, to_device

    cpu, layout = torch.device("cpu"), torch.channels_last
    monkeypatch.delenv("FCT_CPU_CHANNELS_LAST", raising=False)
    assert channels_last(torch.device("cuda")) and not channels_last(cpu)
    images, vectors = torch.randn(2, 3, 8, 8), torch.randn(2, 3)
    conv = prepare_model(torch.nn.Conv2d(3, 4, 3), cpu)
    assert not conv.weight.is_contiguous(memory_format=layout)
    assert not to_device(images, cpu).is_contiguous(memory_format=layout)
    monkeypatch.setenv("FCT_CPU_CHANNELS_LAST", "1")
    conv = prepare_model(conv, cpu)
    batch = to_device((images, vectors), cpu)
    assert conv.weight.is_contiguous(memory_format=layout)
    assert batch[0].is_contiguous(memory_format=layout) and torch.equal(batch[0], images)
    assert batch[1].is_contiguous() and torch.equal(batch[1], vectors)


def test_narrow_strided_1x1_convolutions_are_named_with_their_input_channels():
    """Only 1x1 convolutions with a stride above 1 and fewer than 16 input channels: those whose
    channels-last CPU backward oneDNN 3.12 miscomputes (uxlfoundation/oneDNN#6035)."""
    from fctlib.training.runtime import narrow_strided_1x1_convolutions

    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 1, stride=2),         # named
        torch.nn.Conv2d(8, 8, 1),                   # stride 1
        torch.nn.Conv2d(8, 15, 3, stride=2),        # 3x3
        torch.nn.Sequential(torch.nn.Conv2d(15, 16, 1, stride=(1, 2))),  # named
        torch.nn.Conv2d(16, 16, 1, stride=2))       # 16 input channels
    assert narrow_strided_1x1_convolutions(net) == ["0 (3 input channels)",
                                                    "3.0 (15 input channels)"]


def test_a_run_refuses_a_bad_channels_last_switch_before_any_work(fashion_mnist, monkeypatch,
                                                                  tmp_path):
    from fctlib.errors import UserError
    from fctlib.suite.run import Run

    monkeypatch.setenv("FCT_CPU_CHANNELS_LAST", "yes")
    with pytest.raises(UserError, match="FCT_CPU_CHANNELS_LAST"):
        Run("smoke", 0, runs_dir=tmp_path, device=torch.device("cpu"))
    assert not any(tmp_path.iterdir())


def test_bf16_cpu_models_never_stand_in_for_float32_ones(fashion_mnist, monkeypatch, tmp_path):
    """A CPU run in bfloat16 keys its artifacts apart; float32 keys stay what they were."""
    from fctlib.suite.run import Run

    def old_key() -> str:
        run = Run("smoke", 0, runs_dir=tmp_path, device=torch.device("cpu"))
        return run.store.key(run.artifact("old"))

    monkeypatch.delenv("FCT_CPU_BF16", raising=False)
    float32 = old_key()
    monkeypatch.setenv("FCT_CPU_BF16", "0")
    assert old_key() == float32
    monkeypatch.setenv("FCT_CPU_BF16", "1")
    assert old_key() != float32


def test_a_run_flushes_denormal_floats_only_when_asked(fashion_mnist, monkeypatch, tmp_path):
    """1e-39 is a denormal float32: kept by default, zero under FCT_CPU_FLUSH_DENORMAL=1 once a
    Run has started (as every notebook's does). Zero is exact (flushing is IEEE-defined on any
    x86 kernel); rel 1e-3 for the kept value covers float32's denormal spacing (1.4e-45, about
    1e-6 relative here)."""
    from fctlib.suite.run import Run

    def product_after_a_run_starts() -> float:
        Run("smoke", 0, runs_dir=tmp_path, device=torch.device("cpu"))
        return float(torch.tensor([1e-39]) * torch.tensor([1.0]))

    try:
        monkeypatch.delenv("FCT_CPU_FLUSH_DENORMAL", raising=False)
        assert product_after_a_run_starts() == pytest.approx(1e-39, rel=1e-3)
        monkeypatch.setenv("FCT_CPU_FLUSH_DENORMAL", "1")
        assert product_after_a_run_starts() == 0.0
        monkeypatch.setenv("FCT_CPU_FLUSH_DENORMAL", "0")
        assert product_after_a_run_starts() == pytest.approx(1e-39, rel=1e-3)
    finally:
        torch.set_flush_denormal(False)
