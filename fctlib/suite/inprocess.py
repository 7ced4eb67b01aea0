"""Execute a notebook's code cells in this Python process, without Jupyter: for machines that have
the library's dependencies but not papermill, nbformat or IPython (a bare GPU machine).

The notebook runs as papermill runs it: its `parameters` cell, then a cell assigning the given
parameters, every code cell in order in one namespace, with notebooks/ as the working directory and
progress bars off. The executed copy keeps each cell's printed text, `display`ed objects (text, and
HTML, Markdown, PNG or JPEG where they have it) and matplotlib figures (PNG), so the steps write the
same records as under `fct reproduce` and their saved notebooks open in JupyterLab.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import importlib
import importlib.util
import io
import json
import os
import sys
import time
import traceback
import types
from pathlib import Path

from fctlib.io import atomic_write

DISPLAY_MODULE = "IPython.display"


class CellFailed(Exception):
    """A code cell raised: its number (counting code cells from 1), the error's name and text."""

    def __init__(self, cell: int, error: BaseException):
        super().__init__(f"cell {cell}: {type(error).__name__}: {error}")
        self.cell, self.ename, self.evalue = cell, type(error).__name__, str(error)


class _Markdown:
    """IPython's Markdown, for the notebooks: shown as its text."""

    def __init__(self, data: str):
        self.data = data

    def __repr__(self) -> str:
        return self.data

    def _repr_markdown_(self) -> str:
        return self.data


class _HTML:
    """IPython's HTML, for the notebooks: shown as HTML (the report's sections)."""

    def __init__(self, data: str):
        self.data = data

    def __repr__(self) -> str:
        return "<HTML>"

    def _repr_html_(self) -> str:
        return self.data


def _display_data(obj) -> dict:
    """A notebook `display_data` output of `obj`: text/plain, and the HTML, Markdown, PNG or
    JPEG form it has."""
    data = {"text/plain": obj.to_string() if hasattr(obj, "to_string") else repr(obj)}
    for kind, method in (("text/html", "_repr_html_"), ("text/markdown", "_repr_markdown_")):
        if hasattr(obj, method) and (text := getattr(obj, method)()) is not None:
            data[kind] = text
    for kind, method in (("image/png", "_repr_png_"), ("image/jpeg", "_repr_jpeg_")):
        if hasattr(obj, method):
            data[kind] = base64.b64encode(getattr(obj, method)()).decode("ascii")
    return {"output_type": "display_data", "data": data, "metadata": {}}


class _Cell:
    """The outputs of the code cell being executed, in the order they were made."""

    def __init__(self):
        self.outputs: list[dict] = []
        self.stdout, self.stderr = io.StringIO(), io.StringIO()

    def flush_streams(self) -> None:
        """What was printed since the last output, as stream outputs (the streams stay the ones
        stdout and stderr are redirected to, emptied)."""
        for name, stream in (("stdout", self.stdout), ("stderr", self.stderr)):
            if text := stream.getvalue():
                self.outputs.append({"output_type": "stream", "name": name, "text": text})
                stream.seek(0)
                stream.truncate()

    def display(self, *objs) -> None:
        self.flush_streams()
        self.outputs.extend(_display_data(obj) for obj in objs)

    def figures(self) -> None:
        """Every open matplotlib figure as a PNG output, then closed (the inline backend's way)."""
        pyplot = sys.modules.get("matplotlib.pyplot")
        if pyplot is None:
            return
        self.flush_streams()
        for number in pyplot.get_fignums():
            png = io.BytesIO()
            pyplot.figure(number).savefig(png, format="png", bbox_inches="tight")
            self.outputs.append({"output_type": "display_data", "metadata": {}, "data": {
                "image/png": base64.b64encode(png.getvalue()).decode("ascii"),
                "text/plain": f"<Figure {number}>"}})
        pyplot.close("all")


@contextlib.contextmanager
def _notebook_process(cwd: Path, display_module: types.ModuleType):
    """Inside: `cwd` as the working directory, progress bars off, matplotlib without a window and
    `IPython.display` answered by `display_module`; everything restored after."""
    if importlib.util.find_spec("IPython") is not None:
        importlib.import_module("IPython")  # loaded whole before the shim takes its display
    saved_display = sys.modules.get(DISPLAY_MODULE)
    saved_env = {name: os.environ.get(name) for name in ("FCT_PROGRESS", "MPLBACKEND")}
    saved_cwd = os.getcwd()
    os.environ["FCT_PROGRESS"] = "0"
    if "matplotlib.pyplot" not in sys.modules:
        os.environ.setdefault("MPLBACKEND", "Agg")
    # a module in sys.modules imports without its parent package: no IPython is faked, where
    # libraries (matplotlib) would take it for a shell
    sys.modules[DISPLAY_MODULE] = display_module
    os.chdir(cwd)
    try:
        yield
    finally:
        os.chdir(saved_cwd)
        if saved_display is None:
            sys.modules.pop(DISPLAY_MODULE, None)
        else:
            sys.modules[DISPLAY_MODULE] = saved_display
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def parameters_source(parameters: dict) -> str:
    """The injected cell: one assignment per parameter, its value as a Python literal."""
    return "# Parameters\n" + "".join(f"{k} = {v!r}\n" for k, v in parameters.items())


def executed_cells(notebook: dict, parameters: dict) -> list[dict]:
    """The notebook's cells with the parameters cell followed by the injected one (papermill's
    layout and tag), outputs cleared."""
    cells = [copy.deepcopy(cell) for cell in notebook["cells"]]
    for cell in cells:
        if cell["cell_type"] == "code":
            cell.update(outputs=[], execution_count=None)
    at = next((i + 1 for i, cell in enumerate(cells)
               if "parameters" in cell.get("metadata", {}).get("tags", [])), 0)
    injected = {"cell_type": "code", "execution_count": None, "id": "injected-parameters",
                "metadata": {"tags": ["injected-parameters"]}, "outputs": [],
                "source": parameters_source(parameters)}
    return [*cells[:at], injected, *cells[at:]]


def execute_notebook(source: Path, output: Path, parameters: dict, *, cwd: Path) -> float:
    """Execute `source` with `parameters` into `output` (written atomically, also when a cell
    fails); return the wall seconds. A failing cell raises CellFailed after the copy, with the
    traceback, is written; Ctrl-C writes what ran and raises KeyboardInterrupt."""
    notebook = json.loads(Path(source).read_text())
    cells = executed_cells(notebook, parameters)
    namespace = {"__name__": "__main__"}
    current: list[_Cell] = []  # the cell executing: `display` is imported once, called in any
    display_module = types.ModuleType(DISPLAY_MODULE)
    display_module.Markdown, display_module.HTML = _Markdown, _HTML
    display_module.display = lambda *objs, **_: current[-1].display(*objs)
    started, count, failure = time.perf_counter(), 0, None
    with _notebook_process(cwd, display_module):
        for cell in cells:
            if cell["cell_type"] != "code":
                continue
            count += 1
            state = _Cell()
            current[:] = [state]
            try:
                with contextlib.redirect_stdout(state.stdout), \
                        contextlib.redirect_stderr(state.stderr):
                    code = compile("".join(cell["source"]), f"<cell {count}>", "exec")
                    exec(code, namespace)  # noqa: S102 (the project's own notebook)
            except BaseException as error:  # noqa: BLE001 (recorded, then raised)
                failure = error
                state.flush_streams()
                state.outputs.append({
                    "output_type": "error", "ename": type(error).__name__,
                    "evalue": str(error),
                    "traceback": traceback.format_exception(error)})
            state.figures()
            state.flush_streams()
            cell.update(outputs=state.outputs, execution_count=count)
            if failure is not None:
                break
    seconds = time.perf_counter() - started
    notebook = {**notebook, "cells": cells}
    notebook["metadata"] = {**notebook.get("metadata", {}),
                            "fct": {"engine": "in-process", "seconds": round(seconds, 1)}}
    text = json.dumps(notebook, indent=1, ensure_ascii=False) + "\n"
    output.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(output, lambda tmp: tmp.write_text(text))
    if isinstance(failure, KeyboardInterrupt):
        raise failure
    if failure is not None:
        raise CellFailed(count, failure) from failure
    return seconds
