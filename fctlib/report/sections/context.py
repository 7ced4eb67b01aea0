"""What every section of the report reads: the preset, its records and each section's coverage,
the provenance its tables carry, and where tables and figures go."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import pandas as pd

from fctlib.experiment.config import Preset, load_preset
from fctlib.experiment.records import load_exploration, load_records
from fctlib.paths import results_root
from fctlib.report import page
from fctlib.report.backfilling import backfilling_rows
from fctlib.report.common import Records, run_provenance, write_table
from fctlib.report.coverage import Coverage, coverage, load_not_run, not_run_line
from fctlib.report.exploration import exploration_table
from fctlib.report.main import case_rows


@dataclass
class Report:
    """One preset's report: its records, their provenance, the reasons for steps not run and
    each section's coverage (by anchor)."""

    config: Preset
    results: Path
    records: Records
    info: dict
    reasons: dict
    covered: dict[str, Coverage]

    @classmethod
    def load(cls, preset: str, overrides: dict | str | None = None,
             results_dir: str | Path | None = None) -> Report:
        """The report of a preset's results (default: results/<preset name>/)."""
        config = load_preset(preset, overrides)
        results = Path(results_dir or results_root(config.name))
        records = load_records(results)
        return cls(config, results, records, run_provenance(results, config.name, records),
                   load_not_run(results),
                   {s.anchor: coverage(records, s.steps) for s in page.SECTIONS if s.steps})

    @property
    def tables(self) -> Path:
        """Where the tables go."""
        return self.results / "tables"

    @property
    def figures(self) -> Path:
        """Where the figures go."""
        return self.results / "figures"

    @cached_property
    def cases(self) -> pd.DataFrame:
        """Every case of the seeds the main sections count (long form)."""
        return case_rows(self.covered["main"].select(self.records), self.config.distance)

    @cached_property
    def backfilling_points(self) -> pd.DataFrame:
        """Every backfilling curve point of the seeds the backfilling section counts."""
        return backfilling_rows(self.covered["backfilling"].select(self.records))

    @cached_property
    def explored(self) -> pd.DataFrame:
        """The settings explored on tune (`fct explore`)."""
        return exploration_table(load_exploration(self.results))

    @cached_property
    def examples(self) -> list[Path]:
        """The retrieval example figures notebook 05 drew, one per seed (JPEG; PNG in results
        made before `Photo.save`)."""
        return sorted([*self.figures.glob("retrievals_seed*.jpg"),
                       *self.figures.glob("retrievals_seed*.png")])

    def start(self, anchor: str) -> bool:
        """Show the section's heading and its coverage note, or its one line saying why it is
        absent; whether any seed ran it."""
        cov = self.covered[anchor]
        page.show(page.heading(anchor), page.coverage_note(cov) if cov.ran else
                  page.not_run(not_run_line(cov, self.config.name, self.reasons)))
        return cov.ran

    def save(self, table: pd.DataFrame, name: str, anchor: str) -> Path:
        """Write a table with the provenance and the coverage of its section."""
        return write_table(table, self.tables, name, self.covered[anchor].stamp(self.info))
