#!/usr/bin/env python
"""Render the tables of every registered study (evaluation/study_tables.py) from its raw results in
docs/results/data/, into its markdown; with --check, only say which differ (exit 1 if any).

    python benchmarks/render_results.py            # rewrite the rendered blocks
    python benchmarks/render_results.py --check    # what the test suite checks
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from evaluation.study_tables import render_studies

RESULTS = Path(__file__).resolve().parent.parent / "docs" / "results"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare only; exit 1 when a committed table differs")
    args = parser.parse_args()
    changed = render_studies(RESULTS, write=not args.check)
    for name in changed:
        print(f"{name}: {'differs from its data' if args.check else 'rewritten'}")
    return 1 if args.check and changed else 0


if __name__ == "__main__":
    sys.exit(main())
