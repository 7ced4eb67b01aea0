"""The report notebook's sections, one module per table family: each opens its section, writes
its tables (with their provenance and coverage) and shows them with its figures.

`Report.load(preset, overrides, results_dir)` reads a preset's records; notebook 99 calls
`show_opening(report)` and then one function per section, in the page's order (`page.SECTIONS`).
"""

from fctlib.report.sections.ablations import show_ablations, show_side_info_size
from fctlib.report.sections.appendix import show_examples, show_exploration, show_provenance
from fctlib.report.sections.backfilling import show_backfilling
from fctlib.report.sections.bct import show_bct
from fctlib.report.sections.context import Report
from fctlib.report.sections.cross_dataset import show_cross_dataset
from fctlib.report.sections.main import show_claims, show_gap, show_main, show_splits
from fctlib.report.sections.methods import show_methods
from fctlib.report.sections.multistep import show_multistep
from fctlib.report.sections.summary import show_opening

__all__ = [
    "Report", "show_ablations", "show_backfilling", "show_bct", "show_claims",
    "show_cross_dataset", "show_examples",
    "show_exploration", "show_gap", "show_main", "show_methods", "show_multistep", "show_opening",
    "show_provenance", "show_side_info_size", "show_splits",
]
