"""The notebooks: stored clean, parameterised, short cells; the whole suite runs with papermill,
and in-process without Jupyter to the same records."""

import ast
import base64
import io
import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from fctlib.evaluation.distances import DISTANCES
from fctlib.experiment.config import load_preset
from fctlib.experiment.records import load_record
from fctlib.methods import registry
from fctlib.paths import REPORT, STEPS
from fctlib.report import CASE_ORDER, read_table
from fctlib.suite.multistep import MULTISTEP_METHODS
from fctlib.suite.runner import NOTEBOOKS_DIR, run_suite

NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("*.ipynb"))
MAX_CELL_LINES = 40


def _cells(path):
    return json.loads(path.read_text())["cells"]


def test_every_step_has_a_notebook():
    assert [p.stem for p in NOTEBOOKS] == [*STEPS, REPORT]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_stored_without_outputs(path):
    for cell in _cells(path):
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None, path.name


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_one_parameters_cell_of_plain_literals(path):
    tagged = [c for c in _cells(path) if "parameters" in c["metadata"].get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: exactly one cell tagged 'parameters'"
    for node in ast.parse("".join(tagged[0]["source"])).body:
        assert isinstance(node, ast.Assign), f"{path.name}: only assignments in parameters"
        ast.literal_eval(node.value)  # raises if not a plain literal


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_parameters_have_a_type_and_help_for_papermill(path):
    from papermill import inspect_notebook

    parameters = inspect_notebook(str(path))
    assert {"preset", "overrides", "results_dir"} <= set(parameters), path.name
    for name, parameter in parameters.items():  # "None": papermill prints "Unknown type"
        assert parameter["inferred_type_name"] != "None", f"{path.name}: {name} has no type"
        assert parameter["help"], f"{path.name}: {name} has no help"


def test_overrides_as_text_from_papermill_command_line(fashion_mnist, tmp_path):
    """`papermill -p overrides '{...}'` passes text: the notebook reads it as the mapping."""
    text = '{"old": {"training": {"epochs": 1}}, "data": {"old_classes": [0, 1]}}'
    parameters = {"preset": "smoke", "overrides": text, "results_dir": str(tmp_path / "results"),
                  "runs_dir": str(tmp_path / "runs")}
    command = [sys.executable, "-m", "papermill", "00_data.ipynb", str(tmp_path / "00.ipynb"),
               "-k", "python3", *[a for k, v in parameters.items() for a in ("-p", k, v)]]
    subprocess.run(command, cwd=NOTEBOOKS_DIR, check=True, capture_output=True)
    saved = json.loads((tmp_path / "results" / "metrics" / "seed0" / "data.json").read_text())
    assert saved["old_classes"] == [0, 1]


@pytest.mark.parametrize("text", ["[1, 2]", "epochs", "{old: [", "3"])
def test_overrides_text_that_is_not_a_mapping_is_one_line_user_error(text):
    from fctlib.errors import UserError

    with pytest.raises(UserError, match="overrides .* mapping of preset keys") as err:
        load_preset("smoke", text)
    assert "\n" not in str(err.value)
    assert load_preset("smoke", "").old == load_preset("smoke").old  # empty text: no overrides


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_cells_are_short_and_use_fctlib(path):
    cells = _cells(path)
    code = "".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    assert "fctlib" in code
    for cell in cells:
        lines = "".join(cell["source"]).count("\n") + 1
        assert lines <= MAX_CELL_LINES, f"{path.name}: a cell of {lines} lines belongs in fctlib"


@pytest.fixture(scope="module")
def smoke_results(tmp_path_factory):
    """The whole suite on the smoke preset, as `make reproduce` runs it (papermill, notebooks/ as
    the working directory, default parameters but the preset and where to write)."""
    base = tmp_path_factory.mktemp("suite")
    return run_suite("smoke", [0], results_dir=base / "results", runs_dir=base / "runs",
                     log=lambda message: None)


def test_suite_writes_executed_notebooks_and_metrics(smoke_results):
    for step in STEPS:
        executed = smoke_results / "notebooks" / "seed0" / f"{step}.ipynb"
        assert any(c.get("outputs") for c in _cells(executed)), step
    for step in ("data", "old", "side_info", "new", "bct", "transformation", "side_info_size",
                 "fastfill", "ablations", "methods", "multistep", "cross_dataset"):
        assert (smoke_results / "metrics" / "seed0" / f"{step}.json").is_file(), step
    for step, shown in (("00_data", "image/jpeg"), ("05_transformation", "image/jpeg"),
                        ("07_fastfill", "image/png")):  # image grids as JPEG, charts as PNG
        kinds = {kind for cell in _cells(smoke_results / "notebooks" / "seed0" / f"{step}.ipynb")
                 for output in cell.get("outputs", []) for kind in output.get("data", {})}
        assert shown in kinds, step
    charts = [base64.b64decode(output["data"]["image/png"]) for cell in _cells(
        smoke_results / "notebooks" / "seed0" / "07_fastfill.ipynb")
        for output in cell.get("outputs", []) if "image/png" in output.get("data", {})]
    assert charts and {Image.open(io.BytesIO(png)).mode for png in charts} == {"P"}  # 256 colours


def test_executed_notebooks_keep_no_progress_bars(smoke_results):
    for step in STEPS:
        text = (smoke_results / "notebooks" / "seed0" / f"{step}.ipynb").read_text()
        assert "it/s]" not in text and "s/it]" not in text and "IProgress" not in text, step


def test_suite_tables(smoke_results):
    tables = smoke_results / "tables"
    main = read_table(tables / "main.csv")
    # one seed: the mean only, no standard deviation columns
    assert list(main.columns) == ["case", "distance", "in_protocol", "top1", "top5", "mAP",
                                  "seeds"]
    assert list(main["case"]) == list(CASE_ORDER) * 2  # under L2, then under cosine
    assert list(main["distance"]) == ["l2"] * len(CASE_ORDER) + ["cosine"] * len(CASE_ORDER)
    outside = main[~main["in_protocol"].astype(bool)]
    assert [tuple(r) for r in outside[["case", "distance"]].values] == [
        ("bct/old", "l2"), ("bct/bct", "l2"), ("fct/no-side", "cosine"), ("fct/side", "cosine")]
    assert main[["top1", "top5", "mAP"]].apply(lambda c: c.between(0, 100)).all().all()
    assert (main["top5"] >= main["top1"]).all()
    by_split = read_table(tables / "main_by_split.csv")
    assert set(by_split["split"]) == {"old", "new", "all"} and "split" in by_split.columns
    claims = read_table(tables / "claims.csv")
    assert list(claims.columns) == ["claim", "metric", "distance", "verdict", "margin",
                                    "seeds_agreeing"]
    assert set(claims["verdict"]) <= {"holds", "fails", "unresolved"}
    assert len(claims) == 6 * 2 * 2  # each claim, metric and distance
    sizes = read_table(tables / "side_info_size.csv")
    assert list(sizes.columns[:4]) == ["side_info_dim", "top1", "top5", "mAP"]
    assert list(sizes["side_info_dim"]) == [0, 4, 8]
    assert (tables / "paper_comparison.csv").is_file() and (tables / "main.md").is_file()
    variants = read_table(tables / "bct_variants.csv")  # every variant priced by its matched model
    assert variants[["matched_cost_top1", "matched_cost_mAP"]].notna().all().all()
    assert "random-rows" in set(variants["variant"])
    influence = read_table(tables / "bct_influence.csv")
    assert influence["old_classifier_accuracy"].between(0, 100).all()
    head = (tables / "main.csv").read_text().split("\ncase,")[0]
    for key in ("git_commit", "report_commit", "preset", "seeds", "packages", "machine",
                "command", "wall_seconds"):
        assert f"# {key}: " in head, key


def test_suite_ablation_and_methods_tables(smoke_results):
    tables, preset = smoke_results / "tables", load_preset("smoke")
    sources = read_table(tables / "side_info_source.csv")
    assert list(sources["source"]) == preset.ablation.side_info_sources
    assert list(sources.loc[sources["source"] == "none", "side_info_dim"]) == [0]
    shares = read_table(tables / "transformation_data_share.csv")
    assert list(shares["data_share"]) == sorted(preset.ablation.data_shares)
    assert shares["train_images"].is_monotonic_increasing
    widths = read_table(tables / "transformation_width.csv")
    assert list(widths["width_factor"]) == sorted(preset.ablation.width_factors)
    assert widths["parameters"].is_monotonic_increasing
    methods = read_table(tables / "methods.csv")
    assert list(methods.columns) == ["method", "case", "distance", "top1", "top5", "mAP",
                                     "new_top1", "in_protocol"]
    outside = methods[~methods["in_protocol"].astype(bool)]
    assert set(map(tuple, outside[["method", "distance"]].values)) == {
        ("bct", "l2"), ("oca", "l2"), ("dsimplex", "l2"),  # their authors retrieve with cosine
        ("lwf", "l2"), ("contrastive", "l2"), ("bt2-basis", "l2"),
        ("fct", "cosine"), ("fastfill", "cosine")}  # ml-fct's, with L2
    # every registered method, in table order, each case under both distances in turn
    keys = [tuple(r) for r in methods[["method", "case", "distance"]].values]
    order = [m.name for m in registry.methods()]
    assert list(dict.fromkeys(k[0] for k in keys)) == order
    assert [k[2] for k in keys] == ["l2", "cosine"] * (len(keys) // 2)
    assert all(a[:2] == b[:2] for a, b in zip(keys[::2], keys[1::2], strict=True))
    for method, case in [("independent", "old/old"), ("independent", "new/new"),
                         ("independent", "new/old"), ("bct", "bct/old"), ("bct", "bct/bct"),
                         ("fct", "fct/no-side"), ("fct", "fct/side"), ("projection", "proj/old"),
                         ("dsimplex", "dsimplex/old"), ("oca", "oca/oca-old"),
                         ("fct-arch", "fct-arch/side"), ("fct-loss", "fct-loss/side")]:
        assert (method, case, "l2") in keys, (method, case)
    values = methods[["top1", "top5", "mAP", "new_top1"]]
    assert values.apply(lambda c: c.between(0, 100)).all().all()
    by_key = methods.set_index(["case", "distance"])
    assert by_key.at[("bct/bct", "l2"), "new_top1"] == by_key.at[("bct/bct", "l2"), "top1"]
    assert by_key.at[("fct/side", "l2"), "new_top1"] == by_key.at[("new/new", "l2"), "top1"]
    own = by_key.at[("dsimplex/dsimplex", "l2"), "top1"]
    assert by_key.at[("dsimplex/old", "l2"), "new_top1"] == own
    assert by_key.at[("oca/oca-old", "l2"), "new_top1"] == by_key.at[("oca/oca", "l2"), "top1"]
    for change in ("arch", "loss"):  # a new model of its own, not the suite's new model
        own = by_key.at[(f"fct-{change}/side", "cosine"), "new_top1"]
        assert own != by_key.at[("new/new", "cosine"), "top1"]
    l2, cosine = (methods[methods["distance"] == d][["top1", "mAP"]].values for d in DISTANCES)
    assert (l2 != cosine).any()  # unnormalised embeddings: the two distances rank differently
    diagnostics = read_table(tables / "oca_diagnostics.csv").set_index("diagnostic")
    assert {"old_prototype_train", "slice_prototype_test_new_classes", "oracle_prototype_top1",
            "oca-old/oca-old top1 (cosine)"} <= set(diagnostics.index)
    assert diagnostics["mean"].between(0, 100).all()
    assert diagnostics.at["oca/oca-old top1 (cosine)", "mean"] == by_key.at[
        ("oca/oca-old", "cosine"), "top1"]
    main = read_table(tables / "main.csv").set_index(["case", "distance"])
    # the same case, embeddings and evaluation in notebooks 05 and 09 of one run: the same
    # arithmetic, so equal exactly
    for distance in DISTANCES:
        assert by_key.at[("fct/side", distance), "top1"] == main.at[("fct/side", distance),
                                                                    "top1"]


def test_suite_compatibility_tables(smoke_results):
    tables = smoke_results / "tables"
    scores = read_table(tables / "compatibility.csv")
    assert list(scores.columns) == ["method", "AC", "AM"]
    assert list(scores["method"]) == list(MULTISTEP_METHODS)  # as the methods register them
    assert scores["AC"].between(0, 1).all() and scores["AM"].between(0, 100).all()
    saved = json.loads((smoke_results / "metrics" / "seed0" / "multistep.json").read_text())
    assert [len(g) for g in saved["generations"]] == load_preset("smoke").multistep.class_counts
    assert set(saved["distances"]) == {"l2", "cosine"}
    m = {name: np.array(v["top1"], dtype=float) for name, v in saved["distances"]["l2"].items()}
    for name in ("fct-chained", "fct-direct"):  # FCT's queries are the independent models'
        assert np.array_equal(np.diag(m[name]), np.diag(m["independent"]))
    chained, direct = m["fct-chained"], m["fct-direct"]
    assert chained[1, 0] == direct[1, 0] and chained[2, 1] == direct[2, 1]  # one h either way
    assert m["bct"][0, 0] == m["independent"][0, 0]  # BCT's chain starts from the same model
    assert np.isnan(m["bct"][0, 2])  # no query of an older generation on a newer gallery
    matrices = read_table(tables / "compatibility_matrices.csv")
    assert len(matrices) == 2 * 5 * 2 * 6  # distances x methods x metrics x lower triangle
    by_distance = read_table(tables / "compatibility_by_distance.csv")
    l2 = by_distance[by_distance["distance"] == "l2"].reset_index(drop=True)
    assert l2[["method", "AC", "AM"]].equals(scores)
    criteria = read_table(tables / "compatibility_criteria.csv")
    assert {"bct/old", "oca/oca-old", "dsimplex/old", "new/old"} <= set(criteria["case"])
    prices = read_table(tables / "compatibility_price.csv")
    assert (prices.loc[prices["method"] == "fct", "price"] == 0).all()
    for metric in ("top1", "mAP"):
        for distance in DISTANCES:
            figure = smoke_results / "figures" / f"compatibility_{metric}_{distance}.png"
            assert figure.stat().st_size > 0


def test_suite_backfilling_tables(smoke_results):
    tables = smoke_results / "tables"
    curves = [("fastfill", "random"), ("fastfill", "uncertainty"), ("fastfill", "oracle"),
              ("fct", "random"), ("fct", "oracle")]
    for name in ("backfilling", "backfilling_no_side"):
        auc = read_table(tables / f"{name}.csv")
        assert list(auc.columns) == ["transformation", "order", "auc_rule", "auc_top1",
                                     "auc_top5", "auc_mAP", "seeds"]
        assert [tuple(r) for r in auc[["transformation", "order", "auc_rule"]].values] == [
            (*c, rule) for c in curves for rule in ("mean", "trapezoid")]
        areas = auc[["auc_top1", "auc_top5", "auc_mAP"]]
        assert areas.apply(lambda c: c.between(0, 100)).all().all()
        assert (auc["seeds"] == 1).all()
    points = read_table(tables / "backfilling_points.csv")
    assert len(points) == 2 * len(curves) * 22
    assert set(points["side_info_dim"]) == {0, load_preset("smoke").side_info.model.embedding_dim}
    ends = points[points["fraction"] == 1.0]  # fully backfilled: every curve is new/new
    main = read_table(tables / "main.csv").set_index(["case", "distance"])
    new = main.at[("new/new", load_preset("smoke").distance), "top1"]  # the curves' distance
    assert (ends["top1"].round(2) == new).all()
    claims = read_table(tables / "backfilling_claims.csv")
    assert set(claims["verdict"]) <= {"holds", "fails", "unresolved"} and len(claims) == 20
    paper = read_table(tables / "backfilling_paper_comparison.csv")
    assert list(paper["source"]) == ["published"] * 3 + ["ours"] * 2
    diagnostics = read_table(tables / "fastfill_diagnostics.csv").set_index("gallery")
    assert set(diagnostics.index) == {"new/new", "fastfill/side", "fct/side", "fastfill/no-side",
                                      "fct/no-side"}
    assert (diagnostics["classifier_ce"] > 0).all()
    assert diagnostics["backfilled_top1_share_at_5pct"].drop("new/new").between(0, 100).all()
    spearman = diagnostics["sigma_error_spearman"]
    assert spearman[["fastfill/side", "fastfill/no-side"]].between(-1, 1).all()
    assert spearman.drop(["fastfill/side", "fastfill/no-side"]).isna().all()


def test_report_is_self_contained_with_code_hidden(smoke_results):
    html = (smoke_results / "report.html").read_text()
    assert "data:image/png;base64" in html
    assert "report.write_table" not in html  # code cells are hidden
    assert "Main comparison" in html and '<h2 id="summary">Summary</h2>' in html
    assert "<title>fct-suite report: smoke</title>" in html
    for figure in ("main.png", "gap_closed.png", "side_info_size.png", "ablations.png",
                   "backfilling.png", "retrievals_seed0.jpg"):
        assert (smoke_results / "figures" / figure).stat().st_size > 1000
    assert 'alt="retrievals_seed0.jpg" src="data:image/jpeg;base64' in html  # the examples


def test_rerun_resumes_from_cached_steps(smoke_results, tmp_path):
    runs = smoke_results.parent / "runs" / "smoke" / "seed0"
    checkpoints = sorted(runs.glob("*/model.pt"))
    assert checkpoints
    before = {p: p.stat().st_mtime_ns for p in checkpoints}
    # rerun: executed again (at a clean commit they are done and would be skipped), they must
    # load what the first run trained
    run_suite("smoke", [0], only=["01_train_old", "05_transformation"],
              results_dir=smoke_results, runs_dir=smoke_results.parent / "runs", report=False,
              rerun=True, log=lambda message: None)
    assert {p: p.stat().st_mtime_ns for p in checkpoints} == before
    log = json.loads((smoke_results / "last_run.json").read_text())  # both runs made records
    assert log["steps"] == {"0": ["01_train_old", "05_transformation"]}
    [first] = log["earlier"]
    assert first["steps"] == {"0": [s for s in STEPS if s not in log["steps"]["0"]]}


def test_a_step_done_at_this_commit_with_this_preset_is_skipped(fashion_mnist, tmp_path,
                                                                monkeypatch):
    """A rerun skips a step that finished into the same results folder at the same clean commit
    with the same preset and steering variables; --rerun, another preset, FCT_CPU_BF16 or a dirty
    tree execute it again."""
    from fctlib.suite import runner

    executed = tmp_path / "results" / "notebooks" / "seed0" / "00_data.ipynb"
    commit = {"value": "0123456789ab"}
    monkeypatch.setattr(runner, "git_commit", lambda: commit["value"])
    monkeypatch.delenv("FCT_CPU_BF16", raising=False)

    def run(**kwargs) -> bool:
        """Whether the step executed."""
        logs = []
        run_suite("smoke", [0], only=["00_data"], results_dir=tmp_path / "results",
                  runs_dir=tmp_path / "runs", report=False, engine="in-process",
                  log=logs.append, **kwargs)
        return not any("skipped" in line for line in logs)

    assert run()
    written = executed.stat().st_mtime_ns
    assert not run() and executed.stat().st_mtime_ns == written
    assert run(rerun=True)
    assert run(overrides={"data": {"tune_fraction": 0.2}})
    assert run()  # the stamp is now the other preset's
    assert not run()
    monkeypatch.setenv("FCT_CPU_BF16", "1")
    assert run() and not run()
    monkeypatch.delenv("FCT_CPU_BF16")
    commit["value"] = "0123456789ab-dirty"
    assert run() and run()


def test_kernels_import_the_fctlib_of_the_checkout_that_runs_them(monkeypatch):
    """A kernel's PYTHONPATH starts with this checkout (then the user's), so that a second
    checkout sharing an environment with an editable install runs its own code."""
    import asyncio
    import os

    from jupyter_client.manager import AsyncKernelManager

    from fctlib.paths import project_root
    from fctlib.suite import runner

    given = {}

    async def start_kernel(self, **kwargs):
        given.update(kwargs)

    monkeypatch.setattr(AsyncKernelManager, "start_kernel", start_kernel)
    started = []
    for user_path, expected in (("/elsewhere", [str(project_root()), "/elsewhere"]),
                                (None, [str(project_root())])):
        if user_path:
            monkeypatch.setenv("PYTHONPATH", user_path)
        else:
            monkeypatch.delenv("PYTHONPATH", raising=False)
        asyncio.run(runner._kernel_manager_class(started)().start_kernel())
        assert given["env"]["PYTHONPATH"].split(os.pathsep) == expected
        assert given["env"]["FCT_PROGRESS"] == "0"
    assert len(started) == 2


def test_kernels_are_shut_down_without_an_interrupt_but_interrupted_otherwise(monkeypatch):
    import asyncio

    from jupyter_client.manager import AsyncKernelManager

    from fctlib.suite import runner

    interrupts = []

    async def interrupt(self):
        interrupts.append(self.shutting_down)

    monkeypatch.setattr(AsyncKernelManager, "_async_interrupt_kernel", interrupt)
    manager = runner._kernel_manager_class([])()
    asyncio.run(manager._async_interrupt_kernel())
    manager.shutting_down = True  # as jupyter_client sets it before its interrupt
    asyncio.run(manager._async_interrupt_kernel())
    assert interrupts == [False]


@pytest.mark.parametrize("engine", ["papermill", "in-process"])
def test_failing_notebook_names_the_error_and_the_executed_copy(engine, tmp_path, monkeypatch):
    import nbformat

    from fctlib.suite import runner

    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("preset = seed = overrides = results_dir = runs_dir = None",
                                  metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("raise ValueError('no such class')")],
        metadata={"kernelspec": {"name": "python3", "language": "python",
                                 "display_name": "Python 3"}})
    nbformat.write(notebook, tmp_path / "00_data.ipynb")
    monkeypatch.setattr(runner, "NOTEBOOKS_DIR", tmp_path)
    with pytest.raises(runner.StepFailed) as err:
        run_suite("smoke", [0], only=["00_data"], results_dir=tmp_path / "results",
                  runs_dir=tmp_path / "runs", engine=engine, log=lambda message: None)
    message = str(err.value)
    assert "00_data failed in cell 3: ValueError: no such class" in message  # 2: injected
    executed = tmp_path / "results" / "notebooks" / "seed0" / "00_data.ipynb"
    assert str(executed) in message
    outputs = nbformat.read(executed, as_version=4).cells[-1].outputs
    assert [o.output_type for o in outputs] == ["error"] and outputs[0].ename == "ValueError"


def test_class_split_is_checked_before_any_notebook(tmp_path):
    from fctlib.experiment.config import PresetError

    with pytest.raises(PresetError, match=r"data.old_classes: old_classes \[42\] are not class"):
        run_suite("smoke", [0], only=["00_data"], overrides={"data": {"old_classes": [42]}},
                  results_dir=tmp_path / "results", runs_dir=tmp_path / "runs",
                  log=lambda message: None)
    assert not list(tmp_path.iterdir())


def test_invalid_preset_stops_before_any_work(tmp_path):
    from fctlib.experiment.config import PresetError

    with pytest.raises(PresetError, match="unknown key 'old.model.widht'"):
        run_suite("smoke", [0], overrides={"old": {"model": {"widht": 3}}},
                  results_dir=tmp_path / "results", log=lambda message: None)
    assert not (tmp_path / "results").exists()



def test_suite_cross_dataset_tables(smoke_results):
    """Notebook 11 on smoke (its second data set a copy of Fashion-MNIST): every case by distance
    and class split, the claims on them, and the chart."""
    table = read_table(smoke_results / "tables" / "cross_dataset.csv")
    assert set(table["case"]) == {"old/old", "new/new", "bct/old", "bct/bct", "fct/no-side",
                                  "fct/side"}
    assert set(table["distance"]) == {"l2", "cosine"} and set(table["split"]) == {"old", "new",
                                                                                  "all"}
    assert len(table) == 6 * 2 * 3 and table["top1"].between(0, 100).all()
    claims = read_table(smoke_results / "tables" / "cross_dataset_claims.csv")
    assert {"fct/side > bct/old", "bct/old > old/old"} <= set(claims["claim"])
    assert (smoke_results / "figures" / "cross_dataset_l2.png").is_file()
    source = load_record(smoke_results / "metrics" / "seed0" / "cross_dataset.json").source
    assert source.startswith("Fashion-MNIST idx files in ")  # and no machine's absolute path:
    assert not [word for word in source.split() if word.startswith(("/", "(/"))]


# -- the in-process engine: the same suite without Jupyter -----------------------------------------
JUPYTER = ("IPython", "papermill", "nbformat", "nbconvert", "jupyter_client", "ipykernel")
TIMING_KEYS = {"seconds", "items_per_s", "wall_seconds"}  # what differs between two runs


@pytest.fixture(scope="module")
def inprocess_results(smoke_results):
    """The whole smoke suite again, `fct reproduce --engine in-process` in a Python where none of
    Jupyter's packages import (as on a bare GPU machine), from an empty runs folder."""
    base = smoke_results.parent.parent / "in-process"
    arguments = ["reproduce", "--preset", "smoke", "--engine", "in-process",
                 "--results-dir", str(base / "results"), "--runs-dir", str(base / "runs")]
    script = (f"import sys; sys.modules.update(dict.fromkeys({JUPYTER!r})); "
              f"from fctlib.suite.cli import main; sys.exit(main({arguments!r}))")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "no report.html: nbconvert is not installed" in proc.stdout
    return base / "results"


def _without_timings(value):
    if isinstance(value, dict):
        return {k: _without_timings(v) for k, v in value.items() if k not in TIMING_KEYS}
    if isinstance(value, list):
        return [_without_timings(v) for v in value]
    return value


def test_inprocess_writes_the_records_and_tables_papermill_writes(smoke_results,
                                                                  inprocess_results):
    """Both engines on one machine, with the same threads and code: the same arithmetic, so every
    record and table is equal (timings aside), not only close."""
    records = sorted(p.name for p in (smoke_results / "metrics" / "seed0").glob("*.json"))
    assert records == sorted(p.name for p in (inprocess_results / "metrics" / "seed0").glob(
        "*.json")) and len(records) == len(STEPS)
    for name in records:
        papermill, inprocess = (json.loads((r / "metrics" / "seed0" / name).read_text())
                                for r in (smoke_results, inprocess_results))
        assert _without_timings(inprocess) == _without_timings(papermill), name
    def rows(table):  # the provenance header names the command, the date and the packages
        return [line for line in table.read_text().splitlines() if not line.startswith("#")]

    tables = sorted(p.name for p in (smoke_results / "tables").glob("*.csv"))
    assert tables and tables == sorted(p.name for p in (inprocess_results / "tables").glob("*.csv"))
    for name in tables:
        assert rows(inprocess_results / "tables" / name) == rows(smoke_results / "tables" / name)


def test_inprocess_executed_notebooks_keep_text_tables_and_figures(inprocess_results):
    import nbformat

    folder = inprocess_results / "notebooks"
    for path in [*(folder / "seed0").glob("*.ipynb"), folder / f"{REPORT}.ipynb"]:
        notebook = nbformat.read(path, as_version=4)
        nbformat.validate(notebook)
        tags = [cell.metadata.get("tags", []) for cell in notebook.cells]
        injected = notebook.cells[tags.index(["parameters"]) + 1]
        assert injected.metadata.tags == ["injected-parameters"], path.name
        assert "smoke.yaml'\n" in injected.source, path.name
        kinds = {kind for cell in notebook.cells if cell.cell_type == "code"
                 for output in cell.outputs for kind in output.get("data", {"stream": 0})}
        assert "text/plain" in kinds or "stream" in kinds, path.name
        assert "it/s]" not in path.read_text(), path.name  # no progress bars
    data = nbformat.read(folder / "seed0" / "00_data.ipynb", as_version=4)
    kinds = {kind for cell in data.cells if cell.cell_type == "code" for output in cell.outputs
             for kind in output.get("data", {})}
    assert {"image/jpeg", "text/html"} <= kinds  # the class grid (a Photo) and the split table
    report_kinds = {kind for cell in nbformat.read(folder / f"{REPORT}.ipynb", as_version=4).cells
                    if cell.cell_type == "code" for output in cell.outputs
                    for kind in output.get("data", {})}
    assert {"text/html", "text/markdown"} <= report_kinds
    assert not (inprocess_results / "report.html").exists()


@pytest.mark.parametrize("step", ["old", "side_info", "new", "bct", "transformation",
                                  "side_info_size", "fastfill", "ablations", "methods",
                                  "multistep", "cross_dataset"])
def test_the_report_renders_a_folder_of_one_step(smoke_results, tmp_path, step):
    """A results folder holding one step's record beside the data's (a lent GPU session that ran
    `--steps 00_data 04_bct` alone) renders the report: what has not run is left out, not
    failed on (the gap closed needs old/old and new/new, which such a folder lacks)."""
    import shutil

    from fctlib.suite.runner import execute

    results = tmp_path / "results"
    shutil.copytree(smoke_results, results,
                    ignore=shutil.ignore_patterns("tables", "figures", f"{REPORT}.ipynb"))
    for record in (results / "metrics" / "seed0").glob("*.json"):
        if record.stem not in ("data", step):
            record.unlink()
    execute(REPORT, results / "notebooks" / f"{REPORT}.ipynb",
            {"preset": "smoke", "results_dir": str(results)}, "in-process")
    assert (results / "notebooks" / f"{REPORT}.ipynb").is_file()  # executed to its end


def test_every_step_names_the_weights_it_used_one_training_of_each_model(smoke_results):
    """Each record names the weights of every model it used (`Record.weights`), and the steps of
    a seed that shared one runs folder name one training of each (the cross-dataset run's models
    are its own: its `old` learns all of A's classes, as the seed's `new` does); each names the
    data it was made from, the seed's but for the cross-dataset run's joined data."""
    from fctlib import report
    from fctlib.experiment.records import load_records

    records = load_records(smoke_results)[0]
    for step, record in records.items():
        assert set(record.weights) == set(record.artifacts), step
    data = {step: record.data for step, record in records.items()}  # the data each was made from
    assert len({str(d) for step, d in data.items() if step != "cross_dataset"}) == 1
    assert data["cross_dataset"]["key"] != data["old"]["key"] and set(data["old"]) == {
        "key", "train", "test"}
    assert records["methods"].weights["old"] == records["old"].weights["old"]
    assert records["cross_dataset"].weights["old"] != records["old"].weights["old"]
    assert report.models_trained_apart({0: records}) == ""


def test_a_step_whose_models_were_trained_apart_is_flagged(smoke_results, tmp_path, monkeypatch):
    """01 run again from an empty runs folder in bfloat16 (keyed apart: its `old` other weights,
    as a lent session's retraining on another GPU machine gives) beside the steps that used the
    first `old`: the seed's report provenance and every section reading both say so."""
    import shutil

    from fctlib.report.sections import Report
    from fctlib.suite.runner import execute

    results = tmp_path / "results"
    shutil.copytree(smoke_results, results)
    monkeypatch.setenv("FCT_CPU_BF16", "1")
    run_suite("smoke", [0], only=["01_train_old"], results_dir=results, runs_dir=tmp_path / "runs",
              report=False, rerun=True, log=lambda message: None)
    loaded = Report.load("smoke", results_dir=results)
    assert loaded.info["models_trained_apart"] == "seed 0: old"
    assert loaded.covered["main"].retrained == {0: ("old",)}
    assert not loaded.covered["multistep"].mixed_models  # 01's record is not among its steps
    execute(REPORT, results / "notebooks" / f"{REPORT}.ipynb",
            {"preset": "smoke", "results_dir": str(results)}, "in-process")
    shown = (results / "notebooks" / f"{REPORT}.ipynb").read_text()
    assert "the steps of a seed used different trainings of one model (seed 0: old)" in shown
    assert "⚠ One seed, models trained apart" in shown  # the main section's note
