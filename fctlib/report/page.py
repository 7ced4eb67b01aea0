"""The report's page: its sections and their anchors, the contents list, the style that keeps
tables within a 1300 px page, and tables, figures and images as light HTML."""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from html import escape
from pathlib import Path

import pandas as pd

from fctlib.report.coverage import Coverage
from fctlib.report.figures import save_figure
from fctlib.report.main import CASE_STEPS


@dataclass(frozen=True)
class Section:
    """One section of the report: its anchor, title, and the steps its tables read."""

    anchor: str
    title: str
    steps: tuple[str, ...] = ()  # record steps; empty: read from elsewhere


SECTIONS = (
    Section("main", "Main comparison", CASE_STEPS),
    Section("claims", "The paper's claims", CASE_STEPS),
    Section("splits", "By class split", CASE_STEPS),
    Section("gap", "Share of the old-to-new gap closed", CASE_STEPS),
    Section("bct", "BCT: variants, weight, influence diagnostic", ("bct",)),
    Section("side-info-size", "Side-info size", ("side_info_size",)),
    Section("ablations", "Ablations of h (side-info source, data share, width)", ("ablations",)),
    Section("methods", "Methods, compatibility criteria and price", ("methods",)),
    Section("multistep", "Multi-step updates", ("multistep",)),
    Section("backfilling", "Partial backfilling (FastFill)", ("fastfill",)),
    Section("cross-dataset", "Update across data sets", ("cross_dataset",)),
    Section("exploration", "Protocol exploration"),
    Section("examples", "Retrieval examples"),
    Section("provenance", "Provenance"),
)
SECTION = {s.anchor: s for s in SECTIONS}

STYLE = """<style>
.jp-Notebook { max-width: 1240px; margin: 0 auto; }
.jp-Cell.jp-mod-noOutputs.jp-mod-noInput { display: none; }
.side > div { flex: 0 0 auto; width: min-content; }
.jp-RenderedHTMLCommon table { font-size: 12px; table-layout: auto; margin: 4px 0; }
.jp-RenderedHTMLCommon th, .jp-RenderedHTMLCommon td { padding: 2px 6px; }
.jp-RenderedHTMLCommon td, .jp-RenderedHTMLCommon th { white-space: nowrap; }
.jp-OutputArea-output { overflow-x: auto; max-width: 100%; }
.jp-RenderedHTMLCommon p, .jp-RenderedHTMLCommon li { margin: 4px 0; }
.jp-RenderedHTMLCommon h2 { margin-top: 18px; border-top: 1px solid #ddd; padding-top: 10px; }
.coverage { font-size: 12px; color: #555; }
.coverage .warn { color: #a40; font-weight: 600; }
.not-run { color: #777; font-style: italic; }
.tests-only { color: #a40; font-weight: 600; border: 1px solid #a40; padding: 4px 8px; }
details > summary { cursor: pointer; color: #246; }
.contents { columns: 3; column-gap: 48px; font-size: 13px; }
.jp-RenderedImage img { max-width: 100%; }
</style>"""


def heading(anchor: str) -> str:
    """The section's heading with its anchor."""
    return f'<h2 id="{anchor}">{escape(SECTION[anchor].title)}</h2>'


def contents(coverages: dict[str, Coverage | bool]) -> str:
    """The contents list: a link per section; `(not run)` where its coverage ({anchor: coverage,
    or whether it has anything to show}) says no seed ran it."""
    items = []
    for section in SECTIONS:
        cov = coverages.get(section.anchor, True)
        ran = cov.ran if isinstance(cov, Coverage) else cov
        note = "" if ran else ' <span class="not-run">(not run)</span>'
        items.append(f'<li><a href="#{section.anchor}">{escape(section.title)}</a>{note}</li>')
    return f'<ol class="contents">{"".join(items)}</ol>'


def coverage_note(cov: Coverage) -> str:
    """The coverage's note as a small paragraph, its warnings marked."""
    lines = [(f'<span class="warn">{escape(line)}</span>' if line.startswith("⚠")
              else escape(line)) for line in cov.note().split("  \n")]
    return f'<p class="coverage">{"<br>".join(lines)}</p>'


def not_run(line: str) -> str:
    """A section's one line saying why it is absent."""
    return f'<p class="not-run">{escape(line)}</p>'


def table(frame: pd.DataFrame, index: bool = True) -> str:
    """A table as plain HTML: numbers to 2 decimals (3 below 1), empty cells as `—`; a single
    named index is named in the header's corner instead of a row of its own."""
    if index and frame.index.nlevels == 1 and frame.index.name:
        names = [*[None] * (frame.columns.nlevels - 1), frame.index.name]
        frame = frame.rename_axis(index=None).rename_axis(columns=names)
    return frame.to_html(index=index, na_rep="—", float_format=_number, border=0,
                         classes="dataframe")


def two_level(frame: pd.DataFrame, groups: dict[str, str]) -> pd.DataFrame:
    """The frame with its columns in two levels: a column named `<prefix><rest>` goes under
    `groups[prefix]` as `rest`; the others stay in the index (a wide table made narrow)."""
    grouped = [c for c in frame.columns if any(c.startswith(p) for p in groups)]
    out = frame.set_index([c for c in frame.columns if c not in grouped])
    out.columns = pd.MultiIndex.from_tuples(
        [next((label, c.removeprefix(p)) for p, label in groups.items() if c.startswith(p))
         for c in grouped])
    return out


def side_by_side(*html: str) -> str:
    """Fragments in a row (wrapping on a narrow page)."""
    cells = "".join(f"<div>{h}</div>" for h in html)
    return f'<div class="side" style="display: flex; gap: 28px; flex-wrap: wrap;">{cells}</div>'


def collapsed(summary: str, body: str) -> str:
    """`body` (HTML) folded under a one-line `summary`."""
    return f"<details><summary>{escape(summary)}</summary>{body}</details>"


def image(path: str | Path, caption: str = "", photo: bool = False, width: int = 1100) -> str:
    """A PNG embedded in the page, scaled down to `width` px at most; `photo`: re-encoded as JPEG
    (image grids weigh a quarter as much), else as a 256-colour PNG."""
    from PIL import Image

    picture = Image.open(path)
    if picture.width > width:
        picture = picture.convert("RGB").resize(
            (width, round(picture.height * width / picture.width)), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    if photo:
        picture.convert("RGB").save(buffer, format="JPEG", quality=75, optimize=True)
    else:
        if picture.mode != "P":
            picture = picture.convert("RGB").quantize(colors=256)
        picture.save(buffer, format="PNG", optimize=True)
    kind = "jpeg" if photo else "png"
    data = base64.b64encode(buffer.getvalue()).decode()
    text = f'<p class="coverage">{escape(caption)}</p>' if caption else ""
    return f'<img alt="{escape(Path(path).name)}" src="data:image/{kind};base64,{data}">{text}'


def figure(fig, path: str | Path, caption: str = "") -> str:
    """Save a chart to `path` (palette PNG), close it, and return it embedded in the page."""
    import matplotlib.pyplot as plt

    save_figure(fig, path, palette=True)
    plt.close(fig)
    return image(path, caption)


def show(*html: str) -> None:
    """Display HTML fragments in the notebook."""
    from IPython.display import HTML, display

    display(HTML("".join(html)))


def markdown(text: str) -> None:
    """Display Markdown text in the notebook."""
    from IPython.display import Markdown, display

    display(Markdown(text))


def _number(value: float) -> str:
    return f"{value:.2f}" if abs(value) >= 1 or value == 0 else f"{value:.3f}"
