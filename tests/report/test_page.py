"""The report page: contents with anchors, tables that say `—` for nothing, narrow wide tables,
warnings marked, and light figures."""

import numpy as np
import pandas as pd

from fctlib import report
from fctlib.report import page
from tests.report.test_main import RECORDS


def test_contents_link_every_section_and_mark_the_ones_not_run():
    covered = {s.anchor: report.coverage(RECORDS, s.steps) for s in page.SECTIONS if s.steps}
    html = page.contents({**covered, "exploration": False, "examples": True})
    assert html.count("<li>") == len(page.SECTIONS)
    assert '<a href="#main">Main comparison</a></li>' in html
    assert ('<a href="#ablations">Ablations of h (side-info source, data share, width)</a> '
            '<span class="not-run">(not run)</span>') in html
    assert '<a href="#exploration">Protocol exploration</a> <span' in html
    assert page.heading("main") == '<h2 id="main">Main comparison</h2>'


def test_tables_show_nothing_as_a_dash_and_name_the_index_in_the_corner():
    frame = pd.DataFrame({"case": ["a", "b"], "top1": [81.14, np.nan], "gap": [0.7281, 1.5]})
    html = page.table(frame.set_index("case"))
    assert "<td>—</td>" in html and "<td>81.14</td>" in html and "<td>0.728</td>" in html
    assert "nan" not in html.lower()
    assert html.count("<tr") == 3  # header, two rows: no row of its own for the index name


def test_a_wide_table_gets_two_column_levels():
    wide = pd.DataFrame({"source": ["ours"], "fct_random_auc_top1": [1.0],
                         "fastfill_uncertainty_auc_top1": [2.0], "gain_auc_top1": [1.0]})
    narrow = page.two_level(wide, {"fct_random_auc_": "FCT random",
                                   "fastfill_uncertainty_auc_": "FastFill", "gain_auc_": "gain"})
    assert list(narrow.columns) == [("FCT random", "top1"), ("FastFill", "top1"),
                                     ("gain", "top1")]
    assert list(narrow.index) == ["ours"]


def test_coverage_warnings_are_marked():
    cov = report.coverage({0: RECORDS[0], 1: {"old": RECORDS[1]["old"]}}, ("old", "new"))
    html = page.coverage_note(cov)
    assert ('<span class="warn">⚠ Left out (partial seeds): seed 1 lacks 03_train_new.</span>'
            in html)


def test_figures_are_saved_as_palette_pngs_and_embedded(tmp_path):
    import matplotlib.pyplot as plt
    from PIL import Image

    fig, ax = plt.subplots(figsize=(6, 3))
    ax.plot(np.linspace(0, 1, 50), np.random.default_rng(0).random(50))
    html = page.figure(fig, tmp_path / "chart.png", "a caption")
    assert Image.open(tmp_path / "chart.png").mode == "P"
    assert html.startswith('<img alt="chart.png" src="data:image/png;base64,')
    assert "a caption" in html
    assert fig.number not in plt.get_fignums()  # closed: the notebook does not show it twice
    photo = page.image(tmp_path / "chart.png", photo=True, width=300)
    assert 'src="data:image/jpeg;base64,' in photo
