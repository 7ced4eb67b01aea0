"""The verdict's family-wise false-alarm rate on simulated faithful runs, and how often it finds
one number moved by k of its true stds. True variances follow a scaled inverse chi-square with
`true dof` (smaller: more unequal spreads); `--seeds` committed seeds (3, the default, as when
this folder was made) and one of yours per number; `--numbers` in a whole seed's family (230, the
default, as then).
From the project root (run.sh does; ../compare-four-seeds-2026-12-06/run.sh with --seeds 4,
../compare-curves-2026-12-07/run.sh with --seeds 4 --numbers 290):
  python results/benchmarks/compare-verdict-2026-12-06/simulate.py [--seeds N] [--numbers N]"""

import argparse
import math

import numpy as np

from fctlib.report.reproduction import simulated_alarm

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--seeds", type=int, default=3, help="committed seeds per number")
parser.add_argument("--numbers", type=int, default=230, help="numbers of a whole seed")
args = parser.parse_args()
seeds, whole = args.seeds, args.numbers
rng = np.random.default_rng(0)
trials = 1000
print(f"False alarms of faithful runs, {seeds} committed seeds ({trials} trials each):")
print(f"| true dof | 30 numbers | {whole} numbers |\n|---|---|---|")
for true_dof in (math.inf, 16, 8, 4, 2):
    rates = [np.mean([simulated_alarm(rng, n, true_dof, committed_seeds=seeds)
                      for _ in range(trials)]) for n in (30, whole)]
    print(f"| {true_dof:g} | {rates[0]:.3f} | {rates[1]:.3f} |")
print(f"\nOne of {whole} numbers moved by k true stds, true dof 8 ({trials // 2} trials each):")
print("| k | found |\n|---|---|")
for shift in (4, 6, 8, 10, 12, 15):
    found = np.mean([simulated_alarm(rng, whole, 8.0, shift, committed_seeds=seeds)
                     for _ in range(trials // 2)])
    print(f"| {shift} | {found:.3f} |")
