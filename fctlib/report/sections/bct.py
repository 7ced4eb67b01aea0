"""The BCT section: the variant and weight sweep on tune, every variant on tune and test, and the
influence-CE diagnostic."""

from __future__ import annotations

from fctlib.report import page
from fctlib.report.bct import (
    bct_sweep_table,
    bct_variants_table,
    influence_rows,
    influence_table,
    sweep_rows,
    variant_rows,
)
from fctlib.report.sections.context import Report


def show_bct(report: Report) -> None:
    """`bct_weight_sweep`, `bct_variants` and `bct_influence`, each with what it shows."""
    if not report.start("bct"):
        return
    chosen = report.covered["bct"].select(report.records)
    sweep = bct_sweep_table(sweep_rows(chosen))
    report.save(sweep, "bct_weight_sweep", "bct")
    page.markdown("Each variant and influence-loss weight on the tune split, under the distance "
                  "the choice is made with (%), mean over seeds; `seeds_choosing`: how many "
                  "seeds chose it.")
    page.show(page.table(sweep.set_index(["variant", "weight"])))
    variants = bct_variants_table(variant_rows(chosen))
    if not len(variants):
        return
    report.save(variants, "bct_variants", "bct")
    page.markdown("**Every variant on tune and test, L2 and cosine** (%): `margin`: bct/old minus "
                  "old/old (BCT's criterion: it holds above 0); `new_new_cost`: new/new minus "
                  "bct/bct (points); `matched_cost`: the same against the new model trained "
                  "with the variant's own network, loss and optimiser but no influence loss (a "
                  "price below 0 there and not against new/new is the variant's recipe, not "
                  "compatibility); `norm_ratio`: the BCT embeddings' mean norm over the old "
                  "model's.")
    page.show(page.collapsed(
        f"the variants table ({len(variants)} rows)",
        page.table(variants.set_index(["variant", "weight", "distance", "split"]))))
    influence = influence_table(influence_rows(chosen))
    report.save(influence, "bct_influence", "bct")
    page.markdown("**Influence cross-entropy of the old model's own training features** under "
                  "each construction (no training): a construction that classifies fewer than "
                  "half as many of the old-class features into their class as the old "
                  "classifier itself (`old_classifier_accuracy`) is flagged (it cannot classify "
                  "the old model's own features); `random-rows` is the control whose rows carry "
                  "no old-model information.")
    page.show(page.table(influence.set_index("variant")))
