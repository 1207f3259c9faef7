"""A config's first and second run with the persistent compilation cache, side by side.

  python scripts/bench_cache.py \
      --configs configs/nb201_naswot.py:size=16 \
                configs/nb201_suitezero_proxies.py:size=8,proxies=snip \
      [--workdir runs/bench_cache]

For each config: a fresh cache folder, then the CLI run twice in subprocesses
(`python -m jaxnas.main --config=... --compilation_cache=<folder>`, each run into a fresh
workdir). Prints, per run, the wall seconds from launch to exit and, per proxy,
`timing.<proxy>.seconds_to_first_call` from its report.json (trace + compile or cache
load + the first call), and whether both runs wrote the same scores.jsonl. With a
config whose population fits one call, the second run's wall time bounds the issue's
"starts scoring within 10 s of launch" from above (it also holds the first call's
scoring and the report).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_once(config, workdir, cache):
    """Runs the CLI once; returns (wall seconds, {proxy: seconds_to_first_call}, the
    lines of its scores.jsonl)."""
    shutil.rmtree(workdir, ignore_errors=True)
    cmd = [
        sys.executable,
        "-m",
        "jaxnas.main",
        f"--config={config}",
        f"--workdir={workdir}",
        f"--compilation_cache={cache}",
    ]
    start = time.perf_counter()
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if out.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{out.stderr[-3000:]}")
    with open(os.path.join(workdir, "report.json")) as f:
        timing = json.load(f)["timing"]
    with open(os.path.join(workdir, "scores.jsonl")) as f:
        scores = f.read().splitlines()
    return wall, {name: t["seconds_to_first_call"] for name, t in timing.items()}, scores


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", required=True)
    parser.add_argument("--workdir", default="runs/bench_cache")
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f}")
    for i, config in enumerate(args.configs):
        root = os.path.abspath(os.path.join(args.workdir, str(i)))
        cache = os.path.join(root, "xla")
        shutil.rmtree(cache, ignore_errors=True)
        scores = []
        for n in (1, 2):
            wall, first, lines = run_once(config, os.path.join(root, f"run{n}"), cache)
            scores.append(lines)
            firsts = ", ".join(f"{name} {s:.1f} s" for name, s in first.items())
            print(f"{config}: run {n} wall {wall:.1f} s; to first call: {firsts}", flush=True)
        print(f"{config}: scores of the two runs {'equal' if scores[0] == scores[1] else 'DIFFER'}")
    print(f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
