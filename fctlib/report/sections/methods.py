"""The methods section: every method under L2 and cosine, its compatibility criteria and the
price its new model paid."""

from __future__ import annotations

from fctlib.report import page
from fctlib.report.methods import (
    criteria_sentence,
    criteria_table,
    methods_not_run,
    methods_rows,
    methods_sentence,
    methods_table,
    oca_diagnostics_table,
    price_table,
    seeds_criteria,
    seeds_methods,
    seeds_unpriced,
)
from fctlib.report.sections.context import Report


def show_methods(report: Report) -> None:
    """`methods`, `compatibility_criteria` and `compatibility_price`, with a sentence per
    distance (the preset's first); `oca_diagnostics` where the records have them."""
    if not report.start("methods"):
        return
    covered, distance = report.covered["methods"], report.config.distance
    long = methods_rows(covered.select(report.records))
    table = methods_table(long)
    report.save(table, "methods", "methods")
    page.markdown(methods_sentence(table, len(covered.seeds)))
    missing = methods_not_run(table, seeds_methods(report.records),
                              report.reasons.get("methods", {}))
    if missing:
        page.show(page.not_run(missing))
    page.show(page.collapsed(
        f"the methods table ({len(table)} rows; %): `new_top1` is the method's new model on "
        "its own, FastFill with nothing backfilled, proj/old g(new query) vs the old gallery",
        page.table(table.set_index(["method", "case", "distance"]))))
    criteria = criteria_table(long, seeds_criteria(report.records))
    prices = price_table(table, seeds_unpriced(report.records))
    report.save(criteria, "compatibility_criteria", "methods")
    report.save(prices, "compatibility_price", "methods")
    for each in (distance, *sorted({"l2", "cosine"} - {distance})):
        page.markdown(criteria_sentence(criteria, prices, each))
    page.show(page.collapsed(
        "compatibility criteria (holds: the cross-model case beats its reference in every seed)",
        page.table(criteria.set_index(["method", "case", "reference", "distance", "metric"]))),
        page.collapsed("price of each new model (independent new model's own top-1 minus the "
                       "method's, points)", page.table(prices.set_index(["method", "distance"]))))
    diagnostics = oca_diagnostics_table(covered.select(report.records))
    if len(diagnostics):
        report.save(diagnostics, "oca_diagnostics", "methods")
        page.show(page.collapsed(
            "where OCA's class-level pull lands (% of test images unless named; mean and std "
            "over seeds): the old model's features and OCA's slices nearest their class's "
            "prototype, a query replaced by its prototype",
            page.table(diagnostics.set_index("diagnostic"))))
