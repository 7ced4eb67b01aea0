"""Shared by the benchmark scripts: run a command as a child process and measure it."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time


def run_measured(cmd: list[str], env: dict | None = None) -> dict:
    """Run `cmd` to completion: its wall seconds, its own peak resident set size in MB (the
    maximum resident set size that `/usr/bin/time -v` reports) and its stdout. A failing command
    stops the benchmark with its stderr."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True,
                                env={**os.environ, **(env or {})})
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if proc.returncode != 0:
        sys.stderr.write(stderr)
        raise SystemExit(f"benchmark step failed ({proc.returncode}): {' '.join(cmd)}")
    return {"seconds": seconds, "peak_rss_mb": usage.ru_maxrss / 1024, "stdout": stdout}
