import math

import numpy as np
import torch

from fctlib.methods.bct_diagnostic import influence_diagnostic
from fctlib.methods.bct_variants import VARIANTS


def _separated_features(seed=0, per_class=40, signal=8.0, common=0.5, d=16):
    """ReLU-like features of 10 classes (0-4 old): a shared positive part, a strong class
    direction, small noise; and an old classifier like a trained one (short, zero-mean rows with
    a logit gap of several nats)."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(10), per_class)
    x = common * np.ones(d) + signal * np.eye(d)[labels] + 0.3 * rng.normal(size=(len(labels), d))
    old_rows = 1.2 * (np.eye(d)[:5] - np.eye(d)[:5].mean(0))
    return np.maximum(x, 0).astype(np.float32), labels, torch.tensor(old_rows, dtype=torch.float32)


def test_diagnostic_separated_old_features_sit_near_the_floor_except_under_the_hybrid():
    x, labels, old_rows = _separated_features()
    rows = {r["variant"]: r for r in influence_diagnostic(x, labels, old_rows, [0, 1, 2, 3, 4],
                                                          10)}
    assert list(rows) == list(VARIANTS)
    for name in ("openbct", "openbct-g", "bt2", "openbct-normsm"):
        r = rows[name]
        assert r["ce"] - r["floor"] < 0.15, (name, r)
        assert r["accuracy_old"] > 0.95 and not r["flagged"], (name, r)
    assert rows["bt2"]["floor"] > 1.0  # unit features and rows bound its logits to [-1, 1]
    assert rows["openbct"]["new_row_wins"] is None  # old rows only
    hybrid = rows["hybrid"]
    assert hybrid["ce_old"] > math.log(10) + 1 and hybrid["ce_old"] - hybrid["floor"] > 2
    assert hybrid["new_row_wins"] > 0.9 and hybrid["flagged"]
