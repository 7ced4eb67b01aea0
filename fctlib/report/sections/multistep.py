"""The multi-step section: compatibility matrices per method, AC and AM, under each distance."""

from __future__ import annotations

from fctlib.report import figures, page
from fctlib.report.multistep import (
    compatibility_sentence,
    compatibility_table,
    fit_error_table,
    matrix_rows,
    matrix_table,
    scores_rows,
    scores_table,
)
from fctlib.report.sections.context import Report


def show_multistep(report: Report) -> None:
    """`compatibility_matrices`, `compatibility_by_distance` and `compatibility` (the preset's
    distance), a sentence and the matrices' charts per distance (the others folded), and
    `multistep_fit_error` (FCT's transformations' fit errors) where recorded."""
    if not report.start("multistep"):
        return
    chosen, distance = report.covered["multistep"].select(report.records), report.config.distance
    seeds = len(report.covered["multistep"].seeds)
    page.markdown("Entry (i, j): generation i's queries against generation j's gallery (%). AC: "
                  "share of pairs i > j beating generation j's own retrieval; AM: mean of the "
                  "lower triangle (%). `compatibility.csv`: top-1 under the preset's distance "
                  f"({distance}).")
    matrices = matrix_table(matrix_rows(chosen))
    scores = scores_table(scores_rows(chosen))
    report.save(matrices, "compatibility_matrices", "multistep")
    report.save(scores, "compatibility_by_distance", "multistep")
    report.save(compatibility_table(scores, distance), "compatibility", "multistep")
    page.show(page.table(scores.set_index(["distance", "method"])))
    for each in dict.fromkeys(matrices["distance"]):
        page.markdown(compatibility_sentence(compatibility_table(scores, each), seeds, each))
        charts = "".join(page.figure(figures.plot_compatibility(matrices, metric, each),
                                     report.figures / f"compatibility_{metric}_{each}.png")
                         for metric in ("top1", "mAP"))
        page.show(charts if each == distance else
                  page.collapsed(f"compatibility matrices under {each}", charts))
    fit_error = fit_error_table(chosen)
    if len(fit_error):
        report.save(fit_error, "multistep_fit_error", "multistep")
        page.markdown("FCT's transformations between generations: each h's mean squared error on "
                      "the training images of its target generation's classes (fitted) and on "
                      "those of tune (held out), unaugmented.")
        page.show(page.table(fit_error.set_index("transformation")))
