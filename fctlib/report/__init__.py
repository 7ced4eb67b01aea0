"""The report's tables, one module per table family, built from the step records (torch-free).

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
    read_table,
    run_provenance,
    seeds_with,
    write_table,
)
from fctlib.report.exploration import exploration_table
from fctlib.report.main import (
    CASE_ORDER,
    PUBLISHED_SOURCE,
    case_frame,
    case_rows,
    claims_sentence,
    claims_table,
    gap_closed,
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
    methods_rows,
    methods_sentence,
    methods_table,
    price_table,
    seeds_criteria,
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
    "CASE_ORDER", "METHODS_COLUMNS", "METRICS", "PUBLISHED_BACKFILLING_SOURCE", "PUBLISHED_SOURCE",
    "ablation_rows", "backfilling_claims", "backfilling_paper_comparison",
    "backfilling_points_table", "backfilling_rows", "backfilling_sentence", "backfilling_table",
    "bct_sweep_table", "case_frame", "case_rows", "claims_sentence", "claims_table",
    "compatibility_sentence", "compatibility_table", "criteria_sentence", "criteria_table",
    "curve_frame", "data_share_table", "exploration_table", "gap_closed", "main_by_split_table",
    "main_table", "matrix_frame", "matrix_rows", "matrix_table", "methods_frame", "methods_rows",
    "methods_sentence", "methods_table", "metrics_frame", "paper_comparison", "price_table",
    "published_gaps", "read_table", "run_provenance", "scores_frame", "scores_rows",
    "scores_table", "seeds_criteria", "seeds_unpriced", "seeds_with", "setting_frame",
    "side_info_size_rows", "side_info_size_table", "side_info_source_sentence",
    "side_info_source_table", "sweep_frame", "sweep_rows", "trend_sentence", "width_table",
    "write_table",
]
