"""The section of the update across data sets: its cases by class split, the paper's claims on
them, and a chart of A's and B's queries."""

from __future__ import annotations

from fctlib.experiment.provenance import portable_text
from fctlib.report import figures, page
from fctlib.report.cross_dataset import cross_dataset_rows, cross_dataset_table
from fctlib.report.main import claims_sentence, claims_table
from fctlib.report.sections.context import Report

ANCHOR = "cross-dataset"


def show_cross_dataset(report: Report) -> None:
    """`cross_dataset` (cases by distance and class split) and `cross_dataset_claims`, a sentence
    per verdict and the chart under the preset's distance."""
    if not report.start(ANCHOR):
        return
    chosen = report.covered[ANCHOR].select(report.records)
    first = next(iter(chosen.values()))["cross_dataset"]
    distance = report.config.distance
    page.markdown(f"Old model: data set A, every class of it; new model: A and B "
                  f"(`{first.other_data}`, classes after A's); gallery and queries: both test "
                  f"sets (`{portable_text(first.source)}`). BCT trains `{first.bct}`, the main "
                  "run's choice. "
                  "Split `old`: queries of A's classes; `new`: of B's. The same claims as the "
                  "main comparison's, judged per seed.")
    long = cross_dataset_rows(chosen)
    table = cross_dataset_table(long)
    claims = claims_table(long)
    report.save(table, "cross_dataset", ANCHOR)
    report.save(claims, "cross_dataset_claims", ANCHOR)
    page.show(page.table(table.set_index(["case", "distance", "split"])))
    page.markdown(claims_sentence(claims))
    page.show(page.figure(figures.plot_cross_dataset(table, distance),
                          report.figures / f"cross_dataset_{distance}.png",
                          f"Top-1 ({distance}) of each case for queries of A's classes and of "
                          "B's."))
