"""The report's tables, one module per table family, built from the step records (torch-free).

A table counts a seed only when the seed has every step the table reads (`coverage`); the page
layout is in `fctlib.report.page`, the opening summary in `fctlib.report.summary`, and notebook
99's sections (each writing and showing its tables) in `fctlib.report.sections`.

A family's `*_frame(…, seed)` takes one seed's data (what a step notebook has), its
`*_rows(records)` every seed's (load_records' output), and its tables take either. `from fctlib
import report` gives them all; the charts are in `fctlib.report.figures`.
"""

from fctlib.report.ablations import (
    ablation_rows,
    data_share_table,
    setting_frame,
    side_info_size_rows,
    side_info_size_table,
    side_info_source_sentence,
    side_info_source_table,
    trend_sentence,
    width_table,
)
from fctlib.report.backfilling import (
    PUBLISHED_BACKFILLING_SOURCE,
    backfilling_claims,
    backfilling_paper_comparison,
    backfilling_points_table,
    backfilling_rows,
    backfilling_sentence,
    backfilling_table,
    curve_frame,
)
from fctlib.report.bct import bct_sweep_table, sweep_frame, sweep_rows
from fctlib.report.common import (
    METRICS,
    metrics_frame,
    models_trained_apart,
    read_table,
    run_provenance,
    write_table,
)
from fctlib.report.coverage import (
    Coverage,
    coverage,
    coverage_warnings,
    load_not_run,
    not_run_line,
)
from fctlib.report.exploration import exploration_by_case, exploration_table
from fctlib.report.main import (
    CASE_ORDER,
    CASE_PROTOCOLS,
    GAP_REVERSED,
    GAP_TOO_SMALL,
    GAP_UNMEASURED,
    PUBLISHED_SOURCE,
    at_distance,
    case_frame,
    case_rows,
    claims_sentence,
    claims_table,
    gap_closed,
    gap_closed_table,
    main_by_split_table,
    main_table,
    paper_comparison,
    published_gaps,
)
from fctlib.report.methods import (
    METHODS_COLUMNS,
    criteria_sentence,
    criteria_table,
    methods_frame,
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
from fctlib.report.multistep import (
    compatibility_sentence,
    compatibility_table,
    matrix_frame,
    matrix_rows,
    matrix_table,
    scores_frame,
    scores_rows,
    scores_table,
)

__all__ = [
    "CASE_ORDER", "CASE_PROTOCOLS", "Coverage", "GAP_REVERSED", "GAP_TOO_SMALL",
    "GAP_UNMEASURED", "METHODS_COLUMNS", "METRICS",
    "PUBLISHED_BACKFILLING_SOURCE", "PUBLISHED_SOURCE", "ablation_rows", "at_distance",
    "backfilling_claims", "backfilling_paper_comparison",
    "backfilling_points_table", "backfilling_rows", "backfilling_sentence", "backfilling_table",
    "bct_sweep_table", "case_frame", "case_rows", "claims_sentence", "claims_table",
    "compatibility_sentence", "compatibility_table", "coverage", "coverage_warnings",
    "criteria_sentence", "criteria_table", "curve_frame", "data_share_table",
    "exploration_by_case", "exploration_table",
    "gap_closed", "gap_closed_table", "load_not_run", "main_by_split_table", "main_table",
    "matrix_frame", "matrix_rows", "matrix_table", "methods_frame", "methods_not_run",
    "methods_rows", "methods_sentence", "methods_table", "metrics_frame",
    "models_trained_apart", "not_run_line",
    "oca_diagnostics_table", "paper_comparison", "price_table", "published_gaps", "read_table",
    "run_provenance",
    "scores_frame", "scores_rows", "scores_table", "seeds_criteria", "seeds_methods",
    "seeds_unpriced",
    "setting_frame", "side_info_size_rows", "side_info_size_table", "side_info_source_sentence",
    "side_info_source_table", "sweep_frame", "sweep_rows", "trend_sentence", "width_table",
    "write_table",
]
