"""The sections of the main comparison: its table and chart, the paper's claims, the split by
class, and the share of the old-to-new gap closed."""

from __future__ import annotations

from fctlib.report import figures, page
from fctlib.report.main import (
    at_distance,
    claims_sentence,
    claims_table,
    gap_closed,
    main_by_split_table,
    main_table,
    paper_comparison,
    published_gaps,
)
from fctlib.report.sections.context import Report


def show_main(report: Report) -> None:
    """The main comparison (`main`, `main_by_split`): its table and chart."""
    if report.start("main"):
        table = main_table(report.cases)
        report.save(table, "main", "main")
        report.save(main_by_split_table(report.cases), "main_by_split", "main")
        distance = report.config.distance
        page.markdown("Each case under L2 and under cosine; `in_protocol` marks the distance its "
                      "method's authors retrieve with (BCT: cosine, as openBCT and BT-2 rank "
                      "normalised features; FCT: L2, as ml-fct does; old and new: both).")
        page.show(page.table(table.set_index(["case", "distance"])),
                  page.figure(figures.plot_cases(at_distance(table, distance)),
                              report.figures / "main.png",
                              f"Under {distance} (the preset's distance). Bars: mean over the "
                              "seeds counted; error bars: standard deviation (none with one "
                              "seed)."))


def show_claims(report: Report) -> None:
    """The paper's claims (`claims`): one sentence, every claim and metric folded."""
    if report.start("claims"):
        table = claims_table(report.cases)
        report.save(table, "claims", "main")
        page.markdown(claims_sentence(table))
        page.show(page.collapsed("every claim and metric", page.table(table, index=False)))


def show_splits(report: Report) -> None:
    """The main comparison by class split of the queries, folded."""
    if report.start("splits"):
        page.markdown("Queries of the old model's classes, of the new classes, of all; the "
                      "gallery is always the whole test set.")
        by_split = main_by_split_table(report.cases).set_index(["case", "distance", "split"])
        page.show(page.collapsed(f"the table ({len(by_split)} rows)", page.table(by_split)))


def show_gap(report: Report) -> None:
    """Ours beside the published runs (`paper_comparison`) and the chart of the gap closed."""
    if report.start("gap"):
        table = at_distance(main_table(report.cases), report.config.distance)
        report.save(paper_comparison(table, ours_label=report.config.name),
                    "paper_comparison", "main")
        low, high = figures.GAP_LIMITS
        fig = figures.plot_gap_closed(gap_closed(table), published_gaps())
        page.show(page.figure(
            fig, report.figures / "gap_closed.png",
            f"The numbers are in the summary's table. The axis runs from {low} to {high}: a bar "
            "beyond is cut at the edge, hatched and labelled with its value (BCT's old-gallery "
            "case can fall far below old/old), so the other bars stay comparable."))
