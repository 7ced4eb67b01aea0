"""The `fct` command as an operator meets it: every refused input ends with one line on stderr, a
non-zero exit code and nothing changed on disk; --debug shows the traceback; Ctrl-C exits 130 and
the rerun completes."""

import errno
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import numpy as np
import psutil
import pytest
import torch

import fctlib.deploy.cluster
from fctlib.deploy.gallery_store import write_gallery_store
from fctlib.deploy.upgrade import upgrade_gallery
from fctlib.experiment.config import PresetError
from fctlib.io import atomic_write
from fctlib.models.transformation import Transformation, save_transformation
from fctlib.suite.cli import main as fct

N, OLD, SIDE, NEW, SHARD = 300, 8, 4, 6, 100


def snapshot(folder):
    """Every file and folder under `folder`: files with their mtime and sha256."""
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns,
                                         hashlib.sha256(p.read_bytes()).hexdigest())
            if p.is_file() else "dir" for p in sorted(folder.rglob("*"))}


def write_preset(tmp_path, text, name="bad.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def write_store(tmp_path):
    """A 300-item store in three shards, an h for it, and its finished upgrade (ids 0..299)."""
    rng = np.random.default_rng(0)
    store = write_gallery_store(tmp_path / "store", np.arange(N),
                                rng.normal(size=(N, OLD)).astype(np.float32),
                                rng.normal(size=(N, SIDE)).astype(np.float32), shard_size=SHARD)
    torch.manual_seed(0)
    h = save_transformation(Transformation(OLD, SIDE, NEW, (16,), (16,)).eval(),
                            tmp_path / "h.pt")
    upgrade_gallery(store.folder, h, tmp_path / "up", log=lambda message: None)
    return store.folder, h, tmp_path / "up"


# Each case: (set-up in tmp_path -> argv, text the one line must hold). Presets go through every
# command that reads one; gallery cases work on write_store's files.
def seeds_empty(tmp_path, command):
    preset = write_preset(tmp_path, "name: x\nseeds: []\n")
    return {"reproduce": ["reproduce", "--preset", preset],
            "all-seeds": ["reproduce", "--preset", preset, "--all-seeds"],
            "explore": ["explore", "--preset", preset, "--label", "l"],
            "train-step": ["train-step", "--preset", preset, "--step", "old"]}[command]


PRESET_CASES = {
    "seeds-empty-reproduce": (lambda t: seeds_empty(t, "reproduce"), "seeds is empty"),
    "seeds-empty-all-seeds": (lambda t: seeds_empty(t, "all-seeds"), "seeds is empty"),
    "seeds-empty-explore": (lambda t: seeds_empty(t, "explore"), "seeds is empty"),
    "seeds-empty-train-step": (lambda t: seeds_empty(t, "train-step"), "seeds is empty"),
    "name-outside-results": (
        lambda t: ["reproduce", "--preset", write_preset(t, "name: ../../x\n")],
        "must be a plain name"),
    "unknown-key": (
        lambda t: ["explore", "--preset", "smoke", "--label", "l", "--set", "old.model.widht=16"],
        "unknown key 'old.model.widht'"),
    "missing-preset": (lambda t: ["reproduce", "--preset", "nope"], "pass one of"),
    "malformed-set": (lambda t: ["explore", "--label", "l", "--set", "old.model.width"],
                      "--set expects KEY=VALUE"),
    "old-classes-outside": (
        lambda t: ["reproduce", "--preset",
                   write_preset(t, "name: x\ndata: {old_classes: [99]}\n")],
        "data.old_classes: old_classes [99] are not class ids in [0, 10)"),
    "old-classes-outside-explore": (
        lambda t: ["explore", "--preset", "smoke", "--label", "l", "--set",
                   "data.old_classes=[99]"],
        "data.old_classes"),
    "fashion-mnist-root-missing": (
        lambda t: ["reproduce", "--preset", write_preset(
            t, f"name: x\ndata: {{dataset: {{root: {t / 'nowhere'}}}}}\n")],
        "is not a folder"),
    "npz-train-lacks-new-classes": (
        lambda t: ["reproduce", "--preset", write_preset(
            t, f"name: x\ndata: {{dataset: {{name: npz, root: {write_npz(t)}}}, "
               "old_classes: [0, 1]}\n")],
        "train split has no images of classes [2, 3]"),
    "runs-dir-is-a-file": (
        lambda t: ["reproduce", "--preset", "smoke", "--runs-dir", str(a_file(t))],
        "is a file"),
    "results-dir-under-a-file": (
        lambda t: ["reproduce", "--preset", "smoke", "--results-dir", str(a_file(t) / "r")],
        "lies under the file"),
    "export-out-is-a-file": (
        lambda t: ["export-gallery", "--preset", "smoke", "--out", str(a_file(t)),
                   "--runs-dir", str(t / "runs")], "is a file"),
    "export-shard-size-zero": (
        lambda t: ["export-gallery", "--out", str(t / "o"), "--shard-size", "0"],
        "must be at least 1"),
    "export-side-dim-negative": (
        lambda t: ["export-gallery", "--out", str(t / "o"), "--side-dim", "-3"],
        "--side-dim: must be at least 0, got -3"),
    "label-outside-results": (
        lambda t: ["explore", "--preset", "smoke", "--label", "../../../../x"],
        "--label '../../../../x' must be a plain name"),
    "label-empty": (lambda t: ["explore", "--preset", "smoke", "--label", ""],
                    "--label '' must be a plain name"),
    "empty-preset": (lambda t: ["reproduce", "--preset", write_preset(t, "")],
                     "bad.yaml is empty"),
    "comments-only-preset": (
        lambda t: ["explore", "--preset", write_preset(t, "# nothing yet\n"), "--label", "l"],
        "bad.yaml is empty"),
    "train-step-unknown-artifact": (
        lambda t: ["train-step", "--preset", "smoke", "--step", "old", "bogus"],
        "unknown artifact 'bogus'; artifact names are old, new, bct:<variant>:<weight>"),
    "train-step-bad-argument": (
        lambda t: ["train-step", "--preset", "smoke", "--step", "old", "h:-3"],
        "artifact 'h:-3': h's side-info size must be >= 0, got -3; artifact names are"),
}


def write_npz(tmp_path):
    """Four classes, of which the train split holds only 0 and 1."""
    images = np.zeros((8, 6, 6), np.uint8)
    np.savez(tmp_path / "d.npz", train_images=images[:4], train_labels=[0, 1, 0, 1],
             test_images=images[4:], test_labels=[0, 1, 2, 3])
    return tmp_path / "d.npz"


def a_file(tmp_path):
    path = tmp_path / "a-file"
    path.write_text("not a folder")
    return path


def truncated_transformation(store, h, up):
    h.write_bytes(h.read_bytes()[: h.stat().st_size // 2])
    return ["upgrade", str(store), "--transformation", str(h), "--out", str(up.parent / "o")], \
        "damaged or truncated"


def duplicate_ids(store, h, up):
    np.save(store / "shard-00002" / "ids.npy", np.arange(5, 5 + SHARD))
    return ["upgrade", str(store), "--transformation", str(h), "--out", str(up.parent / "o")], \
        "id 5 appears more than once"


def nan_input(store, h, up):
    old = np.load(store / "shard-00001" / "old.npy")
    old[7, 2] = np.nan
    np.save(store / "shard-00001" / "old.npy", old)
    return ["upgrade", str(store), "--transformation", str(h), "--out", str(up.parent / "o")], \
        f"{store / 'shard-00001' / 'old.npy'} holds non-finite values"


def out_inside_store(store, h, up):
    return ["upgrade", str(store), "--transformation", str(h), "--out",
            str(store / "shard-00000")], "lies inside the store"


def out_is_a_file(store, h, up):
    return ["upgrade", str(store), "--transformation", str(h), "--out",
            str(a_file(up.parent))], "is a file"


def batch_size_zero(store, h, up):
    return ["upgrade", str(store), "--transformation", str(h), "--out", str(up.parent / "o"),
            "--batch-size", "0"], "--batch-size must be at least 1"


def dead_scheduler(store, h, up):
    pytest.importorskip("distributed")
    return ["upgrade", str(store), "--transformation", str(h), "--out", str(up.parent / "o"),
            "--scheduler", "tcp://127.0.0.1:9"], "no Dask scheduler answers"


def search_position_negative(store, h, up):
    return ["search", str(up), "--queries", "-1"], "--queries [-1] lie outside"


def search_position_past_the_end(store, h, up):
    return ["search", str(up), "--queries", "3", str(N)], f"--queries [{N}] lie outside"


def search_k_zero(store, h, up):
    return ["search", str(up), "-k", "0"], "pass -k between 1 and 299"


def search_k_past_the_gallery(store, h, up):
    return ["search", str(up), "-k", str(N)], "pass -k between 1 and 299"


def search_a_store_written_in_python(store, h, up):
    return ["search", str(up)], "was not exported from a suite run"


def search_without_index(store, h, up):
    (up / "index.faiss").unlink()
    return ["search", str(up)], f"{up / 'index.faiss'} is missing"


def search_truncated_index(store, h, up):
    index = up / "index.faiss"
    index.write_bytes(index.read_bytes()[: index.stat().st_size // 2])
    return ["search", str(up)], f"{index} is damaged or truncated"


def search_manifest_field_of_a_wrong_type(store, h, up):
    manifest = json.loads((up / "manifest.json").read_text())
    manifest["index"] = "flat"
    (up / "manifest.json").write_text(json.dumps(manifest))
    return ["search", str(up)], f"{up / 'manifest.json'}: 'index' must be a mapping, got 'flat'"


GALLERY_CASES = [truncated_transformation, duplicate_ids, nan_input, out_inside_store,
                 out_is_a_file, batch_size_zero, dead_scheduler, search_position_negative,
                 search_position_past_the_end, search_k_zero, search_k_past_the_gallery,
                 search_a_store_written_in_python, search_without_index, search_truncated_index,
                 search_manifest_field_of_a_wrong_type]


def assert_refused(argv, expected, folder, capsys):
    """`fct argv` exits non-zero with one line on stderr holding `expected`; `folder` unchanged."""
    before = snapshot(folder)
    capsys.readouterr()
    try:
        code = fct(argv)
    except SystemExit as end:  # a malformed command line: argparse exits with 2
        code = end.code
    err = capsys.readouterr().err
    assert code != 0, err
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert expected in err and err.startswith(f"fct {argv[0]}: "), err
    assert snapshot(folder) == before


@pytest.mark.parametrize("case", PRESET_CASES, ids=str)
def test_refused_presets_and_folders(case, tmp_path, capsys, fashion_mnist, monkeypatch):
    monkeypatch.chdir(tmp_path)
    setup, expected = PRESET_CASES[case]
    argv = setup(tmp_path)
    if argv[0] in ("reproduce", "explore", "train-step") and "--runs-dir" not in argv:
        argv += ["--runs-dir", str(tmp_path / "runs")]
    if argv[0] == "reproduce" and "--results-dir" not in argv:
        argv += ["--results-dir", str(tmp_path / "results")]
    assert_refused(argv, expected, tmp_path, capsys)


@pytest.mark.parametrize("damage", GALLERY_CASES, ids=lambda f: f.__name__)
def test_refused_gallery_inputs(damage, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(fctlib.deploy.cluster, "CONNECT_TIMEOUT_S", 1)
    store, h, up = write_store(tmp_path)
    argv, expected = damage(store, h, up)
    assert_refused(argv, expected, tmp_path, capsys)


def test_fixed_input_shard_is_upgraded_again(tmp_path):
    store, h, up = write_store(tmp_path)
    first = np.load(up / "shard-00001" / "new.npy")
    old = np.load(store / "shard-00001" / "old.npy")
    np.save(store / "shard-00001" / "old.npy", old + 1)
    messages = []
    upgrade_gallery(store, h, up, log=messages.append)
    assert "1 to upgrade" in messages[0]
    assert not np.array_equal(np.load(up / "shard-00001" / "new.npy"), first)
    fresh = upgrade_gallery(store, h, tmp_path / "fresh", log=lambda message: None)
    # Bit for bit: the same shards, batches and threads in one process.
    for shard in ("shard-00000", "shard-00001", "shard-00002"):
        assert np.array_equal(np.load(up / shard / "new.npy"), np.load(fresh / shard / "new.npy"))


def full_disk(monkeypatch, free_bytes):
    """np.save writes part of the file and fails as numpy does when the disk fills up (an
    OSError without errno); the disk then has `free_bytes` left."""
    def short_write(fh, array, **kwargs):
        fh.write(b"\x93NUMPY")
        raise OSError(f"{array.nbytes} requested and 6 written")

    monkeypatch.setattr(np, "save", short_write)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: SimpleNamespace(free=free_bytes))


def test_a_full_disk_is_named_with_its_fix(tmp_path, capsys, monkeypatch):
    store, h, up = write_store(tmp_path)
    full_disk(monkeypatch, free_bytes=0)
    capsys.readouterr()
    out = tmp_path / "o"
    assert fct(["upgrade", str(store), "--transformation", str(h), "--out", str(out)]) == 1
    err = capsys.readouterr().err.split("\r")[-1]  # after the progress bar, erased
    assert err.count("\n") == 1, err
    assert err.startswith(f"fct upgrade: [Errno {errno.ENOSPC}] No space left on device: "
                          f"'{out / 'shard-00000' / 'new.npy'}'"), err
    assert err.endswith("; free some disk space and rerun\n"), err
    assert not list(out.rglob("*.npy")) and not list(out.rglob("*.tmp"))
    assert not (out / "manifest.json").exists()


def test_a_short_write_with_room_left_is_not_called_a_full_disk(tmp_path, monkeypatch):
    store, h, up = write_store(tmp_path)
    full_disk(monkeypatch, free_bytes=10 << 30)
    with pytest.raises(OSError, match="requested and 6 written") as raised:
        upgrade_gallery(store, h, tmp_path / "o", log=lambda message: None)
    assert raised.value.errno is None
    assert not list((tmp_path / "o").rglob("*.tmp"))


def test_a_torch_write_on_a_full_disk_is_an_os_error(tmp_path, monkeypatch):
    def failed_torch_save(tmp):
        tmp.write_bytes(b"PK")
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")

    monkeypatch.setattr(shutil, "disk_usage", lambda path: SimpleNamespace(free=0))
    with pytest.raises(OSError) as raised:
        atomic_write(tmp_path / "model.pt", failed_torch_save)
    assert raised.value.errno == errno.ENOSPC and raised.value.filename == str(
        tmp_path / "model.pt")
    assert not list(tmp_path.iterdir())


def test_temporary_files_of_a_killed_run_are_removed(tmp_path):
    store, h, up = write_store(tmp_path)
    stale = [up / ".index.faiss.x1y2.tmp", up / "shard-00001" / ".new.npy.a3b4.tmp"]
    for path in stale:
        path.write_bytes(b"partial")
    upgrade_gallery(store, h, up, log=lambda message: None)
    assert not any(path.exists() for path in stale)
    assert not list(up.rglob("*.tmp"))


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through file permissions")
def test_non_writable_output_is_refused(tmp_path, capsys):
    store, h, up = write_store(tmp_path)
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    assert_refused(["upgrade", str(store), "--transformation", str(h), "--out",
                    str(locked / "o")], "is not writable", tmp_path, capsys)


def test_debug_shows_the_traceback(tmp_path, monkeypatch):
    preset = write_preset(tmp_path, "name: x\nseeds: []\n")
    with pytest.raises(PresetError, match="seeds is empty"):
        fct(["--debug", "reproduce", "--preset", preset])
    monkeypatch.setenv("FCT_DEBUG", "1")
    with pytest.raises(PresetError, match="seeds is empty"):
        fct(["reproduce", "--preset", preset])
    monkeypatch.delenv("FCT_DEBUG")
    proc = subprocess.run([sys.executable, "-m", "fctlib.suite.cli", "--debug", "reproduce",
                           "--preset", preset], capture_output=True, text=True)
    assert proc.returncode == 1
    assert "Traceback (most recent call last)" in proc.stderr and "PresetError" in proc.stderr


def test_command_line_errors_are_one_line(capsys):
    with pytest.raises(SystemExit) as end:
        fct(["upgrade", "store", "--transformation", "h.pt", "--workers", "0"])
    err = capsys.readouterr().err
    assert end.value.code == 2 and err.count("\n") == 1 and "must be at least 1" in err, err


def kernels_of(marker):
    """Processes (kernels) whose environment carries `marker`."""
    found = []
    for process in psutil.process_iter():
        try:
            if process.environ().get("FCT_TEST_MARKER") == marker:
                found.append(process)
        except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
            pass
    return found


def smoke_reproduce(tmp_path, steps) -> list[str]:
    """`fct reproduce` of the smoke preset's `steps`, no report, its folders under `tmp_path`."""
    return [sys.executable, "-m", "fctlib.suite.cli", "reproduce", "--preset", "smoke",
            "--only", *steps, "--no-report",
            "--runs-dir", str(tmp_path / "runs"), "--results-dir", str(tmp_path / "results")]


def interrupt_smoke_run(tmp_path, steps, started_line, wait_s):
    """Start `fct reproduce` of the smoke preset's `steps`, send SIGINT `wait_s` after the log
    shows `started_line`, and check it ends at once with exit code 130, one line and no kernel
    left; returns the command, its environment, the marker of its kernels and whether a kernel
    was running when SIGINT was sent."""
    marker = f"ctrl-c-{os.getpid()}-{time.time()}"
    env = {**os.environ, "FCT_TEST_MARKER": marker, "PYTHONUNBUFFERED": "1"}
    command = smoke_reproduce(tmp_path, steps)
    # a test run started in the background (`cmd &`) ignores SIGINT, and a child inherits that:
    # the command must see Ctrl-C as a user at a terminal does
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=lambda: signal.signal(signal.SIGINT,
                                                                        signal.SIG_DFL))
    for line in proc.stdout:
        if started_line in line:
            break
    time.sleep(wait_s)
    kernel_up = bool(kernels_of(marker))
    proc.send_signal(signal.SIGINT)
    started = time.monotonic()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert time.monotonic() - started < 15
    assert err.strip().splitlines()[-1].startswith("fct reproduce: interrupted"), err
    assert "Traceback" not in err
    assert not kernels_of(marker), "the kernel was shut down"
    return command, env, marker, kernel_up


def test_ctrl_c_while_the_kernel_starts(tmp_path, fashion_mnist):
    interrupt_smoke_run(tmp_path, ["00_data"], "00_data ...", 0.3)
    assert not (tmp_path / "results" / "notebooks" / "seed0" / "timings.json").exists()


@pytest.mark.slow
def test_ctrl_c_stops_a_run_with_130_and_the_rerun_completes(tmp_path, fashion_mnist):
    # 3 s after step 01 starts, its kernel runs the notebook's cells
    command, env, marker, kernel_up = interrupt_smoke_run(
        tmp_path, ["00_data", "01_train_old"], "01_train_old ...", 3)
    assert kernel_up
    timings = tmp_path / "results" / "notebooks" / "seed0" / "timings.json"
    assert "01_train_old" not in timings.read_text()
    rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert "01_train_old" in timings.read_text()
    assert not kernels_of(marker)


def test_a_step_logs_no_kernel_warning(tmp_path, fashion_mnist):
    # ipykernel warns on every start that a local kernel talks over TCP; the log keeps to the run
    command = smoke_reproduce(tmp_path, ["00_data"])
    proc = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "00_data done" in proc.stdout + proc.stderr
    assert "IPKernelApp" not in proc.stderr, proc.stderr


MODULES_LOADED = """
import sys
from fctlib.suite.cli import main
try:
    code = main({argv!r})
except SystemExit as end:  # --help exits
    code = end.code
print(code, *sorted(m for m in sys.modules if m.split(".")[0] == "fctlib"))
"""


@pytest.mark.parametrize("command", ["help", "upgrade"])
def test_upgrade_loads_no_method_no_run_and_at_most_15_modules(command, tmp_path):
    """`fct upgrade` (and its --help), in a fresh interpreter, loads deployment only: no method,
    no run, no notebook runner, at most 15 fctlib modules in all."""
    argv = ["upgrade", "--help"]
    if command == "upgrade":
        store, h, _ = write_store(tmp_path)
        argv = ["upgrade", str(store), "--transformation", str(h), "--out", str(tmp_path / "o")]
    result = subprocess.run([sys.executable, "-c", MODULES_LOADED.format(argv=argv)],
                            capture_output=True, text=True, check=True)
    code, *loaded = result.stdout.splitlines()[-1].split()
    assert code == "0", result.stderr
    assert "fctlib.deploy.upgrade" in loaded and len(loaded) <= 15, loaded
    assert not [m for m in loaded if m.startswith("fctlib.methods")
                or m in ("fctlib.suite.run", "fctlib.suite.runner")], loaded



def documented_commands() -> list[str]:
    """The arguments of every `fct` command the Makefile runs and the README's bash blocks show."""
    import re
    from pathlib import Path

    root = Path(__file__).parents[2]
    lines = (root / "Makefile").read_text().splitlines()
    for block in re.findall(r"```bash\n(.*?)```", (root / "README.md").read_text(), re.S):
        lines += block.replace("\\\n", " ").splitlines()
    commands = []
    for line in lines:
        line = line.split("#")[0].split("$(if")[0].replace("$(PRESET)", "fashion-mnist")
        found = re.search(r"(?:-m fctlib\.suite\.cli|(?:^|[\s/])fct)\s+(.*)", line)
        if found:
            commands.append(found.group(1).replace("$artifact", "old"))
    return commands


def test_every_documented_fct_command_parses():
    """`make reproduce` ran `fct fetch-data mnist`, which the parser refused for a day."""
    from fctlib.data.sources import _LOADERS
    from fctlib.suite.cli import FETCHABLE, build_parser

    commands = documented_commands()
    assert "fetch-data mnist" in commands and len(commands) >= 8, commands
    for command in commands:
        assert "$" not in command, command
        build_parser().parse_args(command.split())  # exits 2 on a refused argument
    assert set(FETCHABLE) <= set(_LOADERS)
