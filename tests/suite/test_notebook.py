"""The step notebooks' shared first cell."""

from fctlib.suite.cost import measured_step_cost
from fctlib.suite.notebook import start


def test_start_builds_the_run_and_prints_its_header_and_cost(tmp_path, capsys):
    run = start("05_transformation", "smoke", 2, {"old": {"training": {"epochs": 1}}},
                runs_dir=tmp_path / "runs", results_dir=tmp_path / "results")
    assert (run.preset.name, run.seed, run.preset.old.training.epochs) == ("smoke", 2, 1)
    assert run.root == tmp_path / "runs" / "smoke" / "seed2"
    assert run.results_dir == tmp_path / "results"
    header, cost = capsys.readouterr().out.splitlines()
    assert header == (f"preset smoke (seed 2) on {run.device}; step folders under "
                      f"{tmp_path / 'runs' / 'smoke' / 'seed2'}")
    assert cost == measured_step_cost("smoke", "05_transformation")
