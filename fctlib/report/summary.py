"""The report's opening: the preset and what it is for, the verdicts of the paper's claims, the
headline numbers beside the published ones, and what the run cost (last_run.json and each seed's
step timings)."""

from __future__ import annotations

import json
from html import escape
from pathlib import Path

import pandas as pd

from fctlib.report.common import HEADLINE_METRICS

TESTS_ONLY = "(tests only)"  # in a preset's description: its numbers only test the suite


def preset_intro(name: str, description: str, seeds: list[int]) -> str:
    """The preset, its seeds and its purpose (its description), as HTML; a preset described as
    `(tests only)` gets a warning that its numbers say nothing about the methods."""
    seed_list = ", ".join(str(seed) for seed in seeds) or "none"
    html = (f"<p><b>Preset <code>{escape(name)}</code></b> (seeds {seed_list}): "
            f"{escape(description) or 'no description'}</p>")
    if TESTS_ONLY in description:
        html += ('<p class="tests-only">⚠ Tests only: these numbers come from tiny networks '
                 "trained 1-2 epochs on a few images; they show that every step runs and say "
                 "nothing about the methods.</p>")
    return html


def verdict_table(claims: pd.DataFrame) -> pd.DataFrame:
    """claims_table's output, a row per claim and a column per metric and distance (`top1 l2`):
    `verdict margin (seeds agreeing)`, e.g. `fails -27.41 (2/2)`."""
    cells = claims.assign(cell=[f"{r.verdict} {r.margin:+.2f} ({r.seeds_agreeing})"
                                for r in claims.itertuples()],
                          column=[f"{r.metric} {r.distance}" for r in claims.itertuples()])
    table = cells.pivot(index="claim", columns="column", values="cell")
    order = list(dict.fromkeys(claims["claim"]))
    columns = [f"{m} {d}" for d in dict.fromkeys(claims["distance"]) for m in HEADLINE_METRICS
               if f"{m} {d}" in table.columns]
    return table.reindex(order)[columns].rename_axis(columns=None)


def backfilling_verdicts(claims: pd.DataFrame) -> str:
    """One line per side-info size: how many of FastFill's claims hold, and those that do not."""
    lines = []
    for dim, rows in claims.groupby("side_info_dim", sort=False):
        where = f"{dim}-d side-info" if dim else "no side-info"
        broken = rows[rows["verdict"] != "holds"]
        text = f"{where}: {len(rows) - len(broken)} of {len(rows)} hold"
        if len(broken):
            text += "; " + "; ".join(f"{r.claim} ({r.metric}) {r.verdict} {r.margin:+.2f}"
                                     for r in broken.itertuples())
        lines.append(text)
    return "FastFill (area under the backfilling curve): " + ". ".join(lines) + "."


def load_timings(results_dir: str | Path) -> dict[int, dict[str, float]]:
    """{seed: {notebook: wall seconds}} from notebooks/seed<k>/timings.json (the last time each
    step ran)."""
    paths = Path(results_dir, "notebooks").glob("seed*/timings.json")
    return {int(p.parent.name.removeprefix("seed")): json.loads(p.read_text())
            for p in sorted(paths)}


def cost_line(last_run: dict, timings: dict[int, dict[str, float]]) -> str:
    """What the run cost: the last run's command, commit, machine and wall time, the earlier runs
    whose records remain, and each seed's recorded step times in total."""
    parts = []
    if last_run.get("wall_seconds") is not None:
        parts.append(f"last run `{last_run.get('command', '?')}` at commit "
                     f"{last_run.get('git_commit', '?')} ({last_run.get('date', '?')}, "
                     f"{last_run.get('machine', '?')}): {_duration(last_run['wall_seconds'])}")
    if last_run.get("earlier_runs"):
        parts.append(f"records of earlier runs: {last_run['earlier_runs']}")
    if timings:
        per_seed = ", ".join(f"seed {seed} {_duration(sum(t.values()))} over {len(t)} notebooks"
                             for seed, t in timings.items())
        parts.append(f"step times as last recorded (`timings.json`): {per_seed}")
    return ("Cost: " + "; ".join(parts) + ".") if parts else "Cost: not recorded."


def _duration(seconds: float) -> str:
    return f"{seconds:,.0f} s ({seconds / 60:.0f} min)"
