"""The README states each committed preset's claims as its `claims.csv` judges them: the verdict
table the report's summary shows (every claim, metric and distance, with its margin and the seeds
agreeing) appears in the README word for word, so no claim there reads stronger than its table."""

import pytest

from fctlib.paths import committed_presets, project_root, results_root
from fctlib.report import read_table, summary
from fctlib.report.markdown import markdown_table


def readme_claims(preset: str) -> str:
    """The verdict table of a preset's committed claims, as the README quotes it."""
    claims = read_table(results_root(preset) / "tables" / "claims.csv")
    return markdown_table(summary.verdict_table(claims).rename_axis("claim"))


@pytest.mark.parametrize("preset", committed_presets())
def test_the_readme_quotes_the_committed_verdicts(preset):
    readme = (project_root() / "README.md").read_text()
    assert readme_claims(preset) in readme, (
        f"README: the claims of {preset} differ from results/{preset}/tables/claims.csv; paste "
        f"`python -c 'from tests.report.test_readme_claims import readme_claims; "
        f"print(readme_claims(\"{preset}\"))'`")
