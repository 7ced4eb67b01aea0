"""The ablation sections: side-info size, then h's side-info source, data share and width."""

from __future__ import annotations

from fctlib.report import figures, page
from fctlib.report.ablations import (
    ablation_rows,
    data_share_table,
    side_info_size_rows,
    side_info_size_table,
    side_info_source_sentence,
    side_info_source_table,
    trend_sentence,
    width_table,
)
from fctlib.report.sections.context import Report


def show_side_info_size(report: Report) -> None:
    """`side_info_size`: FCT by side-info size, table and chart."""
    if report.start("side-info-size"):
        sizes = side_info_size_table(
            side_info_size_rows(report.covered["side-info-size"].select(report.records)))
        report.save(sizes, "side_info_size", "side-info-size")
        page.show(page.table(sizes.set_index("side_info_dim")),
                  page.figure(figures.plot_side_info_size(sizes),
                              report.figures / "side_info_size.png",
                              "FCT (new query vs h(old, side-info) gallery) by side-info size; "
                              "0: none."))


def show_ablations(report: Report) -> None:
    """`side_info_source`, `transformation_data_share`, `transformation_width`: each with its
    sentence, then one chart of the three."""
    if not report.start("ablations"):
        return
    chosen = report.covered["ablations"].select(report.records)
    sources = side_info_source_table(ablation_rows(chosen, "side_info_source"))
    shares = data_share_table(ablation_rows(chosen, "data_share"))
    widths = width_table(ablation_rows(chosen, "width"))
    report.save(sources, "side_info_source", "ablations")
    report.save(shares, "transformation_data_share", "ablations")
    report.save(widths, "transformation_width", "ablations")
    page.markdown("**Side-info source**: `simclr` self-supervised on the old classes' images "
                  "(default); `other-data` the same on another data set's images, no class of "
                  "which either model sees (the preset's `other_data`, MNIST digits by "
                  "default; FCT's CIFAR-100 run takes its side-info from ImageNet); `supervised` "
                  "the same network trained with the old classes' labels; `random` that network "
                  "untrained; `none` no side-info. " + side_info_source_sentence(sources))
    page.show(page.table(sources.set_index("source")))
    share_sentence = trend_sentence(shares, "data_share", "the share of the training set")
    page.markdown(f"**Share of the training set fitting h** (nested per-class subsets): "
                  f"{share_sentence}")
    page.show(page.table(shares.set_index("data_share")))
    page.markdown("**Width of h** (a factor on every hidden layer): "
                  + trend_sentence(widths, "width_factor", "the width of h"))
    page.show(page.table(widths.set_index("width_factor")),
              page.figure(figures.plot_ablations({
                  "side-info source": (sources, "source"),
                  "share of the training set": (shares, "data_share"),
                  "width of h": (widths, "width_factor")}), report.figures / "ablations.png"))
