"""A notebook executed in-process (fctlib/suite/inprocess.py): papermill's parameters, every output
in the order a kernel shows it, the executed copy written also when interrupted."""

import base64

import nbformat
import pytest

from fctlib.suite.inprocess import CellFailed, execute_notebook


def _notebook(tmp_path, *sources):
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("x = 1  # type: int", metadata={"tags": ["parameters"]}),
        *map(nbformat.v4.new_code_cell, sources)])
    nbformat.write(notebook, tmp_path / "step.ipynb")
    return tmp_path / "step.ipynb"


def _outputs(path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    return [cell.outputs for cell in notebook.cells]


def test_parameters_override_and_outputs_keep_their_order(tmp_path):
    source = _notebook(tmp_path, "from IPython.display import Markdown, display\nprint('a', x)\n"
                                 "display(Markdown('**m**'))\nprint('b')")
    execute_notebook(source, tmp_path / "out.ipynb", {"x": 5}, cwd=tmp_path)
    outputs = _outputs(tmp_path / "out.ipynb")[-1]
    assert [(o.output_type, o.get("text") or o.data["text/markdown"]) for o in outputs] == [
        ("stream", "a 5\n"), ("display_data", "**m**"), ("stream", "b\n")]


def test_an_open_figure_is_kept_as_png_and_closed(tmp_path):
    pyplot = pytest.importorskip("matplotlib.pyplot")
    source = _notebook(tmp_path, "import matplotlib.pyplot as plt\nfig = plt.figure()\n"
                                 "plt.plot([0, x])")
    execute_notebook(source, tmp_path / "out.ipynb", {"x": 2}, cwd=tmp_path)
    kinds = [kind for o in _outputs(tmp_path / "out.ipynb")[-1] for kind in o.get("data", {})]
    assert "image/png" in kinds and not pyplot.get_fignums()


@pytest.mark.parametrize("error, raised", [("ValueError('bad')", CellFailed),
                                           ("KeyboardInterrupt", KeyboardInterrupt)])
def test_a_stopped_cell_still_writes_what_ran(tmp_path, error, raised):
    source = _notebook(tmp_path, "print('first')", f"raise {error}", "print('never')")
    with pytest.raises(raised):
        execute_notebook(source, tmp_path / "out.ipynb", {}, cwd=tmp_path)
    outputs = _outputs(tmp_path / "out.ipynb")
    assert outputs[2][0].text == "first\n" and outputs[3][0].output_type == "error"
    assert outputs[4] == []  # not run


def test_a_photo_is_kept_as_jpeg_alone(tmp_path):
    pyplot = pytest.importorskip("matplotlib.pyplot")
    source = _notebook(tmp_path, "import matplotlib.pyplot as plt\nfrom IPython.display import "
                                 "display\nfrom fctlib.report.figures import Photo\n"
                                 "display(Photo(plt.figure(figsize=(1, x))))")
    execute_notebook(source, tmp_path / "out.ipynb", {"x": 2}, cwd=tmp_path)
    [shown] = _outputs(tmp_path / "out.ipynb")[-1]
    assert set(shown.data) == {"text/plain", "image/jpeg"} and not pyplot.get_fignums()
    assert base64.b64decode(shown.data["image/jpeg"])[:2] == b"\xff\xd8"  # a JPEG's start


def test_a_chart_is_kept_as_its_palette_png_alone(tmp_path):
    pyplot = pytest.importorskip("matplotlib.pyplot")
    source = _notebook(tmp_path, "import matplotlib.pyplot as plt\nfrom IPython.display import "
                                 "display\nfrom fctlib.report.figures import Chart\n"
                                 "fig = plt.figure(figsize=(2, x))\nplt.plot([0, x])\n"
                                 "display(Chart(fig))")
    execute_notebook(source, tmp_path / "out.ipynb", {"x": 2}, cwd=tmp_path)
    [shown] = _outputs(tmp_path / "out.ipynb")[-1]  # the chart once, not again as the open figure
    assert set(shown.data) == {"text/plain", "image/png"} and not pyplot.get_fignums()
    assert base64.b64decode(shown.data["image/png"])[:8] == b"\x89PNG\r\n\x1a\n"
