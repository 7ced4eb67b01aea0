"""The report's opening: the preset, the case notation, the summary (claims, headline numbers
beside the published ones, cost, FastFill's verdicts, coverage warnings) and the contents."""

from __future__ import annotations

from fctlib.report import page, summary
from fctlib.report.backfilling import backfilling_claims
from fctlib.report.common import load_last_run
from fctlib.report.coverage import coverage_warnings, not_run_line
from fctlib.report.main import (
    PUBLISHED_SOURCE,
    at_distance,
    claims_table,
    gap_closed_table,
    main_table,
    paper_comparison,
)
from fctlib.report.notation import case_notation
from fctlib.report.sections.context import Report


def show_opening(report: Report) -> None:
    """Show the report's title, the preset, the notation, the summary and the contents."""
    name, covered = report.config.name, report.covered
    page.show(page.STYLE, f"<h1>fct-suite report: {name}</h1>",
              summary.preset_intro(name, report.config.description, list(report.records)))
    page.markdown(case_notation())
    page.show('<h2 id="summary">Summary</h2>')
    page.markdown(summary.cost_line(load_last_run(report.results),
                                    summary.load_timings(report.results)))
    if covered["main"].ran:
        comparison = paper_comparison(at_distance(main_table(report.cases),
                                                  report.config.distance), ours_label=name)
        page.show(page.side_by_side(
            "<b>The paper's claims</b> (all queries) under each distance: verdict "
            "(<code>holds</code>: every seed agrees), margin (points, higher minus lower), seeds "
            "where it holds"
            + page.table(summary.verdict_table(claims_table(report.cases))),
            f"<b>Headline numbers beside the published runs</b> (ours under "
            f"{report.config.distance}, the preset's distance): our mean (%) and the share of "
            "the old-to-new gap closed (0: old/old, 1: new/new), comparable across data sets; "
            "none where old/old and new/new differ by under a point or their seeds' spread "
            "(<i>gap too small to measure</i>) or new/new is the lower (<i>no gap</i>)"
            + page.table(gap_closed_table(comparison))), page.coverage_note(covered["main"]),
            f'<p class="coverage">Published: {PUBLISHED_SOURCE}.</p>')
    else:
        page.show(page.not_run(not_run_line(covered["main"], name, report.reasons)))
    backfill_claims = backfilling_claims(report.backfilling_points)
    page.markdown(summary.backfilling_verdicts(backfill_claims) if len(backfill_claims) else
                  "FastFill: not run for this preset.")
    warned = coverage_warnings({page.SECTION[a].title: c for a, c in covered.items()})
    if "models_trained_apart" in report.info:  # over all of a seed's steps, not one section's
        warned.append("the steps of a seed used different trainings of one model ("
                      f"{report.info['models_trained_apart']})")
    if warned:
        page.markdown("**⚠ Coverage**: " + "; ".join(warned) + " (see each section).")
    page.show(page.contents({**covered, "exploration": len(report.explored) > 0,
                             "examples": bool(report.examples)}))
