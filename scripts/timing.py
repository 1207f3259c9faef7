"""Shared timing of a jitted population scorer for the benchmark scripts."""

import io
import time

import jax
import numpy as np

from jaxnas import scoring
from jaxnas.progress import Progress


def time_chunks(scorer, cells, archs_per_call):
    """Calls `scorer(chunk)` on consecutive full chunks of `archs_per_call` cells.

    Returns:
      `(scores, steady, compile_s)`: the concatenated outputs (f32[n, K], n the cells in
      full chunks), seconds per cell over the calls after the first, and the first call's
      excess over a steady call (compile time). With one chunk there is no steady call:
      `steady` is NaN and `compile_s` the whole first call.
    """
    chunks = [cells[i : i + archs_per_call] for i in range(0, len(cells), archs_per_call)]
    chunks = [c for c in chunks if len(c) == archs_per_call]
    start = time.perf_counter()
    scores = [np.asarray(jax.block_until_ready(scorer(chunks[0])))]
    first = time.perf_counter() - start
    if len(chunks) < 2:
        return scores[0], float("nan"), first
    start = time.perf_counter()
    for chunk in chunks[1:]:
        scores.append(np.asarray(jax.block_until_ready(scorer(chunk))))
    steady = (time.perf_counter() - start) / (len(chunks) - 1) / archs_per_call
    return np.concatenate(scores), steady, first - steady * archs_per_call


def time_score_chunks(scorer, cells, batch, keys, archs_per_call, **score_kwargs):
    """Scores the full chunks of `archs_per_call` cells as the CLI does
    (`scoring.score_chunks`: the first call alone, then `concurrent_calls` at once,
    passed on in `score_kwargs` with the rest).

    Returns:
      `(scores, steady, compile_s)` as `time_chunks`: steady seconds per cell over the
      calls after the first (NaN with one chunk), the first call's excess over a steady
      call.
    """
    num = len(cells) // archs_per_call * archs_per_call
    progress = Progress(num, "timing", stream=io.StringIO())
    scores = scoring.score_chunks(
        scorer, cells[:num], batch, keys, archs_per_call, progress, **score_kwargs
    )
    steady = 1 / progress.rate()
    first = progress.first_update_seconds()
    if num == archs_per_call:
        return scores, float("nan"), first
    return scores, steady, first - steady * archs_per_call
