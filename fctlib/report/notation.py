"""The case notation every table uses, `query/gallery`, and what each model name means; the
README's "Reading a case" holds the same text (tests/report/test_notation.py keeps them equal)."""

from __future__ import annotations

CASE_NOTATION = (
    "Every result is a **case** `query/gallery`: the test images are embedded by the *query "
    "model* (left of the slash) and searched among the test images' embeddings by the *gallery "
    "model* (right of the slash). The names:")
CASE_NAMES = (
    ("`old`", "phi_old, trained on the old classes: it made the stored gallery"),
    ("`new`", "phi_new, trained on every class, independently of the old model"),
    ("`bct`", "a new model trained with BCT's influence loss through the old classifier (its "
              "variant and weight chosen on `tune`)"),
    ("`fct/no-side`, `fct/side`", "not a model pair: `new`'s queries against the old gallery "
                                  "upgraded by h(old embedding) or h(old embedding, side-info)"),
    ("`fastfill/no-side`, `fastfill/side`", "the same with FastFill's h, nothing backfilled (its "
                                            "curves backfill a share at a time)"),
    ("`fct-arch/...`, `fct-loss/...`", "the same into a new model of another architecture, or "
                                       "trained with another loss"),
    ("`proj`", "`new`'s queries mapped back into the old space by g"),
    ("`oca`, `dsimplex-old`, `dsimplex`", "OCA's new model; d-Simplex's old and new models"),
    ("`side`", "the side-info model alone (a diagnostic)"),
)
CASE_EXAMPLES = (
    "So `old/old` is the old system, `new/new` the fully backfilled new one, `new/old` an "
    "independent new model searching the old gallery (incompatible), `bct/old` BCT's criterion "
    "case (it must beat `old/old`), and `fct/side` FCT's upgraded gallery searched by the "
    "untouched new model. These names are used unchanged in every table, report and notebook.")


def case_notation() -> str:
    """The notation as Markdown: what a case is, a table of the names, the cases that matter."""
    rows = "".join(f"| {name} | {what} |\n" for name, what in CASE_NAMES)
    return f"{CASE_NOTATION}\n\n| name | what it is |\n|---|---|\n{rows}\n{CASE_EXAMPLES}"
