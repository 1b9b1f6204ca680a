"""A longer run of the hostile-input fuzz suite (``tests/test_fuzz_*.py``).

``make test`` runs the suite bounded to well under a minute with a fixed seed; this runs
the same properties ``--scale`` times longer (more cases and a proportionally larger time
budget per target) with a fresh seed, so each run explores new mutations. A failure
prints the seed and case number that reproduce it:

    DEPOSITORY_FUZZ_SEED=<seed> .venv/bin/pytest -q -n 0 tests/test_fuzz_verifier.py

    .venv/bin/python benchmarks/fuzz.py                  # scale 20, random seed
    .venv/bin/python benchmarks/fuzz.py --scale 100 --seed 42
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=20.0,
                    help="multiply the cases and time budget of every target (default 20)")
    ap.add_argument("--seed", type=int, default=None, help="default: a random seed")
    ap.add_argument("--case-timeout", type=float, default=60.0,
                    help="seconds one case may take before it counts as a hang (default 60)")
    args = ap.parse_args()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 2**31)
    env = {**os.environ, "DEPOSITORY_FUZZ_SEED": str(seed),
           "DEPOSITORY_FUZZ_SCALE": str(args.scale),
           "DEPOSITORY_FUZZ_CASE_TIMEOUT": str(args.case_timeout)}
    tests = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests").glob("test_fuzz_*.py"))
    print(f"fuzz: seed {seed}, scale {args.scale}, {len(tests)} suites", flush=True)
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-n", "0", "-p",
                           "no:cacheprovider", *tests], cwd=ROOT, env=env)
    took = time.monotonic() - start
    verdict = "no failures" if proc.returncode == 0 else "FAILED"
    print(f"fuzz: {verdict} in {took:.0f} s (seed {seed}; rerun with --seed {seed})")
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
