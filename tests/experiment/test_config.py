import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from fctlib.experiment.config import (
    METHOD_SECTIONS,
    PARAMS_DIR,
    PresetError,
    load_preset,
    preset_names,
    resolve_preset_path,
)

PRESETS = preset_names()


@pytest.mark.parametrize("name", PRESETS)
def test_every_preset_validates(name):
    preset = load_preset(name)
    assert preset.name == name
    assert preset.seeds


def test_defaults_are_layered_under_the_preset():
    smoke = load_preset("smoke")
    assert smoke.old.model.width == 4  # from smoke.yaml
    assert smoke.old.model.arch == "small_cnn"  # from defaults.yaml
    assert smoke.side_info.temperature == 0.5


def _write(tmp_path, text):
    path = tmp_path / "p.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("text, message", [
    ("name: x\nold: {model: {widht: 3}}\n", "unknown key 'old.model.widht'"),
    ("name: x\nbogus: 1\n", "unknown key 'bogus'"),
    ("name: x\nold: {training: {epochs: ten}}\n", "'old.training.epochs' must be int"),
    ("name: x\nold: {training: {epochs: 0}}\n", "impossible value in 'old.training'"),
    ("name: x\nbct: {normsm_scale: 3}\n", "'bct' is now 'methods.bct'; move it there"),
    ("name: x\nmultistep: {bct_weight: 2}\n",
     "'multistep.bct_weight' is gone: the multi-step chain trains the BCT variant and weight "
     "chosen on tune"),
    ("name: x\ndistance: manhattan\n", "distance must be one of"),
    ("name: x\ndata: {tune_fraction: 1.5}\n", "tune_fraction"),
    ("name: x\ndata: {path: disk}\n", "path must be one of"),
    ("name: x\nold: {model: {arch: vgg}}\n", "unknown arch"),
    ("name: x\ndata: {dataset: {name: kmnist}}\n", "unknown data set name"),
    ("name: x\nseeds: []\n", "seeds is empty; list at least one seed"),
    ("name: ../../x\n", "must be a plain name"),
    ("name: .hidden\n", "must be a plain name"),
])
def test_bad_presets_name_the_key_and_the_file(tmp_path, text, message):
    path = _write(tmp_path, text)
    with pytest.raises(PresetError) as err:
        load_preset(path)
    assert message in str(err.value)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("text", ["", "\n\n", "# a preset to fill in\n# name: x\n"])
def test_an_empty_preset_is_refused(tmp_path, text):
    path = _write(tmp_path, text)
    with pytest.raises(PresetError, match="is empty") as err:
        load_preset(path)
    assert str(path) in str(err.value)


def test_overrides_are_validated_too(tmp_path):
    preset = load_preset("smoke", {"old": {"training": {"epochs": 3}}})
    assert preset.old.training.epochs == 3
    with pytest.raises(PresetError, match="unknown key 'old.training.epoch'"):
        load_preset("smoke", {"old": {"training": {"epoch": 3}}})


def test_int_accepted_where_float_expected(tmp_path):
    preset = load_preset(_write(tmp_path, "name: x\nold: {training: {lr: 1}}\n"))
    assert preset.old.training.lr == 1.0 and isinstance(preset.old.training.lr, float)


def test_missing_preset_lists_places():
    with pytest.raises(FileNotFoundError, match="params"):
        resolve_preset_path("no-such-preset")
    assert resolve_preset_path("smoke") == (PARAMS_DIR / "smoke.yaml").resolve()
    assert Path(resolve_preset_path("params/smoke.yaml")).name == "smoke.yaml"


@dataclass(frozen=True)
class _Section:
    weights: list[float] = field(default_factory=lambda: [1.0])

    def __post_init__(self):
        if min(self.weights) <= 0:
            raise ValueError(f"weights must be > 0, got {self.weights}")


def test_a_method_section_is_typed_by_the_dataclass_its_method_registers(tmp_path, monkeypatch):
    monkeypatch.setitem(METHOD_SECTIONS, "demo", _Section)
    assert load_preset("smoke").method("demo") == _Section()  # the dataclass's defaults
    path = _write(tmp_path, "name: x\nmethods: {demo: {weights: [2, 3]}}\n")
    preset = load_preset(path)
    preset.check_methods()
    assert preset.method("demo").weights == [2.0, 3.0]


@pytest.mark.parametrize("text, message", [
    ("name: x\nmethods: {demo: {wieghts: [2]}}\n", "unknown key 'methods.demo.wieghts'"),
    ("name: x\nmethods: {demo: {weights: [0]}}\n", "impossible value in 'methods.demo': weights"),
    ("name: x\nmethods: {dmeo: {}}\n", "unknown key 'methods.dmeo' (known: "),
    ("name: x\nmethods: [demo]\n", "'methods' must be a mapping"),
    ("name: x\nsource: here\n", "unknown key 'source'"),
])
def test_a_bad_method_section_is_refused_before_any_work(tmp_path, monkeypatch, text, message):
    monkeypatch.setitem(METHOD_SECTIONS, "demo", _Section)
    path = _write(tmp_path, text)
    with pytest.raises(PresetError, match=re.escape(message)) as err:
        load_preset(path).check_methods()
    assert str(path) in str(err.value)
