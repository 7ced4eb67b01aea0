"""The artifact store: one declaration gives the folder, the embedding cache and the provenance."""

import copy
import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from fctlib.errors import UserError
from fctlib.experiment.provenance import git_commit
from fctlib.experiment.store import UNRECORDED, Artifact, ArtifactStore, weights_digest
from fctlib.io import remove_stale_tmp
from fctlib.methods.registry import NAME_TYPES, name_forms, parse_name
from fctlib.suite.run import Run


def _store(tmp_path, calls, log=None):
    def embed(model, split, name):
        calls.append(("embed", name, split))
        return np.full((3, 2), float(model.weight.detach().sum()), np.float32)

    return ArtifactStore(tmp_path, ("data", 0), embed, log or (lambda line: None))


def _artifact(calls, name="a", depends=(1,), upstream=(), recipe=1):
    def fit(folder):
        calls.append(("fit", name))
        return torch.nn.Linear(2, 2), [{"epoch": 1, "loss": 0.5}]

    return Artifact(name, "step", depends, fit, upstream, recipe)


def _where(store, artifact):
    return store.folder(artifact), store.key(artifact)


def test_folder_and_embedding_key_move_together_with_every_declared_part(tmp_path):
    calls = []
    base = _artifact(calls, upstream=(_artifact(calls, "up"),))
    variants = [dataclasses.replace(base, depends=(2,)), dataclasses.replace(base, recipe=2),
                dataclasses.replace(base, upstream=(_artifact(calls, "up", depends=(9,)),))]
    reference = _where(_store(tmp_path, calls), base)
    for variant in variants:
        folder, key = _where(_store(tmp_path, calls), variant)  # a fresh store: no memoised key
        assert folder != reference[0] and key != reference[1]
        assert folder.name.endswith(key)
    other_seed = ArtifactStore(tmp_path, ("data", 1), None)
    assert _where(other_seed, base) != reference


def test_trained_once_per_process_and_recorded_with_its_commit(tmp_path):
    calls = []
    store, artifact = _store(tmp_path, calls), _artifact(calls)
    model, history = store.trained(artifact)
    assert store.trained(artifact)[0] is model and calls == [("fit", "a")]
    record = json.loads((store.folder(artifact) / "artifact.json").read_text())
    assert record["commit"] == git_commit() == store.used["a"]
    assert json.loads((store.folder(artifact) / "history.json").read_text()) == history
    first = store.embeddings(artifact, "test")
    again = _store(tmp_path, calls)  # another process: embeddings read from disk, no training
    np.testing.assert_array_equal(again.embeddings(artifact, "test"), first)
    assert calls == [("fit", "a"), ("embed", "a", "test")]
    assert again.used == {"a": git_commit()}


def test_each_artifact_says_whether_it_was_trained_or_loaded_from_its_folder(tmp_path):
    calls, lines = [], []
    artifact = _artifact(calls)
    _store(tmp_path, calls, lines.append).trained(artifact)
    _store(tmp_path, calls, lines.append).trained(artifact)  # another process: loads it
    folder = _store(tmp_path, calls).folder(artifact)
    assert lines[0].startswith("a: trained in ") and lines[0].endswith(f"saved in {folder}")
    commit = git_commit()[:12]
    assert lines[1] == f"a: loaded from {folder}, not trained (trained at commit {commit})"
    assert len(lines) == 2


def test_an_artifact_made_before_commits_were_recorded_says_so(tmp_path):
    calls = []
    store, artifact = _store(tmp_path, calls), _artifact(calls)
    folder = store.folder(artifact)
    folder.mkdir(parents=True)
    (folder / "history.json").write_text("[]")  # finished by older code: loaded, not re-recorded
    store.trained(artifact)
    assert store.used == {"a": UNRECORDED} and not (folder / "artifact.json").exists()


@pytest.mark.parametrize("name, overrides", [
    ("cross:loss", {"methods": {"cross": {"cosine_scale": 8.0}}}),
    ("cross:arch", {"methods": {"cross": {"model": {"width": 6}}}}),
    ("side:8", {"side_info": {"temperature": 0.2}}),
    ("bct:bt2:10", {"methods": {"bct": {"bt2_training": {"lr": 0.002}}}}),
    ("bct:openbct-normsm:1", {"methods": {"bct": {"normsm_scale": 16.0}}}),
    ("bct:openbct:1", {"new": {"training": {"lr": 0.05}}}),
    ("bct:openbct:1", {"old": {"model": {"width": 6}}}),  # through its upstream old model
    ("oca", {"methods": {"oca": {"extra_dims": 4}}}),
    ("dsimplex:new", {"old": {"training": {"epochs": 2}}}),
    ("h:8", {"transformation": {"mixer_widths": [32]}}),
    ("h:0", {"new": {"training": {"lr": 0.05}}}),
])
def test_a_run_artifact_moves_when_a_preset_slice_it_declares_changes(fashion_mnist, tmp_path,
                                                                       name, overrides):
    runs = [Run("smoke", 0, overrides=o, runs_dir=tmp_path) for o in (None, overrides)]
    before, after = (_where(r.store, r.artifact(name)) for r in runs)
    assert before[0] != after[0] and before[1] != after[1]


def test_a_bct_artifact_s_key_moves_with_its_variant_and_weight(fashion_mnist, tmp_path):
    run = Run("smoke", 0, runs_dir=tmp_path)
    names = ["bct:openbct:1", "bct:openbct-g:1", "bct:bt2:1", "bct:openbct-normsm:1",
             "bct:hybrid:1", "bct:openbct:3"]
    places = [_where(run.store, run.artifact(name)) for name in names]
    assert len({folder for folder, _ in places}) == len({key for _, key in places}) == len(names)
    assert run.artifact("bct:openbct:1").name == run.artifact("bct:openbct:1.0").name
    assert run.store.folder(run.artifact("bct:bt2:10")).name.startswith("bct-bt2-")
    for bad in ("bct:1", "bct:drop:1"):
        with pytest.raises(ValueError, match="bct:<variant>:<weight>"):
            run.artifact(bad)


def test_a_run_artifact_ignores_slices_it_does_not_declare(fashion_mnist, tmp_path):
    runs = [Run("smoke", 0, overrides=o, runs_dir=tmp_path)
            for o in (None, {"methods": {"cross": {"cosine_scale": 8.0}, "fastfill": {"mu": 0.2},
                                         "bct": {"bt2_training": {"lr": 0.002},
                                                 "normsm_scale": 16.0,
                                                 "sweep": [{"variant": "bt2", "weights": [1]}]}},
                             "data": {"path": "stream"}})]
    for name in ("old", "new", "cross:arch", "side:8", "h:8", "bct:openbct:1"):
        assert len({_where(r.store, r.artifact(name)) for r in runs}) == 1, name


def test_the_same_data_elsewhere_keeps_every_key_and_other_data_moves_them(fashion_mnist,
                                                                          tmp_path):
    """Keys follow what the data holds, not where it lies: a lent GPU machine's /var/tmp copy or
    a moved folder finds the models (and 04's recorded choice) that the first place trained."""
    names = ("old", "side:8", "h:8", "bct:openbct:1")
    linked = tmp_path / "fashion"
    linked.mkdir()
    found = Path(fashion_mnist.source.split(" idx files in ", 1)[1])  # where the loader read
    for idx in found.iterdir():
        (linked / idx.name).symlink_to(idx)
    usual = Run("smoke", 0, runs_dir=tmp_path / "runs")
    elsewhere = Run("smoke", 0, runs_dir=tmp_path / "runs", overrides={"data": {"dataset": {
        "root": str(linked), "cache_dir": str(tmp_path / "cache"), "download": False}}})
    assert [elsewhere.artifact_key(n) for n in names] == [usual.artifact_key(n) for n in names]

    images = fashion_mnist.train.images[:, 0].numpy()
    arrays = {"train_images": images[:600], "train_labels": fashion_mnist.train.labels[:600],
              "test_images": images[600:900], "test_labels": fashion_mnist.train.labels[600:900]}
    one_pixel = images[:600].copy()
    one_pixel[599, 27, 27] ^= 1
    files = {"a": arrays, "b": arrays, "changed": {**arrays, "train_images": one_pixel}}
    keys = {}
    for folder, content in files.items():
        (tmp_path / folder).mkdir()
        np.savez(tmp_path / folder / "data.npz", **content)
        run = Run("smoke", 0, runs_dir=tmp_path / "runs", overrides={"data": {"dataset": {
            "name": "npz", "root": str(tmp_path / folder / "data.npz")}}})
        keys[folder] = [run.artifact_key(n) for n in names]
    assert keys["a"] == keys["b"]
    assert all(a != c for a, c in zip(keys["a"], keys["changed"], strict=True))


def test_every_structured_name_reads_back_from_its_one_string_form():
    assert NAME_TYPES, "no kind with a structured name is registered"
    for kind, name_type in NAME_TYPES.items():
        assert name_type.form.startswith(f"{kind}:") and name_type.example.startswith(f"{kind}:")
        name = parse_name(name_type.example)
        assert type(name) is name_type and str(name) == name_type.example
        assert parse_name(str(name)) == name and hash(parse_name(str(name))) == hash(name)
    assert parse_name("old") == "old"
    assert str(parse_name("h:8,width=1.0,share=0.5")) == "h:8,share=0.5"  # defaults left out
    assert str(parse_name("h:0,source=random")) == "h:0"  # no side-info: no source
    assert str(parse_name("bct:bt2:10")) == "bct:bt2:10.0"


@pytest.mark.parametrize("name, message", [
    ("bogus", "unknown artifact 'bogus'; artifact names are old, new, bct:<variant>:<weight>"),
    ("old:1", "unknown artifact 'old:1'"),
    ("side", "unknown artifact 'side'"),
    ("h:-3", "artifact 'h:-3': h's side-info size must be >= 0, got -3; artifact names are old"),
    ("side:abc", "artifact 'side:abc': the side-info size must be an integer, got 'abc'"),
    ("h:8,share", "artifact 'h:8,share': options are KEY=VALUE, got ['share']"),
    ("h:8,share=2", "artifact 'h:8,share=2': h's share must be in (0, 1]"),
    ("h:8,width=0", "artifact 'h:8,width=0': h's share must be in (0, 1] and its width factor "
                    "above 0, got share 1.0 and width 0.0"),
    ("h:8,to=cross:depth", "artifact 'h:8,to=cross:depth' needs artifact 'cross:depth': change "
                           "must be one of"),
    ("dsimplex:mid", "artifact 'dsimplex:mid': generation must be 'old' or 'new'"),
    ("bct:drop:1", "artifact 'bct:drop:1': BCT artifacts are named bct:<variant>:<weight>"),
    ("bct:openbct:1", None),  # a name its kind accepts
])
def test_a_bad_artifact_name_is_a_user_error_naming_the_forms(fashion_mnist, tmp_path, name,
                                                              message):
    run = Run("smoke", 0, runs_dir=tmp_path)
    if message is None:
        assert run.artifact(name).name == str(parse_name(name))
        return
    with pytest.raises(UserError) as err:
        run.artifact(name)
    assert str(err.value).startswith(message), err.value
    assert f"artifact names are {name_forms()}" in str(err.value)
    assert str(err.value).count("artifact names are") == 1


def test_a_run_removes_the_temporary_files_a_killed_writer_left(fashion_mnist, tmp_path):
    run = Run("smoke", 0, runs_dir=tmp_path)
    folder = run.root / "old-0123456789"
    folder.mkdir(parents=True)
    stale = [folder / ".model.pt.k2x9.tmp", run.root / "embeddings" / ".train.npy.a1b2.tmp"]
    stale[1].parent.mkdir()
    for path in stale:
        path.write_bytes(b"")  # a write killed by Ctrl-C
    (folder / "model.pt").write_bytes(b"kept")
    assert run.store.root == run.root
    assert not any(path.exists() for path in stale)
    assert (folder / "model.pt").read_bytes() == b"kept"


def test_a_temporary_file_whose_writer_still_runs_is_kept(tmp_path):
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)
    try:
        kept = tmp_path / f".model.pt.{live.pid}.k2x9abcd.tmp"  # another process is writing it
        gone = tmp_path / f".model.pt.{ended.stdout.strip()}.k2x9abcd.tmp"
        for path in (kept, gone):
            path.write_bytes(b"")
        assert remove_stale_tmp(tmp_path) == 1
        assert kept.exists() and not gone.exists()
    finally:
        live.kill()
        live.wait()


def test_the_weights_digest_names_the_state_not_its_layout():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    digest = weights_digest(net)
    assert len(digest) == 12 and weights_digest(copy.deepcopy(net)) == digest
    assert weights_digest(copy.deepcopy(net).to(memory_format=torch.channels_last)) == digest
    nudged = copy.deepcopy(net)
    with torch.no_grad():
        nudged[0].weight.view(-1)[5] = torch.nextafter(nudged[0].weight.view(-1)[5],
                                                       torch.tensor(1.0))
    assert weights_digest(nudged) != digest  # one value one float apart
    stats = copy.deepcopy(net)
    stats[1].num_batches_tracked += 1  # a buffer, not a parameter
    assert weights_digest(stats) != digest


def test_the_store_records_the_weights_it_trained_and_reads_them_back(tmp_path):
    calls = []
    store, artifact = _store(tmp_path, calls), _artifact(calls)
    model, _ = store.trained(artifact)
    saved = json.loads((store.folder(artifact) / "artifact.json").read_text())
    assert saved["weights"] == weights_digest(model) == store.weights["a"]
    store.embeddings(artifact, "test")
    again = _store(tmp_path, calls)  # another process: the embeddings from disk, no model loaded
    again.embeddings(artifact, "test")
    assert again.weights == {"a": saved["weights"]} and calls.count(("fit", "a")) == 1


def test_a_smoke_model_loaded_or_trained_again_here_has_the_same_weights(smoke_run, tmp_path):
    """One machine, one code: `old` trained again in an empty runs folder computes the same
    arithmetic (the suite's CPU training is deterministic), so its weights, and their digest,
    are the same; loaded from its checkpoint, too."""
    model, _ = smoke_run.trained("old")
    first = smoke_run.store.weights["old"]
    assert first == weights_digest(model)
    loaded = Run("smoke", 0, runs_dir=smoke_run.root.parent.parent,
                 results_dir=tmp_path / "results", device=torch.device("cpu"))
    loaded.trained("old")
    again = Run("smoke", 0, runs_dir=tmp_path / "runs", results_dir=tmp_path / "results",
                device=torch.device("cpu"))
    again.trained("old")
    assert loaded.store.weights["old"] == again.store.weights["old"] == first


def _seeded(calls, name, seed, upstream=()):
    """An artifact whose fit draws its weights from `seed`: fitted again, the same weights."""
    def fit(folder):
        calls.append(("fit", name))
        torch.manual_seed(seed)
        return torch.nn.Linear(2, 2), [{"epoch": 1, "loss": 0.5}]

    return Artifact(name, name, (1,), fit, upstream)


def _made(tmp_path, calls, lines, up_seed):
    """A process that trains (or loads) `up`, then reads `down`'s test embeddings."""
    store = _store(tmp_path, calls, lines.append)
    up = _seeded(calls, "up", up_seed)
    down = _seeded(calls, "down", 1, upstream=(up,))
    store.trained(up)
    return store, up, store.embeddings(down, "test")


@pytest.mark.parametrize("up_seed, made_again", [(0, False), (5, True)])
def test_an_artifact_made_against_another_training_of_its_upstream_is_made_again(
        tmp_path, up_seed, made_again):
    """`up` trained again elsewhere (its folder gone, as on a fresh machine with `down`'s cache
    carried in): with the same weights `down`'s cache is reused; with others it is set aside
    under stale/ and made again against this training."""
    calls, lines = [], []
    store, up, first = _made(tmp_path, calls, lines, 0)
    [down_json] = tmp_path.glob("down-*/artifact.json")
    recorded = json.loads(down_json.read_text())
    assert recorded["upstream"] == {"up": store.weights["up"]}
    shutil.rmtree(store.folder(up))
    calls.clear()
    again, _, second = _made(tmp_path, calls, lines, up_seed)
    np.testing.assert_array_equal(second, first)  # down's own fit draws the same weights
    assert calls == [("fit", "up"),
                     *([("fit", "down"), ("embed", "down", "test")] if made_again else [])]
    if not made_again:
        assert not (tmp_path / "stale").exists()
        return
    key = down_json.parent.name  # down-<key>: its checkpoint folder's and embeddings' name
    assert sorted(p.name for p in (tmp_path / "stale").iterdir()) == [f"{key}-1", f"{key}-2"]
    assert json.loads((tmp_path / "stale" / f"{key}-1" / "artifact.json").read_text()) == recorded
    assert (tmp_path / "stale" / f"{key}-2" / "test.npy").is_file()  # the embeddings set aside
    assert [line for line in lines if line.startswith("down: made against")] == [
        f"down: made against other weights of up ({recorded['upstream']['up']} then, "
        f"{again.weights['up']} now): its cache set aside in {tmp_path / 'stale'}, made again"]
    assert json.loads(down_json.read_text())["upstream"] == {"up": again.weights["up"]}


def test_a_folder_that_records_no_upstream_weights_is_reused_as_before(tmp_path):
    calls, lines = [], []
    _made(tmp_path, calls, lines, 0)
    [down_json] = tmp_path.glob("down-*/artifact.json")
    older = {k: v for k, v in json.loads(down_json.read_text()).items() if k != "upstream"}
    down_json.write_text(json.dumps(older))  # written before artifacts recorded their upstream
    shutil.rmtree(next(tmp_path.glob("up-*")))
    calls.clear()
    _made(tmp_path, calls, lines, 5)
    assert calls == [("fit", "up")] and not (tmp_path / "stale").exists()


@pytest.mark.parametrize("carried, seed, kept", [(True, 0, True), (True, 7, False),
                                                 (False, 0, False)])
def test_embeddings_of_another_training_are_set_aside_when_an_artifact_trains(
        tmp_path, carried, seed, kept):
    """`a` trained where embeddings of it are cached: its folder removed (nothing says which
    weights made them), or only its artifact.json carried in (as from another machine). They are
    kept only where that artifact.json names the weights just trained."""
    calls, lines = [], []
    first = _store(tmp_path, calls, lines.append)
    first.trained(_seeded(calls, "a", 0))
    before = first.embeddings(_seeded(calls, "a", 0), "test")
    folder = first.folder(_seeded(calls, "a", 0))
    recorded = (folder / "artifact.json").read_text()
    shutil.rmtree(folder)
    if carried:
        folder.mkdir()
        (folder / "artifact.json").write_text(recorded)
    calls.clear()
    again = _store(tmp_path, calls, lines.append)
    again.trained(_seeded(calls, "a", seed))
    after = again.embeddings(_seeded(calls, "a", seed), "test")
    assert calls == [("fit", "a"), *([] if kept else [("embed", "a", "test")])]
    assert (tmp_path / "stale").exists() != kept
    assert np.array_equal(after, before) == (seed == 0)
    made_by = json.loads(recorded)["weights"] if carried else "unrecorded"
    assert [line for line in lines if "cached embeddings" in line] == ([] if kept else [
        f"a: its cached embeddings were of another training ({made_by}): set aside in "
        f"{tmp_path / 'stale'}"])


def test_the_arithmetic_that_trained_a_model_is_recorded_beside_it(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr("fctlib.experiment.store.compute", lambda: {"threads": "2"})
    store, artifact = _store(tmp_path, calls), _artifact(calls)
    store.trained(artifact)
    saved = json.loads((store.folder(artifact) / "artifact.json").read_text())
    assert saved["compute"] == {"threads": "2"} == store.computes["a"]
    monkeypatch.setattr("fctlib.experiment.store.compute", lambda: {"threads": "1"})
    again = _store(tmp_path, calls)  # another process with other threads: loads it
    again.trained(artifact)
    assert again.computes == {"a": {"threads": "2"}}
    assert json.loads((store.folder(artifact) / "artifact.json").read_text()) == saved


def test_a_record_names_the_arithmetic_of_a_model_another_process_trained(fashion_mnist,
                                                                         tmp_path, monkeypatch):
    """The committed Tiny-ImageNet-100 seed 0 `old` was trained by a 2-thread process and loaded by
    a 1-thread one, whose `compute` alone its records named: a record now says so."""
    from fctlib.experiment.provenance import compute
    from fctlib.experiment.records import OldRecord, load_record

    def run():
        return Run("smoke", 0, runs_dir=tmp_path / "runs", results_dir=tmp_path / "results",
                   device=torch.device("cpu"))

    here = compute()
    elsewhere = {**here, "threads": str(int(here["threads"]) + 1)}
    for module in ("fctlib.experiment.store", "fctlib.suite.run"):
        monkeypatch.setattr(f"{module}.compute", lambda: elsewhere)
    trainer = run()
    trainer.trained("old")
    assert load_record(trainer.save_record(OldRecord(cases={}, history=[]))).trained_with == {}
    monkeypatch.undo()
    loader = run()  # another process, this machine's arithmetic: loads `old`, trains nothing
    loader.trained("old")
    record = load_record(loader.save_record(OldRecord(cases={}, history=[])))
    assert record.compute == here and record.trained_with == {"old": elsewhere}
