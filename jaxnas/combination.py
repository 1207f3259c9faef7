"""The CLI's proxy combination (config section `combine`): a combined score for a scored run.

Edge code run by `experiment` after the proxies of a score-mode run are scored. The score
matrix f32[P, M] is the aggregated scores of the run's proxies (`combine.proxies`, default
all) followed by published score columns of the benchmark table (`combine.columns`,
e.g. NAS-Bench-Suite-Zero's). `combine.method` picks the combiner of
`jaxnas.proxies.combine`. LIBRA calibrates on `combine.calibration_size` cells of the
population drawn with the seed, and its score is evaluated on the other cells only; it
selects once per accuracy column (`combine.target`, default every `benchmark.targets`),
each dataset being a benchmark of its own. The split, the selections and every quantity
they used go to `combine.json` in the workdir (`selection` and `scores` keyed by target).
"""

import dataclasses
import json
import os

import jax.numpy as jnp
import numpy as np

from jaxnas import errors, evaluation, run_files
from jaxnas.proxies import combine


def validate(config) -> None:
    """Checks the `combine` section before anything is scored (bad input fails early)."""
    c = config.combine
    if not c.method:
        return
    if c.method not in combine.COMBINERS:
        raise errors.ConfigError(
            f"unknown combine.method {c.method!r}; expected one of {list(combine.COMBINERS)}"
        )
    if c.method == "libra":
        if c.fusion not in combine.FUSIONS:
            raise errors.ConfigError(
                f"unknown combine.fusion {c.fusion!r}; expected {sorted(combine.FUSIONS)}"
            )
        if c.calibration_size < 3:
            raise errors.ConfigError(
                f"combine.method='libra' needs combine.calibration_size >= 3 labelled cells, "
                f"got {c.calibration_size}"
            )
        if not config.benchmark.path:
            raise errors.ConfigError("combine.method='libra' needs benchmark.path (accuracies)")
    if c.columns and not config.benchmark.path:
        raise errors.ConfigError("combine.columns are benchmark columns: set benchmark.path")
    missing = sorted(set(c.proxies) - set(config.proxies))
    if missing:
        raise errors.ConfigError(f"combine.proxies {missing} are not among proxies")


def run(config, bench, archs, results, workdir) -> dict:
    """Combines the run's scores as `config.combine` says; writes `combine.json`.

    Args:
      config: the experiment config.
      bench: the benchmark table (or None).
      archs: the population's architecture strings, P of them.
      results: proxy spec -> (f32[P, K] scores, f32[P] aggregate), as `_score` builds it.
      workdir: where `combine.json` goes.

    Returns:
      The report entry: method, proxies, selection per target (LIBRA), correlations.
    """
    c = config.combine
    names = list(c.proxies or results)
    matrix = [np.asarray(results[n][1], np.float64) for n in names]
    if c.columns:
        _require_rows(bench, archs)
        matrix += [bench.lookup(col, archs).astype(np.float64) for col in c.columns]
        names += [f"table:{col}" for col in c.columns]
    if len(names) < 2:
        raise errors.ConfigError(f"combining needs >= 2 proxies or columns, got {names}")
    scores = np.stack(matrix, axis=1)
    out = {"method": c.method, "proxies": names, "correlations": {}}
    if c.method != "libra":
        combined = np.asarray(combine.make_combiner(c.method)(jnp.asarray(scores)))
        out["scores"] = _by_arch(archs, combined)
        if bench is not None:
            rows = [i for i in range(len(archs)) if archs[i] in bench]
            for target in config.benchmark.targets:
                _correlate(out, config, bench, archs, rows, combined, target)
    else:
        _require_rows(bench, archs)
        evaluate, calibrate = combine.disjoint_split(
            len(archs), len(archs) - c.calibration_size, c.calibration_size, seed=config.seed
        )
        params = (
            np.asarray(results[c.params][1], np.float64)
            if c.params in results
            else bench.lookup(c.params, archs).astype(np.float64)
        )
        out["split"] = {
            "seed": config.seed,
            "calibration": [archs[i] for i in calibrate],
            "evaluation": [archs[i] for i in evaluate],
        }
        out["selection"], out["scores"] = {}, {}
        # Each accuracy column is its own benchmark to LIBRA: its own three proxies,
        # chosen on the shared calibration cells and judged on the evaluation cells.
        for target in [c.target] if c.target else list(config.benchmark.targets):
            selection = combine.libra_select(
                scores[calibrate],
                bench.lookup(target, [archs[i] for i in calibrate]),
                params[calibrate],
                names,
                margin=c.margin,
                num_bins=c.num_bins,
            )
            combined = np.asarray(combine.libra(jnp.asarray(scores), selection.columns, c.fusion))
            out["selection"][target] = {
                "params": c.params,
                "fusion": c.fusion,
                **dataclasses.asdict(selection),
            }
            out["scores"][target] = _by_arch(archs, combined)
            print(
                f"LIBRA chose {' + '.join(selection.names)} for {target} on {len(calibrate)} "
                f"calibration cells; evaluated on the other {len(evaluate)}"
            )
            _correlate(out, config, bench, archs, evaluate, combined, target)
    with open(os.path.join(workdir, "combine.json"), "w") as f:
        json.dump(run_files.jsonable(out), f, indent=2)
    return {k: v for k, v in out.items() if k not in ("scores", "split")}


def _by_arch(archs, combined) -> dict:
    return {archs[i]: run_files.json_float(combined[i]) for i in range(len(archs))}


def _correlate(out, config, bench, archs, rows, combined, target):
    r = evaluation.rank_correlations(
        combined[rows],
        bench.lookup(target, [archs[i] for i in rows]),
        num_bootstrap=config.report.num_bootstrap,
    )
    label = f"combined {config.combine.method} vs {target}"
    out["correlations"][label] = r
    print(evaluation.format_correlation(label, r))


def _require_rows(bench, archs):
    if bench is None:
        raise errors.ConfigError("this combination needs benchmark.path")
    missing = [a for a in archs if a not in bench]
    if missing:
        raise errors.BenchmarkError(
            f"{len(missing)} cells are not in benchmark {bench.name!r}, e.g. {missing[0]!r}"
        )
