"""Markdown tables without tabulate: the layout `DataFrame.to_markdown` writes (tabulate's "pipe"
format with its defaults), so a machine with only the GPU image's packages writes the same
tables/*.md and report as a full install. Checked cell for cell against tabulate's own output
(tests/report/test_markdown.py)."""

import re

import pandas as pd

MIN_PADDING = 2  # tabulate's: a column is at least as wide as its header plus two spaces
KINDS = ("none", "bool", "int", "float", "str")  # least to most general, tabulate's order
THOUSANDS = re.compile(r"^(([+-]?[0-9]{1,3})(?:,([0-9]{3}))*)?(?(1)\.[0-9]*|\.[0-9]+)?$")


def _converts(kind: type, text: str) -> bool:
    try:
        kind(text)
        return True
    except (TypeError, ValueError):
        return False


def _grouped(value) -> bool:
    """A number written with thousands separators ("1,000.5"), which tabulate reads as one."""
    return isinstance(value, str) and THOUSANDS.match(value) is not None


def _is_int(value) -> bool:
    return (type(value) is int or str(type(value)).startswith("<class 'numpy.int")
            or (isinstance(value, str) and _converts(int, value)))


def _is_number(value) -> bool:
    if type(value) in (float, int):
        return True
    if not _converts(float, value):
        return False
    if not isinstance(value, str):
        return True
    number = float(value)  # a string overflowing to inf is text; "inf" and "nan" are numbers
    return number == number and abs(number) != float("inf") or value.lower() in (
        "inf", "-inf", "nan")


def _kind(value) -> str:
    """The least general kind a cell reads as (tabulate parses numbers written as text)."""
    if value is None or (isinstance(value, str) and not value):
        return "none"
    if type(value) is bool or (isinstance(value, str) and value in ("True", "False")):
        return "bool"
    if _is_int(value) or (_grouped(value) and "." not in value):
        return "int"
    if _is_number(value) or _grouped(value):
        return "float"
    return "str"


def _text(value, kind: str) -> str:
    """A cell as its column's kind prints it: numbers of a float column with format 'g'."""
    if value is None:
        return ""
    if kind == "int":
        return format(value, "")
    if kind == "float":
        try:
            return format(float(value.replace(",", "") if isinstance(value, str) else value), "g")
        except (TypeError, ValueError):
            return f"{value}"
    return f"{value}"


def _digits_after_point(text: str) -> int:
    """Characters after the decimal point (or the exponent's 'e'); -1 for integers and text."""
    if not (_is_number(text) or _grouped(text)) or _is_int(text):
        return -1
    point = text.rfind(".")
    point = text.lower().rfind("e") if point < 0 else point
    return len(text) - point - 1 if point >= 0 else -1


def _column(values: list, header: str) -> tuple[list[str], int, bool]:
    """A column's cells and header padded to one width, that width, and whether it is numeric
    (numbers right-aligned on their decimal point, everything else left-aligned)."""
    kind = max((_kind(v) for v in values), key=KINDS.index, default="bool")
    numeric = kind in ("int", "float")
    cells = [_text(v, kind) for v in values]
    if numeric:
        after = [_digits_after_point(c) for c in cells]
        cells = [c + " " * (max(after) - a) for c, a in zip(cells, after, strict=True)]
    else:
        cells = [c.strip() for c in cells]
    width = max([len(header) + MIN_PADDING, *map(len, cells)])
    pad = str.rjust if numeric else str.ljust
    return [pad(c, width) for c in [header, *cells]], width, numeric


def markdown_table(table: pd.DataFrame, index: bool = True) -> str:
    """`table` as a Markdown pipe table, laid out as `table.to_markdown(index=index)` lays it."""
    headers = [str(c) for c in table.columns]
    rows = [list(row) for row in table.values]
    if index:
        headers.insert(0, "" if table.index.name is None else str(table.index.name))
        rows = [[label, *row] for label, row in zip(table.index, rows, strict=True)]
    columns = [_column([row[i] for row in rows], h) for i, h in enumerate(headers)]
    rule = "|".join("-" * (w + 1) + ":" if numeric else ":" + "-" * (w + 1)
                    for _, w, numeric in columns)
    lines = ["|" + "|".join(f" {cells[r]} " for cells, _, _ in columns) + "|"
             for r in range(len(rows) + 1)]
    return "\n".join([lines[0], f"|{rule}|", *lines[1:]])
