"""No method's loss step waits for the device: every trained artifact of the smoke preset trained
for its epochs while each call of its loss step is watched for the operations that make a GPU's
host wait for the device (`nonzero`, a tensor read as a Python number or truth value, boolean
indexing, `masked_select`, `unique`, ...). One such wait a step stops the host from queueing the
next step's work while the GPU runs this one: small batches then run at the pace of the launches
(on the H200, bt2's batch-128 steps at 0.19 of the batch-512 rate, before BCT's influence loss
stopped selecting samples). Only BCT's influence loss and SimCLR's jitter (in the batches, not the
loss) take another form on a CPU (checked on the meta device: `tests/test_gpu_speed.py`); every
other loss computes here as on a GPU."""

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from fctlib.suite.run import Run
from fctlib.training import compiled
from tests.methods.test_compiled_methods import TARGETS, artifact

CPU = torch.device("cpu")
aten = torch.ops.aten
WAITING = {aten.nonzero.default, aten._local_scalar_dense.default, aten.is_nonzero.default,
           aten.masked_select.default, aten._unique2.default, aten.unique_dim.default,
           aten.unique_consecutive.default, aten.equal.default, aten.bincount.default,
           aten.repeat_interleave.Tensor}
# BCT's influence loss selects the covered classes' samples on a CPU, and computes on the whole
# batch on an accelerator (`bct_variants.WholeBatchInfluence`, `tests/methods/test_bct.py`)
CPU_FORMS = {t for t in TARGETS if t.startswith("bct:")}


def boolean_index(func, args) -> bool:
    """Whether an indexing operation selects by a boolean mask (its output size is the count)."""
    if func not in (aten.index.Tensor, aten.index_put.default, aten.index_put_.default):
        return False
    return any(i is not None and i.dtype == torch.bool for i in args[1])


class Waits(TorchDispatchMode):
    """Records each operation that would make the host wait for a GPU."""

    def __init__(self):
        super().__init__()
        self.found: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func in WAITING or boolean_index(func, args):
            self.found.append(str(func))
        return func(*args, **(kwargs or {}))


def test_the_watch_sees_what_waits():
    x = torch.arange(6.0)
    with Waits() as waits:
        _ = x[x > 2]
        _ = x.sum().item()
        _ = torch.nonzero(x)
        if (x > 4).any():
            pass
        _ = x * 2 + 1  # stays on the device
    assert waits.found == ["aten.index.Tensor", "aten._local_scalar_dense.default",
                           "aten.nonzero.default", "aten._local_scalar_dense.default"]


@pytest.fixture(scope="module")
def waits_by_target(fashion_mnist, tmp_path_factory):
    """{target: operations that waited, over every loss step of its training}, each target
    trained eagerly from a runs folder whose upstream models are trained first (unwatched)."""
    found = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FCT_COMPILE", "0")
        patch.setenv("FCT_COMPILE_H", "0")
        run = Run("smoke", 0, runs_dir=tmp_path_factory.mktemp("waits"), device=CPU)
        watched = []
        step = compiled.LossStep.__call__

        def watched_step(self, batch):
            with Waits() as waits:
                loss = step(self, batch)
            watched.extend(waits.found)
            return loss

        for target in TARGETS:
            for upstream in artifact(run, target).upstream:
                run.trained(upstream)
            with patch.context() as inner:
                inner.setattr(compiled.LossStep, "__call__", watched_step)
                watched.clear()
                run.trained(artifact(run, target))
            found[target] = sorted(set(watched))
    return found


@pytest.mark.slow
@pytest.mark.parametrize("target", [t for t in TARGETS if t not in CPU_FORMS])
def test_no_loss_step_waits_for_the_device(waits_by_target, target):
    assert waits_by_target[target] == []
