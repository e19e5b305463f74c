#!/usr/bin/env python3
"""How long `fab --list` and `inv --list` take, against a bare interpreter.

Start-up time is what an operator waits for before every task. Each
command runs ``--runs`` times (default 7); the medians are printed with
their ratio to ``python -c "import fabric"``, measured in the same run.

    .venv/bin/python bench/fab_list.py [--runs 7]
"""
import argparse
import statistics
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / ".venv" / "bin"


def seconds(argv, runs):
    spent = []
    for _ in range(runs):
        began = time.perf_counter()
        subprocess.run(argv, cwd=ROOT, check=True, capture_output=True)
        spent.append(time.perf_counter() - began)
    return statistics.median(spent)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    runs = parser.parse_args().runs
    baseline = seconds([str(BIN / "python"), "-c", "import fabric"], runs)
    print(f"{'command':32} {'median s':>9} {'x baseline':>11}")
    label = 'python -c "import fabric"'
    print(f"{label:32} {baseline:9.3f} {1:11.2f}")
    for argv in (["fab", "--list"], ["inv", "--list"]):
        median = seconds([str(BIN / argv[0]), *argv[1:]], runs)
        print(f"{' '.join(argv):32} {median:9.3f} {median / baseline:11.2f}")


if __name__ == "__main__":
    main()
