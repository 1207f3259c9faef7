"""Spearman and Kendall (bootstrap CIs) of scores in a jaxnas `scores.jsonl` vs a table.

  python scripts/correlation.py RUN/scores.jsonl TABLE.csv.gz --target val_acc \
      [--proxy naswot] [--reference nwot] [--bootstrap 1000]

Matches rows on the architecture string; reports ours vs each target, ours vs each
reference score column, and each reference vs each target, on the same architectures.
"""

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))
from jaxnas import benchmarks, errors, evaluation  # noqa: E402


def _score(value):
    if value is None:
        return np.nan
    return float(value)  # float("-inf") parses the "-inf" written for singular kernels


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scores")
    parser.add_argument("table")
    parser.add_argument("--target", action="append", required=True)
    parser.add_argument("--reference", action="append", default=[])
    parser.add_argument("--proxy", default=None, help="proxy key in scores.jsonl (default: all)")
    parser.add_argument("--bootstrap", type=int, default=1000)
    args = parser.parse_args()
    try:
        rows = [json.loads(line) for line in open(args.scores)]
        table = benchmarks.Benchmark.from_csv(args.table)
        rows = [r for r in rows if r["arch"] in table]
        archs = [r["arch"] for r in rows]
        proxies = (
            [args.proxy] if args.proxy else [k for k in rows[0] if isinstance(rows[0][k], dict)]
        )
        columns = {f"reference {c}": table.lookup(c, archs) for c in args.reference}
        for p in proxies:
            columns[p] = np.asarray([_score(r[p]["score"]) for r in rows])
        for name, values in columns.items():
            for target in args.target:
                r = evaluation.rank_correlations(
                    values, table.lookup(target, archs), num_bootstrap=args.bootstrap
                )
                print(evaluation.format_correlation(f"{name} vs {target}", r))
        for p in proxies:
            for c in args.reference:
                r = evaluation.rank_correlations(
                    columns[p], columns[f"reference {c}"], num_bootstrap=args.bootstrap
                )
                print(evaluation.format_correlation(f"{p} vs reference {c}", r))
    except (OSError, KeyError, errors.JaxnasError) as exc:
        sys.exit(f"error: {exc}")


if __name__ == "__main__":
    main()
