"""Trace, compile and steady time of a proxy's scoring program, this tree vs another.

  python scripts/bench_compile.py [--space nb201] [--proxies naswot snip snip+grad_norm] \
      [--batch-size 64] [--num-inits 1] [--crop-size 0] [--num-archs 12] \
      [--archs-per-call 4] [--baseline DIR] \
      [--compare-kwargs '{"scan_cells": false}'] \
      [--compare-xla-flags=--xla_backend_optimization_level=1 ...] \
      [--compare-init-chunks 32 ...] [--concurrent-calls 0] [--compare-concurrent-calls 1 ...]

For each proxy, one worker process per variant (this tree; `--baseline`, a checkout of an
older commit, e.g. `git worktree add ../jaxnas-before <commit>`; `--compare-kwargs`, this
tree with other space arguments, e.g. NB201's cells unrolled; each `--compare-xla-flags`,
this tree with those XLA flags added, e.g. a lower LLVM optimisation level; each
`--compare-init-chunks`, this tree with that many initialisations vmapped together
instead of the backend's default, `dispatch.init_chunk`; each
`--compare-concurrent-calls`, this tree with that many compiled calls at once instead of
`--concurrent-calls`, whose 0 is the CLI's auto, `dispatch.concurrent_calls`) compiles
the CLI's programs,
`scoring.make_scorer` (the shared initialisations in a program of their own, whose
compile is printed as "init"; in a tree from before that split, `score_population`
whole), over a seeded sample of the space's cells on one synthetic batch (labels included; with
`--crop-size`, one-channel crops of that size) under `--num-inits` initialisations (a
`+`-joined spec is one fused `proxies.stack` program) and measures, with JAX's
ahead-of-time API: tracing + lowering (s), XLA compilation (s), the number of HLO
instructions XLA optimised, steady seconds per cell over the calls after the first, and
the worker's peak resident memory. The variants run one after the other, per
proxy, in the same invocation; their scores are compared with the first variant's (largest
relative difference and Spearman). The persistent compilation cache is off in the
workers (cold compiles).

Prints one line per (proxy, variant) and the ratios of the first variant to the others
(old / new: above 1 means the later variant is faster).
"""

import argparse
import inspect
import json
import os
import resource
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def worker(args):
    """Runs in a subprocess whose `PYTHONPATH` is the tree being measured."""
    import jax
    import numpy as np

    from jaxnas import data, proxies, spaces

    # As the CLI does; a --baseline tree older than this helper goes without it.
    try:
        from jaxnas.xla_settings import trim_heap_after_compiles
    except ImportError:
        pass
    else:
        trim_heap_after_compiles()

    space = spaces.SPACES[args.space](
        **json.loads(args.space_kwargs), **json.loads(args.extra_kwargs)
    )
    cells = np.asarray(space.sample(jax.random.key(args.seed), args.num_archs))
    if args.crop_size:
        # One-channel crops (TE-NAS's linear-region inputs): only their shape matters here.
        shape = (args.crop_size, args.crop_size, 1)
        batch = data.synthetic_batch(jax.random.key(1), args.batch_size, shape)
    else:
        batch = data.synthetic_batch(jax.random.key(1), args.batch_size)
    keys = jax.random.split(jax.random.key(0), args.num_inits)
    fns = [proxies.get_proxy(spec) for spec in args.proxy.split("+")]
    proxy = fns[0] if len(fns) == 1 else proxies.stack(*fns)

    n = args.archs_per_call
    chunks = [cells[i : i + n] for i in range(0, len(cells) - n + 1, n)]
    score_kwargs = json.loads(args.score_kwargs)
    concurrent_calls = score_kwargs.pop("concurrent_calls", args.concurrent_calls)
    try:
        from jaxnas.scoring import Scorer
    except ImportError:  # a --baseline tree whose scoring program draws the parameters
        Scorer = None
    if Scorer is None:

        def score(population, batch, keys):
            return proxies.score_population(proxy, space, population, batch, keys, **score_kwargs)

        program, args_0, init_s = jax.jit(score), (chunks[0], batch, keys), 0.0
    else:
        # As the CLI scores: the initialisations in a program of their own, timed apart.
        from jaxnas import scoring

        scorer = scoring.make_scorer(proxy, space, **score_kwargs)
        start = time.perf_counter()
        init = scorer.init.lower(chunks[0], batch, keys).compile()
        init_s = time.perf_counter() - start
        program, args_0 = scorer.score, (chunks[0], batch, keys, init(chunks[0], batch, keys))
    start = time.perf_counter()
    lowered = program.lower(*args_0)
    trace_s = time.perf_counter() - start
    start = time.perf_counter()
    compiled = lowered.compile()
    compile_s = time.perf_counter() - start
    hlo_ops = sum(
        line.lstrip().startswith(("%", "ROOT")) for line in compiled.as_text().splitlines()
    )
    if Scorer is None:
        scores = [np.asarray(jax.block_until_ready(compiled(chunks[0], batch, keys)))]
        start = time.perf_counter()
        for chunk in chunks[1:]:
            scores.append(np.asarray(jax.block_until_ready(compiled(chunk, batch, keys))))
        steady = (time.perf_counter() - start) / max(len(chunks) - 1, 1) / n
    else:
        # As the CLI scores (`scoring.score_chunks`); a tree from before concurrent calls
        # runs them one at a time.
        import timing

        concurrent = {}
        if "concurrent_calls" in inspect.signature(scoring.score_chunks).parameters:
            concurrent = {"concurrent_calls": concurrent_calls}
        scores, steady, _ = timing.time_score_chunks(
            Scorer(init, compiled), np.concatenate(chunks), batch, keys, n, **concurrent
        )
        scores = [np.asarray(scores)]
    rss_gb = peak_rss_gb()
    print(
        "RESULT "
        + json.dumps(
            {
                "trace_s": trace_s,
                "compile_s": compile_s,
                "init_compile_s": init_s,
                "hlo_ops": hlo_ops,
                "steady_s_per_cell": steady,
                "peak_rss_gb": rss_gb,
                # The first initialisation's (first proxy's) score per cell.
                "scores": np.concatenate(scores).reshape(len(cells), -1)[:, 0].tolist(),
                "cells": cells.tolist(),
            }
        )
    )


def peak_rss_gb():
    """This process's peak resident memory in GB.

    `VmHWM` belongs to the process's own address space, whereas Linux carries
    `ru_maxrss` over from the parent across fork + exec: a worker of a parent holding
    1.6 GB (torch and jax imported) would report at least 1.6 GB.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def run_worker(tree, args, proxy, extra_kwargs="{}", xla_flags="", score_kwargs="{}"):
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--worker",
        "--proxy",
        proxy,
        f"--extra-kwargs={extra_kwargs}",
        f"--score-kwargs={score_kwargs}",
        *[f"--{k.replace('_', '-')}={v}" for k, v in _shared(args).items()],
    ]
    env = {**os.environ, "PYTHONPATH": tree, "JAXNAS_COMPILATION_CACHE": "none"}
    env["XLA_FLAGS"] = " ".join(
        f
        for f in (
            env.get("XLA_FLAGS", ""),
            "--xla_cpu_enable_concurrency_optimized_scheduler=false",
            xla_flags,
        )
        if f
    )
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    for line in out.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    raise RuntimeError(f"worker failed in {tree} for {proxy}:\n{out.stderr[-3000:]}")


def _shared(args):
    return {
        "space": args.space,
        "space_kwargs": args.space_kwargs,
        "batch_size": args.batch_size,
        "num_archs": args.num_archs,
        "archs_per_call": args.archs_per_call,
        "seed": args.seed,
        "num_inits": args.num_inits,
        "crop_size": args.crop_size,
        "concurrent_calls": args.concurrent_calls,
    }


def _spearman(a, b):
    from scipy import stats

    return stats.spearmanr(a, b).statistic


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="nb201")
    parser.add_argument("--space-kwargs", default="{}", help="JSON, e.g. '{\"channels\": 8}'")
    parser.add_argument(
        "--proxies", nargs="+", default=["naswot", "snip"], help="specs; a+b is one fused stack"
    )
    parser.add_argument("--proxy", help=argparse.SUPPRESS)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--num-archs", type=int, default=12)
    parser.add_argument("--archs-per-call", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num-inits", type=int, default=1, help="initialisations K per cell")
    parser.add_argument("--crop-size", type=int, default=0, help="one-channel crops (0: images)")
    parser.add_argument(
        "--concurrent-calls", type=int, default=0, help="calls at once after the first (0: auto)"
    )
    parser.add_argument("--baseline", help="a checkout of an older commit to compare with")
    parser.add_argument(
        "--compare-kwargs", help="JSON: more space arguments for a second variant of this tree"
    )
    parser.add_argument(
        "--compare-xla-flags",
        action="append",
        default=[],
        help="XLA flags for one more variant of this tree (repeatable; write it with '=')",
    )
    parser.add_argument(
        "--compare-init-chunks",
        type=int,
        action="append",
        default=[],
        help="initialisations vmapped together, for one more variant of this tree (repeatable)",
    )
    parser.add_argument(
        "--compare-concurrent-calls",
        type=int,
        action="append",
        default=[],
        help="compiled calls at once, for one more variant of this tree (repeatable)",
    )
    parser.add_argument("--extra-kwargs", default="{}", help=argparse.SUPPRESS)
    parser.add_argument("--score-kwargs", default="{}", help=argparse.SUPPRESS)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    if args.num_archs < args.archs_per_call or args.archs_per_call < 1:
        parser.error("need --num-archs >= --archs-per-call >= 1")
    variants = [("this tree", ROOT, "{}", "", "{}")]
    if args.baseline:
        variants.insert(0, ("baseline", os.path.abspath(args.baseline), "{}", "", "{}"))
    if args.compare_kwargs:
        variants.append((args.compare_kwargs, ROOT, args.compare_kwargs, "", "{}"))
    variants += [(flags, ROOT, "{}", flags, "{}") for flags in args.compare_xla_flags]
    variants += [
        (f"init_chunk_size={n}", ROOT, "{}", "", json.dumps({"init_chunk_size": n}))
        for n in args.compare_init_chunks
    ]
    variants += [
        (f"concurrent_calls={n}", ROOT, "{}", "", json.dumps({"concurrent_calls": n}))
        for n in args.compare_concurrent_calls
    ]
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; {_shared(args)}")
    for proxy in args.proxies:
        results = {}
        for label, tree, extra, flags, score_kwargs in variants:
            r = run_worker(tree, args, proxy, extra, flags, score_kwargs)
            results[label] = r
            print(
                f"{args.space} {proxy:>10} {label:>9}: trace {r['trace_s']:6.1f} s  "
                f"compile {r['compile_s']:6.1f} s (+ init {r.get('init_compile_s', 0):4.1f} s)  "
                f"HLO ops {r['hlo_ops']:6d}  "
                f"steady {r['steady_s_per_cell']:.3f} s/cell  peak RSS {r['peak_rss_gb']:.2f} GB",
                flush=True,
            )
        first = variants[0][0]
        for label, *_ in variants[1:]:
            old, new = results[first], results[label]
            a, b = (old["scores"], new["scores"])
            rel = max(abs(x - y) / max(abs(x), 1e-30) for x, y in zip(a, b))
            print(
                f"{args.space} {proxy:>10} {label} vs {first}: trace "
                f"{old['trace_s'] / new['trace_s']:.1f}x  compile "
                f"{old['compile_s'] / new['compile_s']:.1f}x  steady "
                f"{old['steady_s_per_cell'] / new['steady_s_per_cell']:.2f}x (old / new); "
                f"scores: max rel diff {rel:.1e}, Spearman {_spearman(a, b):.4f}",
                flush=True,
            )
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
