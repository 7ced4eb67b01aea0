"""The `fct` command line: fetch data sets, run the suite, compare a run with the committed
results, upgrade and search a gallery.

A user error (bad preset, file or argument) ends any command with one line on stderr and exit
code 1 (2 for a malformed command line); `--debug` or FCT_DEBUG=1 shows the traceback instead.
Ctrl-C stops a command at once with exit code 130; rerunning it resumes. `fct compare` exits 3
when a number differs from the committed seeds at a family-wise 5%.
"""

from __future__ import annotations

import argparse
import errno
import os
import shutil
import subprocess
import sys
import time
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

# At module level only what the parser needs; each command imports the rest when it runs, so
# `fct upgrade` loads no method, no run and no notebook runner (tests/suite/test_cli.py).
from fctlib.deploy.upgrade import INDEX_KINDS, IVF_FROM
from fctlib.errors import UserError
from fctlib.evaluation.distances import DISTANCES
from fctlib.io import check_output_folder
from fctlib.paths import DEFAULT_PRESET, ENGINES, REPORT, STEPS, results_root

if TYPE_CHECKING:
    from fctlib.suite.run import Run

APT_PACKAGES = {"fashion-mnist": "dataset-fashion-mnist"}
FETCHABLE = ["fashion-mnist", "mnist", "tiny-imagenet-100"]  # data sets `fct fetch-data` can get
INTERRUPTED = 130  # the shell's exit code for a command ended by SIGINT
NOT_REPRODUCED = 3  # `fct compare`: a number differs from the committed seeds
OS_ERROR_FIXES = {
    errno.EACCES: "pass a writable folder or fix its permissions",
    errno.EPERM: "pass a writable folder or fix its permissions",
    errno.EROFS: "pass a folder on a writable file system",
    errno.ENOSPC: "free some disk space and rerun",
    errno.EEXIST: "a file stands where a folder is needed; pass another path",
    errno.ENOTDIR: "a file stands where a folder is needed; pass another path",
}


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (and exit code 2), like every other error."""

    def error(self, message):
        self.exit(2, f"{self.prog}: {message}; see {self.prog} --help\n")


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    """An argparse type: an integer >= 0."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, got {value}")
    return value


def one_line(err: BaseException) -> str:
    """An error's message on one line; an OS error gets the fix for its cause."""
    text = " ".join(str(err).split())
    fix = OS_ERROR_FIXES.get(getattr(err, "errno", None)) if isinstance(err, OSError) else None
    return f"{text}; {fix}" if fix else text


def fetch_data(name: str) -> str:
    """Make a data set available: already present, Debian's package (as root), or a download."""
    from fctlib.data.sources import load_dataset
    from fctlib.data.spec import DatasetSpec

    try:
        return load_dataset(DatasetSpec(name=name, download=False)).source
    except FileNotFoundError as missing:
        first_error = missing
    package = APT_PACKAGES.get(name)
    if package and os.geteuid() == 0 and shutil.which("apt-get"):
        print(f"installing Debian package {package} ...", flush=True)
        apt = ["apt-get", "install", "-y", "-qq", package]
        ok = subprocess.run(["apt-get", "update", "-qq"]).returncode == 0
        if ok and subprocess.run(apt).returncode == 0:
            return load_dataset(DatasetSpec(name=name, download=False)).source
    try:
        return load_dataset(DatasetSpec(name=name, download=True)).source
    except Exception as download_error:
        raise UserError(f"{first_error} (download failed too: {download_error})") from None


def parse_overrides(assignments: list[str]) -> dict:
    """`a.b.c=value` strings (values parsed as YAML) as a nested overrides dict."""
    overrides: dict = {}
    for assignment in assignments:
        key, sep, value = assignment.partition("=")
        if not sep or not key:
            raise UserError(f"--set expects KEY=VALUE, got {assignment!r}; e.g. "
                            "--set old.model.width=16")
        *parents, leaf = key.split(".")
        node = overrides
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = yaml.safe_load(value)
    return overrides


def explore_on_tune(preset: str, overrides: dict, label: str, seed: int = 0,
                    runs_dir: str | Path | None = None) -> Path:
    """Run the steps under `overrides` and save every case's tune-split metrics with the setting."""
    from fctlib.experiment.config import check_plain_name
    from fctlib.experiment.records import ExplorationRecord
    from fctlib.suite.comparison import main_cases
    from fctlib.suite.run import Run

    check_plain_name(label, "--label", "results/<preset>/exploration/<label>.json")
    started = time.perf_counter()
    run = Run(preset, seed, overrides=overrides, runs_dir=runs_dir)
    cases = main_cases(run, "tune")
    return run.save_record(ExplorationRecord(
        label=label, overrides=overrides, seed=seed, split="tune", cases=cases,
        wall_seconds=round(time.perf_counter() - started, 1)))


def train_step(run: Run, names: list[str]) -> dict[str, list[dict]]:
    """Train (or load, if finished) the named artifacts (`old`, `bct:openbct:1.0`, `side:128`,
    `h:0`, ...); returns each one's history. Under torchrun every process calls it and training
    is data-parallel."""
    from fctlib.training import distributed

    artifacts = [run.artifact(name) for name in names]
    # Every process trains (or loads) the upstream encoders together; rank 0 then caches their
    # training-set embeddings, which the other processes read.
    upstream = {u.name: u for a in artifacts for u in a.upstream}
    for artifact in upstream.values():
        run.trained(artifact)
    with distributed.main_process_first():
        for artifact in upstream.values():
            run.embeddings(artifact, "train")
    return {a.name: run.trained(a)[1] for a in artifacts}


GALLERY_COMMANDS = ("export-gallery", "upgrade", "search")


def add_gallery_commands(commands) -> None:
    """The subcommands that export, upgrade and search a gallery store."""
    export = commands.add_parser(
        "export-gallery", help="write a run's gallery store (old embeddings + side-info) and h")
    export.add_argument("--preset", default=DEFAULT_PRESET)
    export.add_argument("--seed", type=int, default=0)
    export.add_argument("--split", default="test", choices=["train", "tune", "test"])
    export.add_argument("--side-dim", type=non_negative_int,
                        help="side-info size, 0 for none (default: the preset's)")
    export.add_argument("--shard-size", type=positive_int, default=10_000)
    export.add_argument("--out", required=True, help="folder for gallery/ and transformation.pt")
    export.add_argument("--runs-dir", help="folder of run artifacts (default: runs/)")
    export.add_argument("--fastfill", action="store_true",
                        help="export FastFill's h: the upgrade then also writes a backfill order")
    upgrade = commands.add_parser(
        "upgrade", help="upgrade a gallery store with a transformation, shard by shard")
    upgrade.add_argument("store", help="gallery store folder (manifest.json + shard-*/)")
    upgrade.add_argument("--transformation", required=True,
                         help="a saved transformation (.pt): FCT's h or FastFill's")
    upgrade.add_argument("--out", help="output folder (default: <store>-upgraded)")
    upgrade.add_argument("--index", default="auto", choices=INDEX_KINDS,
                         help=f"faiss index: auto = IVF from {IVF_FROM:,} items, else flat")
    upgrade.add_argument("--metric", default="l2", choices=DISTANCES)
    upgrade.add_argument("--batch-size", type=int, default=8192)
    upgrade.add_argument("--workers", type=positive_int,
                         help="map shards on a local Dask cluster")
    upgrade.add_argument("--scheduler", help="map shards on the Dask scheduler at this address")
    search = commands.add_parser(
        "search", help="query an upgraded gallery exported from a run with its new model")
    search.add_argument("upgraded", help="an upgrade's output folder")
    search.add_argument("--queries", nargs="*", type=int, default=[0],
                        help="positions in the split whose neighbours to print")
    search.add_argument("-k", type=int, default=10)
    search.add_argument("--runs-dir", help="folder of run artifacts (default: runs/)")


def run_upgrade(args) -> None:
    """`fct upgrade`: in this process, or across a Dask cluster (--workers or --scheduler; Dask's
    helpers load only then)."""
    from fctlib.deploy.upgrade import upgrade_gallery

    upgrade = partial(upgrade_gallery, args.store, args.transformation, args.out,
                      index=args.index, metric=args.metric, batch_size=args.batch_size)
    if args.workers is None and args.scheduler is None:
        upgrade()
        return
    from fctlib.deploy.cluster import dask_client, threads_per_worker

    with dask_client(args.workers, args.scheduler) as client:
        upgrade(client=client, threads=threads_per_worker(args.workers))


def run_gallery_command(args) -> None:
    """Run `export-gallery`, `upgrade` or `search`."""
    if args.command == "upgrade":
        run_upgrade(args)
    elif args.command == "export-gallery":
        from fctlib.suite.export import export_gallery
        from fctlib.suite.run import Run

        run = Run(args.preset, args.seed, runs_dir=args.runs_dir)
        store, path = export_gallery(run, args.out, split=args.split, side_dim=args.side_dim,
                                     shard_size=args.shard_size, fastfill=args.fastfill)
        print(f"gallery store: {store.folder} ({store.count} items, {len(store.shards)} "
              f"shards)\ntransformation: {path}")
    else:
        from fctlib.suite.export import search_run

        found = search_run(args.upgraded, args.queries, args.k, args.runs_dir)
        print(yaml.safe_dump(found, sort_keys=False, default_flow_style=None), end="")


def build_parser() -> argparse.ArgumentParser:
    """The `fct` command line and its subcommands."""
    parser = OneLineParser(prog="fct", description=__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of an error (also: FCT_DEBUG=1)")
    commands = parser.add_subparsers(dest="command", required=True)
    fetch = commands.add_parser("fetch-data", help="make a data set available locally")
    fetch.add_argument("name", choices=FETCHABLE)
    reproduce = commands.add_parser("reproduce", help="run the notebook suite of a preset")
    reproduce.add_argument("--preset", default=DEFAULT_PRESET,
                           help="a name in params/ or a path to a preset YAML")
    reproduce.add_argument("--seeds", nargs="+", type=int,
                           help="seeds to run (default: the preset's first seed)")
    reproduce.add_argument("--all-seeds", action="store_true", help="run every seed of the preset")
    reproduce.add_argument("--only", nargs="+", choices=[*STEPS, REPORT],
                           help="run only these notebooks")
    reproduce.add_argument("--no-report", action="store_true", help="skip the report")
    reproduce.add_argument("--runs-dir", help="folder of run artifacts (default: runs/)")
    reproduce.add_argument("--results-dir",
                           help="folder of executed notebooks, metrics and the report "
                                "(default: results/<preset name>/)")
    reproduce.add_argument("--rerun", action="store_true",
                           help="execute steps again that finished at this commit with this "
                                "preset (default: skip them)")
    reproduce.add_argument("--engine", choices=ENGINES, default="papermill",
                           help="papermill (a Jupyter kernel per notebook) or in-process (the "
                                "cells in this process, for a machine without Jupyter)")
    explore = commands.add_parser(
        "explore", help="evaluate every case on the tune split under changed settings")
    explore.add_argument("--preset", default=DEFAULT_PRESET)
    explore.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                         help="preset overrides, e.g. old.model.width=16 (values parsed as YAML)")
    explore.add_argument("--label", required=True, help="name of this setting in the report")
    explore.add_argument("--seed", type=int, default=0)
    explore.add_argument("--runs-dir", help="folder of run artifacts (default: runs/)")
    step = commands.add_parser(
        "train-step", help="train one step's models; data-parallel under torchrun")
    step.add_argument("--preset", default=DEFAULT_PRESET)
    step.add_argument("--seed", type=int, default=0)
    step.add_argument("--step", required=True, nargs="+", metavar="ARTIFACT",
                      help="artifact names, e.g. old new side:128 bct:openbct:1.0 h:0 h:128")
    step.add_argument("--runs-dir", help="folder of run artifacts (default: runs/ in the project)")
    add_gallery_commands(commands)
    compare = commands.add_parser(
        "compare", help="check your results against the committed ones: every number's "
        "difference from the committed seeds' mean, tested together (family-wise 5%%), and a "
        "verdict (exit 3: not reproduced)")
    compare.add_argument("--preset", default=DEFAULT_PRESET)
    compare.add_argument("--results-dir", required=True,
                         help="your results folder (the --results-dir of your fct reproduce)")
    compare.add_argument("--to", help="the committed results (default: results/<preset name>/)")
    return parser


def run_train_step(args) -> None:
    """`fct train-step`: every torchrun process trains; the main one prints the histories."""
    from fctlib.suite.run import Run
    from fctlib.training import distributed

    distributed.init_from_env()
    main_process = distributed.is_main_process()
    try:
        run = Run(args.preset, args.seed, runs_dir=args.runs_dir)
        histories = train_step(run, args.step)
    finally:
        distributed.shutdown()
    if main_process:
        for name, history in histories.items():
            print(f"{name}: {len(history)} epochs, last loss {history[-1]['loss']:.4f}")


def run_compare(args) -> int:
    """`fct compare`: print the comparison; NOT_REPRODUCED when a number differs."""
    from fctlib.experiment.config import load_preset
    from fctlib.report.reproduction import compare_results

    committed = args.to or results_root(load_preset(args.preset).name)
    for folder, flag in ((args.results_dir, "--results-dir"), (committed, "--to")):
        if not Path(folder, "metrics").is_dir():
            raise UserError(f"{flag} {folder}: no metrics/ folder of step records; pass the "
                            "--results-dir of an fct reproduce run")
    text, reproduced = compare_results(args.results_dir, committed)
    print(text)
    return 0 if reproduced else NOT_REPRODUCED


def run_command(args) -> int | None:
    """Run the parsed subcommand (an exit code where it has its own); user errors raise
    UserError (or OSError)."""
    runs_dir = getattr(args, "runs_dir", None)
    if runs_dir is not None:
        check_output_folder(runs_dir, "--runs-dir")
    if args.command == "compare":
        return run_compare(args)
    if args.command in GALLERY_COMMANDS:
        run_gallery_command(args)
    elif args.command == "train-step":
        run_train_step(args)
    elif args.command == "explore":
        path = explore_on_tune(args.preset, parse_overrides(args.set), args.label, args.seed,
                               runs_dir)
        print(f"tune-split metrics in {path}")
    elif args.command == "fetch-data":
        print(f"{args.name}: {fetch_data(args.name)}")
    else:
        from fctlib.experiment.config import load_preset
        from fctlib.suite.runner import run_suite

        seeds = load_preset(args.preset).seeds if args.all_seeds else args.seeds
        results = run_suite(args.preset, seeds, only=args.only, report=not args.no_report,
                            runs_dir=runs_dir, results_dir=args.results_dir, engine=args.engine,
                            rerun=args.rerun)
        print(f"results in {results}")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `fct` console script: the one place that turns errors into exit codes."""
    args = build_parser().parse_args(argv)
    debug = args.debug or os.environ.get("FCT_DEBUG") == "1"
    try:
        code = run_command(args)
    except KeyboardInterrupt:
        if debug:
            raise
        print(f"fct {args.command}: interrupted; rerun the same command to resume (finished "
              "work is kept)", file=sys.stderr)
        return INTERRUPTED
    except (UserError, OSError) as err:
        if debug:
            raise
        print(f"fct {args.command}: {one_line(err)}", file=sys.stderr)
        return 1
    return code or 0


if __name__ == "__main__":
    sys.exit(main())
