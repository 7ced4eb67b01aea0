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
    diagnostics_table,
)
from fctlib.report.sections.context import Report


def show_backfilling(report: Report) -> None:
    """`backfilling_points`, `backfilling` (with side-info), `backfilling_no_side`,
    `backfilling_claims`, `backfilling_paper_comparison` and `fastfill_diagnostics`, with the
    curves' chart."""
    if not report.start("backfilling"):
        return
    long = report.backfilling_points
    page.markdown("Area under the curve of retrieval against the share of the gallery "
                  "re-embedded by the new model (22 points, %): `mean` is the published rule, "
                  "`trapezoid` the trapezoid rule. Oracle: largest ||new - h(old)|| first (needs "
                  "the new embeddings), for FastFill's h and FCT's.")
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
    diagnostics = diagnostics_table(report.covered["backfilling"].select(report.records))
    if len(diagnostics):
        report.save(diagnostics, "fastfill_diagnostics", "backfilling")
        page.markdown("**Where the transformed galleries sit** (test split, mean over seeds): "
                      "`classifier_ce`, the frozen new classifier's cross-entropy on the gallery "
                      "(below new/new's: h fitted the classifier rather than the new embeddings); "
                      "`backfilled_top1_share_at_5pct`, the share of new queries whose nearest "
                      "item is a backfilled one when 5% of the gallery is backfilled at random (%; "
                      "far above 5: the new embeddings crowd out the transformed ones); "
                      "`sigma_error_spearman`, the rank correlation of FastFill's sigma with its "
                      "h's real error per gallery item (1: sigma orders the items as the oracle "
                      "does); `fit_mse_train` and `fit_mse_tune`, the gallery's h's mean squared "
                      "error against the new embeddings where it was fitted and on tune, "
                      "unaugmented (tune far above train: h overfits; FCT's from notebook 05).")
        page.show(page.table(diagnostics.set_index("gallery")))
