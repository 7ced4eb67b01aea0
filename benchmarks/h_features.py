"""What h is fitted on, measured: FCT's transformation trained on the cached unaugmented
embeddings (feature_views 1), on K cached augmented passes (one per epoch), or on images augmented
afresh every batch as ml-fct does (0), each at the given epochs and weight decay, for several
seeds; per fit its tune-split retrieval (new queries against the transformed tune gallery), its
mean squared error where it was fitted (train) and held out (tune), and its wall time (which
includes embedding the augmented passes only where no earlier fit of the run embedded them).

Rows go to OUT/h_features.csv and OUT/h_features.json as they finish (trained artifacts stay in
the runs folder, so a rerun resumes); OUT/summary.csv holds mean and std over seeds per setting.
Usage: python benchmarks/h_features.py OUT [--preset fashion-mnist] [--seeds 0 1] [--views 1 4 0]
       [--epochs 80] [--weight-decay 3.0517578125e-05] [--side-dims D ...] [--runs-dir DIR]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd

from fctlib.experiment.provenance import provenance, provenance_comment
from fctlib.io import atomic_write, save_json
from fctlib.methods.fct import TransformationName, fit_error, transformed_gallery
from fctlib.suite.run import Run

ML_FCT_WEIGHT_DECAY = 2 ** -15  # ml-fct configs/*_transformation.yaml: 3.0517578125e-05


def fit_row(run: Run, name: TransformationName) -> dict:
    """One fit of h: its tune-split retrieval, its fit errors and its wall time."""
    started = time.perf_counter()
    _, history = run.trained(name)
    seconds = time.perf_counter() - started
    new = run.embeddings("new", "tune")
    metrics = run.evaluate(new, transformed_gallery(run, name, "tune"), "tune")["all"]
    return {"h": str(name), "top1": 100 * metrics["top1"], "mAP": 100 * metrics["mAP"],
            "train_mse": fit_error(run, name, "train"), "tune_mse": fit_error(run, name, "tune"),
            "last_loss": history[-1]["loss"], "epochs": len(history),
            "fit_seconds": round(seconds, 1)}


def summary(rows: pd.DataFrame) -> pd.DataFrame:
    """Mean and std over seeds of every measure, per setting and h."""
    measures = ["top1", "mAP", "train_mse", "tune_mse", "fit_seconds"]
    grouped = rows.groupby(["feature_views", "h"], sort=False)[measures]
    spread = grouped.std().add_suffix("_std")
    return grouped.mean().join(spread).join(grouped.size().rename("seeds")).reset_index()


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--preset", default="fashion-mnist")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--views", type=int, nargs="+", default=[1, 4, 0],
                        help="transformation.feature_views settings (0: fresh every batch)")
    parser.add_argument("--epochs", type=int, default=80)
    parser.add_argument("--weight-decay", type=float, default=ML_FCT_WEIGHT_DECAY)
    parser.add_argument("--side-dims", type=int, nargs="+", default=None,
                        help="h's side-info sizes (default: the preset's; 0: none)")
    parser.add_argument("--runs-dir", default=None)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    info = provenance(args.preset, args.seeds, command=" ".join(sys.argv))
    rows = []
    for seed in args.seeds:
        for views in args.views:
            training = {"epochs": args.epochs, "weight_decay": args.weight_decay}
            run = Run(args.preset, seed, runs_dir=args.runs_dir, overrides={
                "transformation": {"feature_views": views, "training": training}})
            dims = args.side_dims or [run.preset.side_info.model.embedding_dim]
            for dim in dims:
                rows.append({"seed": seed, "feature_views": views,
                             **fit_row(run, TransformationName(dim))})
                print(rows[-1], flush=True)
                frame = pd.DataFrame(rows)
                save_json({"provenance": info, "rows": rows}, args.out / "h_features.json")
                for name, table in (("h_features", frame), ("summary", summary(frame))):
                    text = provenance_comment(info) + table.to_csv(index=False)
                    atomic_write(args.out / f"{name}.csv", lambda tmp, t=text: tmp.write_text(t))


if __name__ == "__main__":
    main()
