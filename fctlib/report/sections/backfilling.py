"""The partial backfilling section (FastFill): areas under the curves, their chart, FastFill's
claims and its area beside the published runs."""

from __future__ import annotations

from fctlib.report import figures, page
from fctlib.report.backfilling import (
    PUBLISHED_BACKFILLING_SOURCE,
    backfilling_claims,
    backfilling_paper_comparison,
    backfilling_points_table,
    backfilling_sentence,
    backfilling_table,
)
from fctlib.report.sections.context import Report


def show_backfilling(report: Report) -> None:
    """`backfilling_points`, `backfilling` (with side-info), `backfilling_no_side`,
    `backfilling_claims` and `backfilling_paper_comparison`, with the curves' chart."""
    if not report.start("backfilling"):
        return
    long = report.backfilling_points
    page.markdown("Area under the curve of retrieval against the share of the gallery "
                  "re-embedded by the new model (22 points, %): `mean` is the published rule, "
                  "`trapezoid` the trapezoid rule. Oracle: largest ||new - h(old)|| first (needs "
                  "the new embeddings).")
    points = backfilling_points_table(long)
    report.save(points, "backfilling_points", "backfilling")
    for name, dim in (("backfilling", report.config.side_info.model.embedding_dim),
                      ("backfilling_no_side", 0)):
        auc = backfilling_table(long, dim)
        report.save(auc, name, "backfilling")
        page.markdown(f"`{name}`: side-info of size {dim}" if dim else f"`{name}`: no side-info")
        page.show(page.table(auc.set_index(["transformation", "order", "auc_rule"])))
    page.show(page.figure(figures.plot_backfilling(points), report.figures / "backfilling.png",
                          "Mean over seeds; band: standard deviation (none with one seed)."))
    claims = backfilling_claims(long)
    report.save(claims, "backfilling_claims", "backfilling")
    page.markdown(backfilling_sentence(claims))
    page.show(page.collapsed("every FastFill claim",
                             page.table(claims.set_index(["side_info_dim", "claim", "metric"]))))
    paper = backfilling_paper_comparison(long, ours_label=report.config.name)
    report.save(paper, "backfilling_paper_comparison", "backfilling")
    page.markdown("FastFill's area (mean rule, %) beside the published runs; `gain`: FastFill in "
                  "uncertainty order minus FCT in random order, in points. Published: "
                  f"{PUBLISHED_BACKFILLING_SOURCE}.")
    page.show(page.table(page.two_level(paper, {
        "fct_random_auc_": "FCT, random order",
        "fastfill_uncertainty_auc_": "FastFill, uncertainty order", "gain_auc_": "gain"})))
