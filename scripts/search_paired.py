"""Paired difference of two searches run with the same seeds (run r of each pairs up).

  python scripts/search_paired.py runs/area runs/rea [--targets cifar10_test,...]

Prints, per target, mean(A - B) with its Student-t 95 % CI over the paired runs, e.g.
AREA's gain over REA at the same evaluation budget.
"""

import argparse
import json
import os

from jaxnas import search_report


def _runs(workdir):
    with open(os.path.join(workdir, "runs.jsonl")) as f:
        return {r["run"]: r for r in map(json.loads, f)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", help="workdir of search A")
    parser.add_argument("b", help="workdir of search B")
    parser.add_argument(
        "--targets",
        default="cifar10_test,cifar100_test,imagenet16_120_test,"
        "cifar10_val_acc,cifar100_val_acc,imagenet16_120_val_acc",
    )
    args = parser.parse_args()
    a, b = _runs(args.a), _runs(args.b)
    paired = sorted(set(a) & set(b))
    if not paired:
        raise SystemExit("error: the two searches share no run index")
    for target in args.targets.split(","):
        if target not in a[paired[0]] or target not in b[paired[0]]:
            continue
        d = search_report.paired_difference(
            [a[r][target] for r in paired], [b[r][target] for r in paired]
        )
        lo, hi = d["ci95"]
        print(f"{target}: A - B = {d['mean']:+.3f} (95% CI [{lo:+.3f}, {hi:+.3f}], n={d['n']})")


if __name__ == "__main__":
    main()
