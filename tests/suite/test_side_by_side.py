"""Training a seed's artifacts side by side in worker processes (fctlib.suite.side_by_side): what
a run still has to make, upstream first; the same models as one process trains; a failure named
and what needs it not started."""

import torch

from fctlib.experiment.store import Artifact, weights_digest
from fctlib.methods.registry import ArtifactNameError
from fctlib.suite.run import Run
from fctlib.suite.side_by_side import Workers, unfinished


class StubRun:
    """What `unfinished` asks a run: declared artifacts by name, the store's finished ones."""

    def __init__(self, artifacts: dict, finished: set[str]):
        self.artifacts, self.store, self.held = artifacts, self, finished

    def artifact(self, name):
        if name not in self.artifacts:
            raise ArtifactNameError(f"unknown artifact {name!r}")
        return self.artifacts[name]

    def finished(self, artifact):
        return artifact.name in self.held


def test_a_step_makes_what_it_uses_and_their_upstream_unless_held():
    def declared(name, *upstream):
        return Artifact(name, name, (), fit=None, upstream=upstream)

    old, new = declared("old"), declared("new")
    h = declared("h:8", old, new, declared("side:8"))
    run = StubRun({a.name: a for a in (old, new, h)}, finished={"old"})
    # h's upstream not held is made first; a notebook's own name is never held
    assert unfinished(run, ["h:8", "fastfill:0", "old"]) == {
        "h:8": {"new", "side:8"}, "new": set(), "side:8": set(), "fastfill:0": None}
    run.held |= {"h:8"}
    assert unfinished(run, ["h:8", "new"]) == {"new": set()}


def smoke_arguments(folder) -> dict:
    """The Run arguments of the smoke preset's seed 0 on a CPU, its folders under `folder`."""
    return {"preset": "smoke", "seed": 0, "runs_dir": str(folder / "runs"),
            "results_dir": str(folder / "results"), "device": torch.device("cpu")}


def test_side_by_side_trains_upstream_first_the_models_one_process_trains(fashion_mnist,
                                                                           tmp_path):
    arguments = smoke_arguments(tmp_path / "side-by-side")
    run = Run(**arguments)
    with Workers(arguments, 2) as workers:
        result = workers.train(run, ["h:8"], log=lambda line: None)
        assert sorted(result.trained) == ["h:8", "new", "old", "side:8"]
        assert result.trained[-1] == "h:8" and not result.failed and not result.not_started
        assert all(run.store.finished(run.artifact(n)) for n in result.trained)
        # held now: nothing is trained again; the same workers train the next call's
        assert workers.train(run, ["h:8"], log=lambda line: None).trained == []
        assert workers.train(run, ["h:0"], log=lambda line: None).trained == ["h:0"]
    # what a worker trained is what one process trains (the same code and arithmetic)
    alone = Run(**smoke_arguments(tmp_path / "alone"))
    for name in ("old", "h:8"):
        assert weights_digest(run.trained(name)[0]) == weights_digest(alone.trained(name)[0])


def test_a_failed_training_is_named_and_what_needs_it_is_not_started(fashion_mnist, tmp_path):
    arguments = smoke_arguments(tmp_path)
    run = Run(**arguments)
    side = run.store.folder(run.artifact("side:8"))
    side.mkdir(parents=True)
    (side / "model.pt").write_bytes(b"not a checkpoint")  # an unfinished training to resume
    lines = []
    with Workers(arguments, 2) as workers:
        result = workers.train(run, ["h:8", "new"], log=lines.append)
    assert sorted(result.trained) == ["new", "old"]
    assert list(result.failed) == ["side:8"] and result.not_started == ["h:8"]
    assert any("side:8 failed" in line for line in lines)
