"""The report's last sections: the settings explored on tune, a retrieval example, the
provenance."""

from __future__ import annotations

import html

from fctlib.report import page
from fctlib.report.common import write_table
from fctlib.report.exploration import exploration_by_case
from fctlib.report.sections.context import Report


def show_exploration(report: Report) -> None:
    """`exploration`: every setting tried on tune (`fct explore`) and each case's numbers."""
    page.show(page.heading("exploration"))
    explored = report.explored
    if not len(explored):
        page.show(page.not_run("No setting explored for this preset: `fct explore` writes "
                               f"results/{report.config.name}/exploration/."))
        return
    write_table(explored, report.tables, "exploration", report.info)
    page.markdown("Every setting tried on the tune split (seed 0) before the preset was fixed; "
                  "the preset is one of them. Rows: each case's top-1 and mAP (%), numbers in "
                  "names in numeric order.")
    settings = "".join(f"<li><b>{r.setting}</b>: <code>{r.overrides}</code></li>"
                       for r in explored.itertuples())
    page.show(page.collapsed(f"the {len(explored)} settings", f"<ul>{settings}</ul>"),
              page.table(exploration_by_case(explored)))


def show_examples(report: Report) -> None:
    """The first seed's retrieval examples (notebook 05's figure)."""
    page.show(page.heading("examples"))
    if report.examples:
        first = report.examples[0]
        page.show(page.image(first, f"{first.name}: first seed; green border: same class.",
                             photo=True, width=560))
    else:
        page.show(page.not_run("No retrieval examples: notebook 05 draws them."))


def show_provenance(report: Report) -> None:
    """The run, the packages, the machine and the commits, folded."""
    items = "".join(f"<li><b>{k}</b>: {html.escape(str(v))}</li>" for k, v in report.info.items())
    page.show(page.heading("provenance"),
              page.collapsed("the run, the packages, the machine and the commits",
                             f"<ul>{items}</ul>"))
