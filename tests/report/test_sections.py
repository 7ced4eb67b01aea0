"""The report notebook's sections, run on a committed preset's metrics: they rewrite its
committed tables with the same numbers and show every section, in the page's order."""

import shutil

import pytest

from fctlib.paths import committed_presets, results_root
from fctlib.report import page, sections

IN_ORDER = (sections.show_opening, sections.show_main, sections.show_claims,
            sections.show_splits, sections.show_gap, sections.show_bct,
            sections.show_side_info_size, sections.show_ablations, sections.show_methods,
            sections.show_multistep, sections.show_backfilling, sections.show_cross_dataset,
            sections.show_exploration,
            sections.show_examples, sections.show_provenance)  # as notebook 99 calls them


def _numbers(path):
    return [line for line in path.read_text().splitlines()
            if not line.startswith(("# ", "<!-- "))]


def test_both_cpu_presets_are_committed():
    assert {"fashion-mnist", "tiny-imagenet-100"} <= set(committed_presets())


@pytest.mark.parametrize("preset", committed_presets())  # a GPU check's folder as it comes back
def test_sections_rewrite_the_committed_tables(preset, tmp_path, monkeypatch):
    committed = results_root(preset)
    for name in ("metrics", "exploration"):
        if (committed / name).is_dir():
            shutil.copytree(committed / name, tmp_path / name)
    for name in ("last_run.json", "not_run.json"):
        if (committed / name).is_file():
            shutil.copy(committed / name, tmp_path / name)
    (tmp_path / "figures").mkdir()
    for example in committed.glob("figures/retrievals_seed*.png"):
        shutil.copy(example, tmp_path / "figures")
    shown = []
    monkeypatch.setattr(page, "show", lambda *html: shown.append("".join(html)))
    monkeypatch.setattr(page, "markdown", shown.append)
    report = sections.Report.load(preset, results_dir=tmp_path)
    for show in IN_ORDER:
        assert show(report) is None  # a notebook cell would display a returned value
    written = sorted(p.name for p in (tmp_path / "tables").iterdir())
    assert written == sorted(p.name for p in (committed / "tables").iterdir())
    for name in written:
        assert _numbers(tmp_path / "tables" / name) == _numbers(committed / "tables" / name), name
    html = "".join(shown)
    anchors = [html.index(f'<h2 id="{s.anchor}">') for s in page.SECTIONS]
    assert anchors == sorted(anchors) and html.index('<h2 id="summary">') < anchors[0]


def test_provenance_values_are_shown_as_text(monkeypatch):
    from types import SimpleNamespace

    from fctlib.report import page
    from fctlib.report.sections import appendix

    shown = []
    monkeypatch.setattr(page, "show", lambda *parts: shown.extend(parts))
    info = {"command": "fct reproduce --runs-dir <runs-dir>"}
    appendix.show_provenance(SimpleNamespace(info=info))
    assert "--runs-dir &lt;runs-dir&gt;" in "".join(shown)
