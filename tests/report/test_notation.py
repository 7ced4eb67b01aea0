"""The case notation the report shows is the README's "Reading a case", word for word."""

import re

from fctlib.paths import project_root
from fctlib.report.notation import case_names, case_notation, method_names


def _words(text):
    return " ".join(text.split())


def test_the_report_and_the_readme_define_cases_alike():
    readme = (project_root() / "README.md").read_text()
    section = re.search(r"### Reading a case[^\n]*\n(.*?)\nEvaluation protocol", readme, re.S)
    assert section, "README: the 'Reading a case' section is gone"
    assert _words(case_notation()) == _words(section.group(1))


def test_the_notation_names_every_case_model():
    names = " ".join(name for name, _ in case_names())
    for name in ("old", "new", "bct", "fct/no-side", "fct/side", "fastfill/side", "proj", "oca",
                 "dsimplex", "side"):
        assert f"`{name}`" in names, name
    table = case_notation().split("\n\n")[1].splitlines()
    assert table[:2] == ["| name | what it is |", "|---|---|"]
    assert len(table) == 2 + len(case_names())


def test_the_rows_read_from_the_method_modules_are_those_they_register():
    from fctlib.methods import registry

    registered = [m.notation for m in registry.methods() if m.notation]
    assert method_names() == registered and len(registered) >= 7
