"""Ablations of FCT's transformation h: side-info size (notebook 06), side-info source, share of
the training set fitting h, and width of h (notebook 08); FCT's retrieval per setting."""

from __future__ import annotations

import dataclasses

import pandas as pd

from fctlib.report.common import METRICS, Records, mean_std, over_seeds

SIZE_KEYS = ["side_info_dim"]
ABLATION_KEYS = {"side_info_source": ["source", "side_info_dim"],
                 "data_share": ["data_share", "train_images"],
                 "width": ["width_factor", "parameters"]}


def setting_frame(rows: list, seed: int) -> pd.DataFrame:
    """One seed's rows of a sweep of settings (records with setting fields and `metrics`): the
    setting and the metrics of all queries (%), one row per setting."""
    data = [{"seed": seed, **{f.name: getattr(row, f.name) for f in dataclasses.fields(row)
                              if f.name != "metrics"},
             **{m: 100 * row.metrics["all"][m] for m in METRICS}} for row in rows]
    return pd.DataFrame(data) if data else pd.DataFrame(columns=["seed", *METRICS])


def side_info_size_rows(records: Records) -> pd.DataFrame:
    """Every seed's side-info size sweep (as setting_frame)."""
    return over_seeds(records, "side_info_size", lambda r, seed: setting_frame(r.rows, seed),
                      ["seed", *SIZE_KEYS, *METRICS])


def ablation_rows(records: Records, ablation: str) -> pd.DataFrame:
    """Every seed's rows of one ablation (`side_info_source`, `data_share` or `width`)."""
    return over_seeds(records, "ablations",
                      lambda r, seed: setting_frame(getattr(r, ablation), seed),
                      ["seed", *ABLATION_KEYS[ablation], *METRICS])


def _settings_table(long: pd.DataFrame, keys: list[str], ascending: bool) -> pd.DataFrame:
    """Mean and standard deviation over seeds per setting; in the order run, or ascending."""
    if long.empty:
        return pd.DataFrame(columns=[*keys, *METRICS])
    table = mean_std(long, keys)
    return table.sort_values(keys[0]).reset_index(drop=True) if ascending else table


def side_info_size_table(long: pd.DataFrame) -> pd.DataFrame:
    """side_info_dim, top1, top5, mAP (mean over seeds, percent; 0 = no side-info) and stds."""
    return _settings_table(long, SIZE_KEYS, ascending=True)


def side_info_source_table(long: pd.DataFrame) -> pd.DataFrame:
    """FCT by side-info source (simclr, other-data, supervised, random, none), in the preset's
    order."""
    return _settings_table(long, ABLATION_KEYS["side_info_source"], ascending=False)


def data_share_table(long: pd.DataFrame) -> pd.DataFrame:
    """FCT by the share of the training set that fits h (and its number of images), ascending."""
    return _settings_table(long, ABLATION_KEYS["data_share"], ascending=True)


def width_table(long: pd.DataFrame) -> pd.DataFrame:
    """FCT by the width factor of h (and its number of parameters), ascending."""
    return _settings_table(long, ABLATION_KEYS["width"], ascending=True)


def side_info_source_sentence(table: pd.DataFrame) -> str:
    """One sentence: is self-supervised side-info the best source by top-1, with the numbers."""
    top1 = table.set_index("source")["top1"]
    if "simclr" not in top1 or len(top1) < 2:
        return "Too few side-info sources ran to compare them with self-supervised side-info."
    others = top1.drop("simclr")
    rivals = [s for s, v in others.items() if v >= top1["simclr"]]
    verdict = ("holds" if not rivals
               else f"fails ({', '.join(rivals)} reach at least as much)")
    listing = ", ".join(f"{s} {v:.2f}%" for s, v in others.items())
    return (f"FCT top-1 with self-supervised (SimCLR) side-info is {top1['simclr']:.2f}% against "
            f"{listing}: the expectation that self-supervised side-info is the best source "
            f"{verdict}.")


def trend_sentence(table: pd.DataFrame, column: str, what: str) -> str:
    """One sentence: does FCT top-1 never fall as `column` grows; every fall named with numbers."""
    points = list(zip(table[column], table["top1"], strict=True))
    path = ", ".join(f"{x:g}: {v:.2f}%" for x, v in points)
    falls = [f"{a:g} -> {b:g}: {va:.2f}% -> {vb:.2f}%"
             for (a, va), (b, vb) in zip(points[:-1], points[1:], strict=True) if vb < va]
    verdict = (f"it never falls as {what} grows, as expected" if not falls else
               f"the expectation that it does not fall as {what} grows fails ({'; '.join(falls)})")
    return f"FCT top-1 by {what} ({path}): {verdict}."
