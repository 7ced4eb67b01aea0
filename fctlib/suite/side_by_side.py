"""A seed's independent trainings side by side: worker processes, each holding a Run of the same
preset, seed, overrides and runs folder, train the artifacts a step will use, each once the
artifacts it is trained against are finished, at most `count` at a time; the step's notebook
then loads them from the store as if an earlier run had trained them (same code, same keys).

One GPU trains more this way where one training alone leaves it waiting for the host (small
batches: `benchmarks/gpu_concurrency.py` measures it). Names the registry does not declare (a
notebook's own, like 07's FastFill or 10's generations) are left to their notebooks.
"""

from __future__ import annotations

import multiprocessing
import time
import traceback
from dataclasses import dataclass, field

from fctlib.methods.registry import ArtifactNameError

_WORKER_RUN = None  # the Run of a worker process (set by _start_worker)


@dataclass
class SideBySide:
    """How a side-by-side training ended: what was trained, what failed (and why), what was not
    started (an artifact it is trained against failed)."""

    trained: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    not_started: list[str] = field(default_factory=list)


def unfinished(run, names: list[str]) -> dict[str, set[str] | None]:
    """The artifacts of `names` that `run` does not hold finished, with the upstream artifacts
    they are trained against that it does not hold either (a bare machine trains those first):
    name -> the upstream names among them; None for a name the registry does not declare (a
    notebook's own: never held)."""
    todo: dict[str, set[str] | None] = {}

    def add(name: str, artifact=None) -> None:
        if name in todo:
            return
        try:
            artifact = artifact or run.artifact(name)
        except ArtifactNameError:
            todo[name] = None
            return
        if run.store.finished(artifact):
            return
        todo[name] = set()
        for upstream in artifact.upstream:
            add(upstream.name, upstream)
            if upstream.name in todo:
                todo[name].add(upstream.name)

    for name in names:
        add(name)
    return todo


def _start_worker(run_arguments: dict) -> None:
    """A worker's Run (its data are loaded on its first training)."""
    global _WORKER_RUN
    from fctlib.suite.run import Run

    _WORKER_RUN = Run(**run_arguments)


def _train(name: str) -> str:
    """Train (or load) one artifact in a worker; an error comes back as its traceback's text."""
    try:
        _WORKER_RUN.trained(name)
        return ""
    except Exception:  # noqa: BLE001 (named in the parent's summary, the others go on)
        return traceback.format_exc()


class Workers:
    """`count` worker processes, each holding a `Run(**run_arguments)` (the same preset, seed,
    overrides and runs folder as the caller's run), that train artifacts side by side. Started
    on first use and kept across calls (each keeps its data and compiled code); ended by
    `close()`, or at once when a call is interrupted (the caller's time running out): what they
    had trained is in the store, an artifact being trained resumes from its last checkpoint."""

    def __init__(self, run_arguments: dict, count: int):
        self.run_arguments, self.count, self._pool = run_arguments, count, None

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Let the workers end (they are idle between calls)."""
        if self._pool is not None:
            self._pool.close()
            self._pool.join()
            self._pool = None

    def train(self, run, names: list[str], log=print) -> SideBySide:
        """Train the artifacts of `names` that `run` does not hold (and those they are trained
        against), each as soon as its upstream artifacts are finished, at most `count` at a
        time."""
        graph = {n: up for n, up in unfinished(run, names).items() if up is not None}
        result, running = SideBySide(), {}
        if graph and self._pool is None:  # spawned: CUDA cannot be used in a forked child
            self._pool = multiprocessing.get_context("spawn").Pool(
                self.count, initializer=_start_worker, initargs=(self.run_arguments,))
        try:
            while graph or running:
                blocked = set(result.failed) | set(result.not_started)
                for name in [n for n, up in graph.items() if up & blocked]:
                    result.not_started.append(name)
                    del graph[name]
                ready = [n for n, up in graph.items() if up <= set(result.trained)]
                for name in ready[:max(0, self.count - len(running))]:
                    log(f"[side by side] training {name}")
                    running[name] = self._pool.apply_async(_train, (name,))
                    del graph[name]
                if not running:
                    result.not_started.extend(graph)  # waiting on nothing that can finish
                    break
                time.sleep(0.05)
                for name in [n for n, r in running.items() if r.ready()]:
                    error = running.pop(name).get()
                    if error:
                        result.failed[name] = error.strip().splitlines()[-1]
                        log(f"[side by side] {name} failed:\n{error}")
                    else:
                        result.trained.append(name)
        except BaseException:
            self._pool.terminate()  # a worker may be training: it must not go on beside a rerun
            self._pool.join()
            self._pool = None
            raise
        return result
