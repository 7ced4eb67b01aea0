"""Figures stay readable: the class grid of a 100-class data set shows a capped, balanced set."""

import numpy as np
import torch

from fctlib.data.images import ArrayImages
from fctlib.data.preview import plot_class_grid


def _rows(fig, per_class=6):
    return [ax.get_ylabel() for ax in fig.axes[::per_class]]


def test_class_grid_caps_many_classes_with_old_and_new_in_equal_numbers():
    images = ArrayImages(torch.zeros(300, 3, 8, 8, dtype=torch.uint8), np.arange(300) % 100)
    rows = _rows(plot_class_grid(images, [f"c{i}" for i in range(100)], list(range(50))))
    assert len(rows) == 20
    assert sum("(old)" in r for r in rows) == 10 and sum("(new)" in r for r in rows) == 10


def test_class_grid_shows_every_class_of_a_small_data_set():
    images = ArrayImages(torch.zeros(30, 1, 8, 8, dtype=torch.uint8), np.arange(30) % 10)
    rows = _rows(plot_class_grid(images, [f"c{i}" for i in range(10)], list(range(5))))
    assert [r.split("\n")[0] for r in rows] == [f"c{i}" for i in range(10)]


def test_gap_closed_chart_clips_a_far_bar_and_labels_its_value():
    import pandas as pd

    from fctlib.report.figures import GAP_LIMITS, plot_gap_closed

    ours = pd.DataFrame({"case": ["bct/old", "fct/side"], "top1_gap_closed": [-2.62, 0.73],
                         "mAP_gap_closed": [-0.32, 0.91]})
    ax = plot_gap_closed(ours).axes[0]
    low, high = ax.get_ylim()
    assert low >= GAP_LIMITS[0] - 0.5 and high <= GAP_LIMITS[1] + 0.5
    assert [t.get_text() for t in ax.texts] == ["-2.62"]  # only the clipped bar is labelled
    heights = sorted(p.get_height() for p in ax.patches if p.get_fill())
    assert heights[0] == GAP_LIMITS[0] and 0.91 in heights


def test_gap_closed_chart_says_where_a_gap_is_too_small():
    import pandas as pd

    from fctlib.report import GAP_REVERSED, GAP_TOO_SMALL
    from fctlib.report.figures import plot_gap_closed

    ours = pd.DataFrame({"case": ["bct/old", "fct/side"],
                         "top1_gap_closed": [GAP_TOO_SMALL, GAP_REVERSED],
                         "mAP_gap_closed": [0.2, 0.91]})
    ax = plot_gap_closed(ours).axes[0]
    assert [t.get_text() for t in ax.texts] == [GAP_TOO_SMALL, GAP_REVERSED]


def test_a_photo_shows_a_grid_of_real_images_as_jpeg_in_a_fraction_of_the_png_s_bytes(
        fashion_mnist):
    import io

    import matplotlib.pyplot as plt
    from PIL import Image

    from fctlib.report.figures import Photo

    fig = plot_class_grid(fashion_mnist.test, fashion_mnist.class_names, list(range(5)))
    png = io.BytesIO()
    fig.savefig(png, dpi=100, bbox_inches="tight", format="png")
    photo = Photo(fig)
    assert not plt.fignum_exists(fig.number)  # shown once, as the JPEG: the figure is closed
    shown = Image.open(io.BytesIO(photo._repr_jpeg_()))
    assert shown.format == "JPEG" and shown.size == Image.open(png).size
    assert len(photo.jpeg) < 0.5 * len(png.getvalue())


def test_a_saved_photo_replaces_the_png_of_its_name(tmp_path):
    import matplotlib.pyplot as plt
    from PIL import Image

    from fctlib.report.figures import Photo

    older = tmp_path / "figures" / "retrievals_seed0.png"
    older.parent.mkdir()
    older.write_bytes(b"an older figure")
    fig = plt.figure(figsize=(2, 1))
    photo = Photo(fig)
    path = photo.save(tmp_path / "figures" / "retrievals_seed0.jpg")
    assert path.read_bytes() == photo.jpeg and Image.open(path).format == "JPEG"
    assert sorted(p.name for p in older.parent.iterdir()) == ["retrievals_seed0.jpg"]


def test_a_chart_is_shown_in_256_colours_in_a_fraction_of_the_png_s_bytes():
    import io

    import matplotlib.pyplot as plt
    import pandas as pd
    from PIL import Image

    from fctlib.report.figures import Chart, plot_cases

    table = pd.DataFrame({"case": ["old/old", "new/new", "fct/side"], "top1": [60.1, 80.2, 75.3],
                          "mAP": [40.0, 62.5, 55.1]})
    fig = plot_cases(table)
    full = io.BytesIO()
    fig.savefig(full, dpi=100, bbox_inches="tight", format="png")
    chart = Chart(fig)
    assert not plt.fignum_exists(fig.number)
    shown = Image.open(io.BytesIO(chart._repr_png_()))
    assert shown.mode == "P" and shown.size == Image.open(full).size
    assert len(chart.png) < 0.6 * len(full.getvalue())
