"""A suite run as a retrieval system: export its gallery, upgrade it, search it with the new
model; faiss's exact search agrees with the suite's own metrics (an independent computation)."""

import json

import numpy as np
import pytest

from fctlib.deploy.gallery_store import MANIFEST
from fctlib.methods.fct import TransformationName, transformed_gallery
from fctlib.suite.cli import main as fct
from fctlib.suite.export import SearchResult, hit_rates, search_index
from fctlib.suite.run import Run
from tests.suite.test_cli import assert_refused, write_store


def test_search_index_drops_the_query_itself():
    import faiss

    gallery = np.array([[0.0], [1.0], [3.0], [7.0]], np.float32)
    index = faiss.IndexIDMap(faiss.IndexFlatL2(1))
    index.add_with_ids(gallery, np.array([10, 11, 12, 13]))
    found = search_index(index, gallery, 2, "l2", exclude_ids=np.array([10, 11, 12, 13]))
    assert found.ids.tolist() == [[11, 12], [10, 12], [11, 10], [12, 11]]


def test_hit_rates_by_hand():
    # query 0: hit at rank 1; query 1: hit at rank 2; query 2: nothing found (faiss's -1)
    result = SearchResult(ids=np.array([[1, 2], [2, 0], [-1, -1]]), scores=np.zeros((3, 2)))
    labels = np.array([1, 1, 0])
    assert hit_rates(result, labels, labels, ks=(1, 2)) == {
        "top1": pytest.approx(100 / 3), "top2": pytest.approx(200 / 3)}


def test_search_never_trains(tmp_path, capsys, fashion_mnist):
    store, h, up = write_store(tmp_path)
    manifest = json.loads((up / MANIFEST).read_text())
    manifest["source"] = {"preset": "smoke", "seed": 0, "split": "test", "side_dim": 4}
    (up / MANIFEST).write_text(json.dumps(manifest))
    runs = tmp_path / "empty-runs"
    runs.mkdir()
    assert_refused(["search", str(up), "--runs-dir", str(runs)],
                   "fct train-step --preset smoke --seed 0 --step new --runs-dir "
                   f"{runs}", tmp_path, capsys)
    assert not list(runs.iterdir())


@pytest.mark.slow
def test_export_upgrade_search_on_the_smoke_run(tmp_path, capsys):
    runs = tmp_path / "runs"
    assert fct(["export-gallery", "--preset", "smoke", "--out", str(tmp_path / "fm"),
                "--shard-size", "100", "--runs-dir", str(runs)]) == 0
    gallery = tmp_path / "fm" / "gallery"
    assert fct(["upgrade", str(gallery), "--transformation",
                str(tmp_path / "fm" / "transformation.pt")]) == 0
    capsys.readouterr()
    assert fct(["search", str(tmp_path / "fm" / "gallery-upgraded"), "--queries", "3",
                "-k", "5", "--runs-dir", str(runs)]) == 0
    printed = capsys.readouterr().out
    assert "hit_rates" in printed and "neighbours" in printed

    from fctlib.suite.export import search_run

    found = search_run(tmp_path / "fm" / "gallery-upgraded", [3], k=5, runs_dir=runs)
    run = Run("smoke", 0, runs_dir=runs)
    side_dim = run.preset.side_info.model.embedding_dim
    expected = run.evaluate(run.embeddings("new", "test"),
                            transformed_gallery(run, TransformationName(side_dim)))
    assert found["hit_rates"]["top1"] == pytest.approx(100 * expected["all"]["top1"], abs=0.5)
    assert found["hit_rates"]["top5"] == pytest.approx(100 * expected["all"]["top5"], abs=0.5)
    assert 3 not in found["neighbours"][3]["ids"] and len(found["neighbours"][3]["ids"]) == 5
