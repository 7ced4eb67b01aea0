"""Provenance of a result: git commit, preset, seeds, package versions, machine, command, time."""

from __future__ import annotations

import datetime as dt
import os
import platform
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from fctlib.paths import project_root

PACKAGES = ("torch", "torchvision", "numpy", "faiss-cpu", "pandas", "papermill")
# environment variables that choose other CPU kernels (and so other roundings) when set
KERNEL_ENV = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS",
              "MKL_CBWR", "FCT_COMPILE", "FCT_COMPILE_H", "FCT_CPU_BF16", "FCT_CPU_FLUSH_DENORMAL",
              "FCT_CPU_CHANNELS_LAST")


def git_commit() -> str:
    """The checked-out commit (`-dirty` when tracked code or params changed), or `unknown`."""
    def git(*args):
        return subprocess.run(["git", *args], cwd=project_root(), capture_output=True,
                              text=True, timeout=10)

    try:
        head = git("rev-parse", "--short=12", "HEAD")
        if head.returncode != 0:
            return "unknown"
        # results/ is what a run writes, not what produced it
        dirty = git("status", "--porcelain", "--untracked-files=no", "--", ".",
                    ":(exclude)results").stdout.strip()
        return head.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def package_versions() -> dict[str, str]:
    """Installed versions of the packages that shape the numbers."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    versions["python"] = platform.python_version()
    return versions


def machine() -> str:
    """A one-line description of the machine (CPU count, GPU if any, OS)."""
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{platform.machine()}, {os.cpu_count()} CPU cores, {gpu}, {platform.system()}"


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux), or what `platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpu_driver() -> str:
    """The NVIDIA driver's version as `nvidia-smi` reports it, or `unknown`."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    lines = out.stdout.strip().splitlines() if out.returncode == 0 else []
    return lines[0] if lines else "unknown"


def compute() -> dict[str, str]:
    """What decides the arithmetic: the CPU and the kernels torch picked on it (ATen's
    capability, e.g. AVX512 or AVX2), torch's BLAS and oneDNN, threads, the variables that
    steer those kernels where set, and the GPU with its driver, training's compile mode and the
    kernel choice (`runtime.set_gpu_kernels`) when one is used. Two runs agree bit for bit only
    where all of these agree."""
    import torch

    config = torch.__config__.show()
    blas = re.search(r"BLAS_INFO=(\w+)", config)
    mkl = re.search(r"Math Kernel Library Version ([\w.]+)", config)
    onednn = re.search(r"MKL-DNN v([\d.]+)", config)
    info = {
        "cpu": cpu_model(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "blas": " ".join(filter(None, [blas and blas.group(1), mkl and mkl.group(1)])) or "unknown",
        "onednn": onednn.group(1) if onednn else "absent",
        "threads": str(torch.get_num_threads()),
    }
    steered = [f"{name}={os.environ[name]}" for name in KERNEL_ENV if os.environ.get(name)]
    if steered:
        info["kernel_env"] = " ".join(steered)
    if torch.cuda.is_available():
        from fctlib.training.compiled import compile_mode
        from fctlib.training.runtime import gpu_kernels_deterministic

        info.update(gpu=torch.cuda.get_device_name(0), gpu_driver=gpu_driver(),
                    cuda=str(torch.version.cuda),
                    training=compile_mode(torch.device("cuda")) or "eager",
                    h_training=compile_mode(torch.device("cuda"), h_fit=True) or "eager",
                    gpu_kernels="deterministic" if gpu_kernels_deterministic() else "autotuned")
    return info


def provenance(preset: str, seeds: list[int], command: str | None = None,
               wall_seconds: float | None = None) -> dict:
    """Everything a table needs to say where it came from."""
    return {
        "git_commit": git_commit(),
        "preset": preset,
        "seeds": list(seeds),
        "packages": package_versions(),
        "machine": machine(),
        "compute": compute(),
        "command": portable_command(command or _command_line()),
        "wall_seconds": None if wall_seconds is None else round(wall_seconds, 1),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def _command_line() -> str:
    program = "fct" if sys.argv[0].endswith(("cli.py", "fct")) else sys.argv[0]
    return " ".join([program, *sys.argv[1:]])


def portable_command(command: str) -> str:
    """The command without this machine's absolute paths: those in the project made relative,
    others named by their option (`--runs-dir <runs-dir>`) or `<path>`."""
    root, words = project_root(), command.split(" ")
    for i, word in enumerate(words):
        if word.startswith("/"):
            path = Path(word)
            if path.is_relative_to(root):
                words[i] = str(path.relative_to(root)) or "."
            else:
                option = words[i - 1] if i and words[i - 1].startswith("--") else ""
                words[i] = f"<{option.lstrip('-')}>" if option else "<path>"
    return " ".join(words)


def portable_text(text: str) -> str:
    """`text` (a data source's description) with each absolute path made project-relative, or
    shown as `<path>/` and its last component when it lies outside the project."""
    root = project_root()

    def portable(match: re.Match) -> str:
        path = Path(match.group(0))
        return str(path.relative_to(root)) if path.is_relative_to(root) else f"<path>/{path.name}"

    return re.sub(r"(?<![\w.])/[^\s,;()]+", portable, text)


def provenance_comment(info: dict) -> str:
    """The provenance as `# key: value` lines, for the head of a CSV or Markdown table."""
    lines = []
    for key, value in info.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k} {v}" for k, v in value.items())
        lines.append(f"# {key}: {value}")
    return "\n".join(lines) + "\n"
