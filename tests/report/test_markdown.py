"""The Markdown writer lays tables out as tabulate does (pandas' `to_markdown`), so the tables
and the report read the same whether or not tabulate is installed."""

import math

import numpy as np
import pandas as pd
import pytest

from fctlib.paths import project_root
from fctlib.report import read_table
from fctlib.report.markdown import markdown_table

EDGE_CASES = {
    "floats and ints": pd.DataFrame({"case": ["old/old", "new/new"], "top1": [71.64, 83.25],
                                     "seeds": [3, 3]}),
    "all numeric (one float block)": pd.DataFrame({"n": [1, 20], "x": [0.5, 1e-05],
                                                   "y": [1234567.0, -2.0]}),
    "decimal points aligned": pd.DataFrame({"x": [1.5, 10.25, 100.0, -0.125, 3e-07]}),
    "missing and infinite": pd.DataFrame({"x": [np.nan, 1.25, math.inf], "label": ["a", None, "c"],
                                          "flag": [True, False, True]}),
    "numbers written as text": pd.DataFrame({"a": ["1", "22", "333"], "b": ["1.5", "2", "x"],
                                             "c": ["1,000", "2,000.5", ""],
                                             "d": ["nan", "inf", "1"]}),
    "text with spaces and a wide header": pd.DataFrame({"a much longer header": [" padded ", "x"],
                                                        "v": [np.int64(7), np.int64(-8)]}),
    "booleans alone": pd.DataFrame({"in_protocol": [True, False]}),
}


@pytest.mark.parametrize("name", EDGE_CASES)
@pytest.mark.parametrize("index", [False, True])
def test_the_layout_is_tabulates(name, index):
    pytest.importorskip("tabulate")
    table = EDGE_CASES[name]
    assert markdown_table(table, index=index) == table.to_markdown(index=index)


def test_a_named_index_heads_its_column():
    pytest.importorskip("tabulate")
    table = EDGE_CASES["floats and ints"].set_index("case").rename_axis("claim")
    assert markdown_table(table).splitlines()[0].startswith("| claim ")
    assert markdown_table(table) == table.to_markdown()


def test_every_committed_table_reads_as_written():
    """Each committed tables/*.md lays out the table its .csv holds (tabulate wrote those made
    before fctlib.report.markdown)."""
    pairs = [(csv, csv.with_suffix(".md"))
             for csv in sorted((project_root() / "results").glob("**/tables/*.csv"))
             if csv.with_suffix(".md").is_file()]
    assert len(pairs) >= 40
    for csv, md in pairs:
        table = read_table(csv)
        body = "\n".join(line for line in md.read_text().splitlines()
                         if not line.startswith("<!--"))
        assert (markdown_table(table, index=False) if len(table) else "(empty)") == body, csv
