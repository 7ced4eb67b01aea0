"""The case notation every table uses, `query/gallery`, and what each model name means; the
README's "Reading a case" holds the same text (tests/report/test_notation.py keeps them equal).
Each method's row is the `notation` it registers with (`methods.registry.register_method`)."""

from __future__ import annotations

import ast
from pathlib import Path

CASE_NOTATION = (
    "Every result is a **case** `query/gallery`: the test images are embedded by the *query "
    "model* (left of the slash) and searched among the test images' embeddings by the *gallery "
    "model* (right of the slash). The names:")
# the models every preset has; each method's own row is registered with it (`method_names`)
CORE_NAMES = (
    ("`old`", "phi_old, trained on the old classes: it made the stored gallery"),
    ("`new`", "phi_new, trained on every class, independently of the old model"),
)
DIAGNOSTIC_NAMES = (("`side`", "the side-info model alone (a diagnostic)"),)
METHODS_DIR = Path(__file__).resolve().parents[1] / "methods"
CASE_EXAMPLES = (
    "So `old/old` is the old system, `new/new` the fully backfilled new one, `new/old` an "
    "independent new model searching the old gallery (incompatible), `bct/old` BCT's criterion "
    "case (it must beat `old/old`), and `fct/side` FCT's upgraded gallery searched by the "
    "untouched new model. These names are used unchanged in every table, report and notebook.")


def method_names() -> list[tuple[str, str]]:
    """The notation rows the method modules register, in table order, read from their source
    (`register_method(..., order=..., notation=(...))` with literal values): the report imports
    no method, since methods need torch."""
    rows = []
    for path in sorted(METHODS_DIR.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "register_method":
                given = {k.arg: k.value for k in node.keywords}
                if "notation" in given:
                    rows.append((ast.literal_eval(given["order"]),
                                 tuple(ast.literal_eval(given["notation"]))))
    return [row for _, row in sorted(rows)]


def case_names() -> list[tuple[str, str]]:
    """Every row of the notation: the old and new models, each method's, the diagnostics."""
    return [*CORE_NAMES, *method_names(), *DIAGNOSTIC_NAMES]


def case_notation() -> str:
    """The notation as Markdown: what a case is, a table of the names, the cases that matter."""
    rows = "".join(f"| {name} | {what} |\n" for name, what in case_names())
    return f"{CASE_NOTATION}\n\n| name | what it is |\n|---|---|\n{rows}\n{CASE_EXAMPLES}"
