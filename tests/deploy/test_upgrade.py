"""Gallery stores and `fct upgrade`: output equals h applied directly, resume after a kill, bad
input stops with a message naming the file and leaves the input untouched, Dask = one process."""

import hashlib
import json
import os
import subprocess
import sys
import textwrap

import faiss
import numpy as np
import pytest
import torch

from fctlib.deploy.gallery_store import GalleryStoreError, open_gallery_store, write_gallery_store
from fctlib.deploy.upgrade import build_index, default_output, open_upgraded, upgrade_gallery
from fctlib.models.transformation import (
    FastFill,
    Transformation,
    load_fastfill,
    load_transformation,
    save_fastfill,
    save_transformation,
    upgrade_embeddings,
    upgrade_with_uncertainty,
)
from fctlib.suite.cli import main as fct

N, OLD, SIDE, NEW, SHARD = 1000, 16, 8, 12, 300
CPU = torch.device("cpu")  # as `fct upgrade` computes


def quiet(message):
    pass


def tree_digest(folder):
    """sha256 of every file under a folder, by relative path."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    ids = rng.permutation(10 * N)[:N].astype(np.int64)  # not positions: ids are carried through
    return ids, rng.normal(size=(N, OLD)).astype(np.float32), rng.normal(
        size=(N, SIDE)).astype(np.float32)


@pytest.fixture
def store(tmp_path, data):
    return write_gallery_store(tmp_path / "gallery", *data, shard_size=SHARD)


@pytest.fixture
def transformation(tmp_path):
    torch.manual_seed(0)
    model = Transformation(OLD, SIDE, NEW, (32,), (64,))
    with torch.no_grad():  # non-trivial BatchNorm statistics, so eval mode matters
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                m.running_mean.normal_()
                m.running_var.uniform_(0.5, 2)
    return save_transformation(model.eval(), tmp_path / "h.pt")


def read_output(out):
    manifest = open_upgraded(out)[1]
    ids = np.concatenate([np.load(out / s["name"] / "ids.npy") for s in manifest["shards"]])
    new = np.concatenate([np.load(out / s["name"] / "new.npy") for s in manifest["shards"]])
    return ids, new


def test_store_round_trip(store, data):
    ids, old, side = data
    opened = open_gallery_store(store.folder)
    assert opened.count == N and [s.count for s in opened.shards] == [300, 300, 300, 100]
    assert np.array_equal(np.concatenate([s.ids() for s in opened.shards]), ids)
    assert np.array_equal(np.concatenate([s.side() for s in opened.shards]), side)


def test_saved_transformation_round_trip(transformation):
    model = load_transformation(transformation)
    x, s = torch.randn(5, OLD), torch.randn(5, SIDE)
    torch.manual_seed(0)
    reference = Transformation(OLD, SIDE, NEW, (32,), (64,))
    reference.load_state_dict(model.state_dict())
    assert torch.equal(model(x, s), reference.eval()(x, s))  # same weights, inputs and kernels


def test_upgrade_equals_transformation_applied_directly(store, transformation, data):
    ids, old, side = data
    before = tree_digest(store.folder)
    out = upgrade_gallery(store.folder, transformation, log=quiet)
    assert out == default_output(store.folder)
    got_ids, got_new = read_output(out)
    expected = upgrade_embeddings(load_transformation(transformation), old, side, device=CPU)
    assert np.array_equal(got_ids, ids)
    np.testing.assert_allclose(got_new, expected, rtol=1e-5, atol=1e-5)
    index, manifest = open_upgraded(out)
    assert manifest["verified"] and manifest["index"]["kind"] == "flat" and index.ntotal == N
    _, found = index.search(expected[:20], 1)  # each upgraded vector finds its own id
    assert np.array_equal(found[:, 0], ids[:20])
    assert tree_digest(store.folder) == before


def test_fastfill_upgrade_writes_sigma_and_the_backfill_order(tmp_path, store, data):
    ids, old, side = data
    torch.manual_seed(3)
    model = FastFill(Transformation(OLD, SIDE, NEW, (32,), (64,)), head_width=16).eval()
    path = save_fastfill(model, tmp_path / "fastfill.pt")
    out = upgrade_gallery(store.folder, path, log=quiet)
    expected_new, expected_sigma = upgrade_with_uncertainty(load_fastfill(path), old, side,
                                                            device=CPU)
    got_ids, got_new = read_output(out)
    np.testing.assert_allclose(got_new, expected_new, rtol=1e-5, atol=1e-5)
    sigma = np.concatenate([np.load(out / s.name / "sigma.npy") for s in store.shards])
    np.testing.assert_allclose(sigma, expected_sigma, rtol=1e-5, atol=1e-5)
    order = np.load(out / "backfill_order.npy")
    assert sorted(order.tolist()) == sorted(ids.tolist())
    by_id = dict(zip(ids.tolist(), sigma.tolist(), strict=True))
    ranked = [by_id[i] for i in order.tolist()]
    assert all(a >= b for a, b in zip(ranked, ranked[1:], strict=False))  # highest sigma first
    assert open_upgraded(out)[1]["backfill_order"] == "backfill_order.npy"


def test_ivf_index_holds_every_id_with_cosine(store, transformation, data):
    out = upgrade_gallery(store.folder, transformation, index="ivf", metric="cosine", log=quiet)
    index, manifest = open_upgraded(out)
    assert manifest["index"]["kind"] == "ivf" and manifest["index"]["nlist"] == int(N ** 0.5)
    ivf = faiss.extract_index_ivf(index)
    stored = np.concatenate([faiss.rev_swig_ptr(ivf.invlists.get_ids(i), ivf.invlists.list_size(i))
                             for i in range(ivf.nlist)])
    assert sorted(stored.tolist()) == sorted(data[0].tolist())
    _, new = read_output(out)
    unit = new / np.linalg.norm(new, axis=1, keepdims=True)
    ivf.nprobe = ivf.nlist  # exhaustive probe: inner product of unit vectors finds itself
    scores, found = index.search(unit[:10], 1)
    assert np.array_equal(found[:, 0], data[0][:10]) and np.allclose(scores[:, 0], 1, atol=1e-4)


def test_resume_after_killed_upgrade_gives_identical_output(tmp_path, store, transformation):
    clean = upgrade_gallery(store.folder, transformation, tmp_path / "clean", log=quiet)
    killed = tmp_path / "killed"
    # Kill the process (SIGKILL, no cleanup) after the second shard is finished, right after
    # the third shard's new.npy is written but before its ids.npy: a shard left half done.
    script = textwrap.dedent(f"""
        import os, signal
        import fctlib.deploy.upgrade as up
        real, calls = up.save_npy_atomic, []
        def save_then_die(array, path):
            real(array, path)
            calls.append(path)
            if len(calls) == 5:
                os.kill(os.getpid(), signal.SIGKILL)
        up.save_npy_atomic = save_then_die
        up.upgrade_gallery({str(store.folder)!r}, {str(transformation)!r}, {str(killed)!r})
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True)
    assert proc.returncode == -9, proc.stderr.decode()
    assert (killed / "shard-00002" / "new.npy").exists()
    assert not (killed / "shard-00002" / "ids.npy").exists()
    assert not (killed / "manifest.json").exists()
    messages = []
    upgrade_gallery(store.folder, transformation, killed, log=messages.append)
    assert "2 to upgrade" in messages[0]
    # Bit for bit: every shard is upgraded by the same batches and threads in either run.
    for name in ("shard-00000", "shard-00001", "shard-00002", "shard-00003"):
        for array in ("ids.npy", "new.npy"):
            assert np.array_equal(np.load(killed / name / array), np.load(clean / name / array))
    assert faiss.read_index(str(killed / "index.faiss")).ntotal == N


def test_dask_local_cluster_matches_single_process(tmp_path, store, transformation):
    """Bit for bit: both paths run each shard in the same batches on one thread each (the thread
    count may change GEMM's kernel path). Neither leaves this process changed: dask's nannies
    set OMP_NUM_THREADS=1 here, and a later `Run` trained on one thread (which moved the losses
    of tests/methods/test_compiled_methods.py within the whole test run)."""
    pytest.importorskip("distributed")
    from fctlib.deploy.cluster import dask_client

    threads, environment = torch.get_num_threads(), dict(os.environ)
    single = upgrade_gallery(store.folder, transformation, tmp_path / "single", threads=1,
                             log=quiet)
    assert torch.get_num_threads() == threads
    with dask_client(workers=2) as client:
        assert len(client.scheduler_info()["workers"]) == 2
        spread = upgrade_gallery(store.folder, transformation, tmp_path / "dask", client=client,
                                 threads=1, log=quiet)
    for a, b in zip(read_output(single), read_output(spread), strict=True):
        assert np.array_equal(a, b)
    assert dict(os.environ) == environment and torch.get_num_threads() == threads


def break_missing_shard(store, transformation):
    import shutil

    shutil.rmtree(store.folder / "shard-00001")
    return "missing shard", "shard-00001"


def break_dimension(store, transformation):
    np.save(store.folder / "shard-00002" / "old.npy", np.zeros((SHARD, OLD - 1), np.float32))
    return "shape (300, 15), expected (300, 16)", "shard-00002/old.npy"


def break_ids(store, transformation):
    np.save(store.folder / "shard-00000" / "ids.npy", np.arange(SHARD - 1))
    return "shape (299,), expected (300,)", "shard-00000/ids.npy"


def break_id_dtype(store, transformation):
    np.save(store.folder / "shard-00000" / "ids.npy", np.zeros(SHARD, np.float32))
    return "expected an integer type", "shard-00000/ids.npy"


def break_transformation_sizes(store, transformation):
    save_transformation(Transformation(OLD, SIDE + 1, NEW, (32,), (64,)), transformation)
    return "trained for 16-d old embeddings and 9-d side-info", str(transformation)


def break_transformation_file(store, transformation):
    torch.save({"weights": 1}, transformation)
    return "is not a transformation saved by fctlib", str(transformation)


def edit_manifest(store, edit):
    path = store.folder / "manifest.json"
    manifest = json.loads(path.read_text())
    edit(manifest)
    path.write_text(json.dumps(manifest))


def break_manifest_missing_field(store, transformation):
    edit_manifest(store, lambda manifest: manifest.pop("old_dim"))
    return "'old_dim' is missing", "gallery/manifest.json"


def break_manifest_field_type(store, transformation):
    edit_manifest(store, lambda manifest: manifest.update(side_info_dim="8"))
    return "'side_info_dim' must be int, got '8'", "gallery/manifest.json"


def break_manifest_shard_entry(store, transformation):
    edit_manifest(store, lambda manifest: manifest["shards"][1].update(count=300.0))
    return "'shards[1].count' must be int, got 300.0", "gallery/manifest.json"


def break_manifest_not_a_mapping(store, transformation):
    (store.folder / "manifest.json").write_text("[]")
    return "expected a mapping of keys", "gallery/manifest.json"


@pytest.mark.parametrize("damage", [break_missing_shard, break_dimension, break_ids,
                                    break_id_dtype, break_transformation_sizes,
                                    break_transformation_file, break_manifest_missing_field,
                                    break_manifest_field_type, break_manifest_shard_entry,
                                    break_manifest_not_a_mapping], ids=lambda f: f.__name__)
def test_bad_input_is_named_and_left_untouched(store, transformation, damage, capsys):
    expected, names = damage(store, transformation)
    before = tree_digest(store.folder)
    code = fct(["upgrade", str(store.folder), "--transformation", str(transformation)])
    err = capsys.readouterr().err
    assert code == 1 and expected in err and names in err, err
    assert tree_digest(store.folder) == before
    assert not (default_output(store.folder) / "manifest.json").exists()


def test_a_lost_index_is_rebuilt_by_running_the_upgrade_again(store, transformation):
    out = upgrade_gallery(store.folder, transformation, log=quiet)
    (out / "index.faiss").unlink()
    with pytest.raises(GalleryStoreError, match="index.faiss is missing; run the `fct upgrade`"):
        open_upgraded(out)
    messages = []
    upgrade_gallery(store.folder, transformation, log=messages.append)
    assert "0 to upgrade" in messages[0] and open_upgraded(out)[0].ntotal == N


def test_output_of_another_transformation_is_not_mixed_in(tmp_path, store, transformation):
    out = upgrade_gallery(store.folder, transformation, tmp_path / "out", log=quiet)
    other = save_transformation(Transformation(OLD, SIDE, NEW, (32,), (64,)), tmp_path / "h2.pt")
    with pytest.raises(GalleryStoreError, match="another transformation"):
        upgrade_gallery(store.folder, other, out, log=quiet)


def test_store_refuses_duplicate_ids_and_an_existing_store(tmp_path, data):
    ids, old, side = data
    with pytest.raises(GalleryStoreError, match="unique"):
        write_gallery_store(tmp_path / "dup", np.zeros(N, np.int64), old, side, shard_size=SHARD)
    write_gallery_store(tmp_path / "g", ids, old, side, shard_size=SHARD)
    with pytest.raises(GalleryStoreError, match="already holds"):
        write_gallery_store(tmp_path / "g", ids, old, side, shard_size=SHARD)


def test_build_index_rejects_unknown_kind(tmp_path):
    with pytest.raises(ValueError, match="index kind"):
        build_index([], [], 4, kind="hnsw")
