import json

import pytest
import torch

from fctlib.io import atomic_write, save_json
from fctlib.training.checkpoint import load_torch, save_torch


def test_roundtrip(tmp_path):
    save_torch({"w": torch.arange(3)}, tmp_path / "a" / "x.pt")
    assert torch.equal(load_torch(tmp_path / "a" / "x.pt")["w"], torch.arange(3))
    save_json({"b": 1, "a": [1.5]}, tmp_path / "m.json")
    assert json.loads((tmp_path / "m.json").read_text()) == {"a": [1.5], "b": 1}


def test_failed_write_keeps_previous_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "metrics.json"
    save_json({"ok": True}, target)

    def crash(tmp):
        tmp.write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, crash)
    assert json.loads(target.read_text()) == {"ok": True}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]
