"""Which dispatch mode and chunk size suit the backend a run is on.

The data-driven networks of NB201, NB101 and the NDS designs select each edge's op in
one of two ways (see `jaxnas.spaces.nb201`):

  * "switch": `lax.switch` runs only the selected op. Exact cost, but vmapping turns the
    switch into a select that runs every branch, so a population is mapped over one
    architecture at a time (`chunk_size=1`).
  * "mask": every op runs and a one-hot weight keeps the selected one. About #ops times
    the arithmetic, but a chunk of architectures vmaps into wide batched kernels.

A CPU core gains nothing from wider kernels, so "switch" with one architecture at a time
wins there (crossover measured with `scripts/bench_dispatch.py`, WORKSPACE_NOTES.md
"Scale out (issue 18)"); a GPU or TPU is mostly idle on one small network, so "mask"
with chunks of architectures wins there. `inputs` resolves `config.dispatch="auto"`
and `config.chunk_size=0` with `resolve`; explicit values are kept.

The K initialisations of one architecture follow the same rule (`init_chunk`): one at a
time on a CPU, all K vmapped on a GPU or TPU. Vmapped over per-initialisation kernels, a
convolution becomes one grouped convolution (`feature_group_count=K`), which XLA:CPU runs
slower than K plain ones, and a call holds K networks' activations. NB201 swap (K=32, 16
images): 13.6 s per cell and 2.6 GB vmapped, 6.3 s and 0.7 GB one at a time; ntk_cond
(K=3, 72 images): 9.9 s and 3.9 GB, 7.5 s and 1.9 GB (`scripts/bench_compile.py
--compare-init-chunks`, WORKSPACE_NOTES.md Session 25).

Compiled calls in flight at once (`concurrent_calls`): XLA:CPU runs a data-driven
network's many small kernels mostly one at a time, so one call keeps a 2-core CPU about
80 % busy; a second call in flight (another host thread) fills the gaps. Side by side on
2 cores (WORKSPACE_NOTES.md, Session 35): NB201 naswot 76 -> 54 ms per cell, snip 275 ->
232 ms; DARTS naswot 432 -> 344 ms; scores identical. Each call in flight holds its own
temporaries, and where they are large the gain is small (DARTS' five fused gradient
proxies: 1.65 GB of temporaries, 2.93 -> 2.72 s per cell), so auto runs two at once only
below `CONCURRENT_TEMP_BYTES`; and where calls are small two at once cost (NB201 meco, one
image per cell: 0.018 -> 0.033 s per cell), so `scoring.score_chunks` keeps them only
when the calls after the first show them faster.
"""

import inspect
from collections.abc import Callable, Mapping
from typing import Any

import jax

from jaxnas import errors

MODES = ("switch", "mask")

# Architectures vmapped together under "mask" on an accelerator when the memory of one
# is not known; NB201 at batch 128 needs ~0.1-0.5 GB per cell (gradient proxies the most).
ACCELERATOR_CHUNK = 16

# Auto's compiled calls in flight on a CPU, and the largest temporaries (XLA's memory
# analysis of one call) for which it runs more than one.
CPU_CONCURRENT_CALLS = 2
CONCURRENT_TEMP_BYTES = 1 << 30


def default_dispatch(backend: str | None = None) -> str:
    """The mode for `backend`: "switch" on a CPU, "mask" on a GPU or TPU (default:
    JAX's default backend)."""
    backend = jax.default_backend() if backend is None else backend
    return "switch" if backend == "cpu" else "mask"


def takes_dispatch(factory: Callable[..., Any]) -> bool:
    """Whether a space factory has a `dispatch` argument."""
    try:
        return "dispatch" in inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return False


def resolve(
    factory: Callable[..., Any],
    space_kwargs: Mapping[str, Any],
    dispatch: str = "auto",
    chunk_size: int = 0,
    per_call: int = ACCELERATOR_CHUNK,
    backend: str | None = None,
) -> tuple[dict[str, Any], int]:
    """The space's keyword arguments and the chunk size a run uses.

    Args:
      factory: the space factory (`spaces.SPACES[name]`).
      space_kwargs: the config's `space.kwargs`; a `dispatch` there wins.
      dispatch: "auto" (by backend, `default_dispatch`), "switch" or "mask"; spaces
        without a dispatch argument ignore it.
      chunk_size: architectures vmapped together; 0 = auto: 1 under "switch" (or a space
        without modes), `min(per_call, ACCELERATOR_CHUNK)` under "mask".
      per_call: architectures per compiled call.
      backend: the backend to choose for (default: JAX's default backend).

    Returns:
      `(space_kwargs, chunk_size)`.

    Raises:
      ConfigError: an unknown dispatch mode or a negative chunk size.
    """
    if dispatch != "auto" and dispatch not in MODES:
        raise errors.ConfigError(f"unknown dispatch {dispatch!r}; expected 'auto' or {MODES}")
    if chunk_size < 0:
        raise errors.ConfigError(f"chunk_size must be 0 (auto) or positive, got {chunk_size}")
    kwargs = dict(space_kwargs)
    mode = None
    if takes_dispatch(factory):
        if "dispatch" not in kwargs:
            kwargs["dispatch"] = default_dispatch(backend) if dispatch == "auto" else dispatch
        mode = kwargs["dispatch"]
    if chunk_size == 0:
        chunk_size = min(per_call, ACCELERATOR_CHUNK) if mode == "mask" else 1
    return kwargs, chunk_size


def init_chunk(num_inits: int, init_chunk_size: int = 0, backend: str | None = None) -> int:
    """Initialisations of one architecture vmapped together: `init_chunk_size` (at most
    `num_inits`), or (0 = auto) by backend: 1 on a CPU, all `num_inits` on a GPU or TPU
    (default: JAX's default backend).

    Raises:
      ConfigError: a negative `init_chunk_size`.
    """
    if init_chunk_size < 0:
        raise errors.ConfigError(
            f"init_chunk_size must be 0 (auto) or positive, got {init_chunk_size}"
        )
    if init_chunk_size == 0:
        backend = jax.default_backend() if backend is None else backend
        init_chunk_size = 1 if backend == "cpu" else num_inits
    return min(init_chunk_size, num_inits)


def concurrent_calls(
    requested: int, temp_bytes: Callable[[], int | None], backend: str | None = None
) -> int:
    """Compiled calls a scoring loop keeps in flight at once: 1 in a multi-process run
    (its processes must meet in the same order), else `requested`, or (0 = auto)
    `CPU_CONCURRENT_CALLS` on a CPU when one call's temporaries (`temp_bytes()`, asked
    only then; None: unknown) are at most `CONCURRENT_TEMP_BYTES`, else 1 (an accelerator
    queues calls on its own).

    Raises:
      ConfigError: a negative `requested`.
    """
    if requested < 0:
        raise errors.ConfigError(f"concurrent_calls must be 0 (auto) or positive, got {requested}")
    if jax.process_count() > 1:
        return 1
    if requested:
        return requested
    backend = jax.default_backend() if backend is None else backend
    if backend != "cpu":
        return 1
    temp = temp_bytes()
    return CPU_CONCURRENT_CALLS if temp is not None and temp <= CONCURRENT_TEMP_BYTES else 1


def fit_chunk_size(
    compile_for: Callable[[int], Any], chunk_size: int, device=None, fraction: float = 0.8
) -> tuple[int, Any]:
    """The largest chunk size, halving from `chunk_size`, whose program fits the device.

    Args:
      compile_for: `chunk -> jax.stages.Compiled`, the scoring program for that chunk.
      chunk_size: the size to start from.
      device: whose memory limit counts (default: the first local device). Devices that
        report no limit (CPUs) take `chunk_size` as it is.
      fraction: the share of the device's memory the program's arguments, outputs and
        temporaries may take.

    Returns:
      `(chunk, compiled)`: the size kept and its compiled program.
    """
    device = jax.local_devices()[0] if device is None else device
    limit = (device.memory_stats() or {}).get("bytes_limit")
    while True:
        compiled = compile_for(chunk_size)
        if limit is None or chunk_size == 1:
            return chunk_size, compiled
        memory = compiled.memory_analysis()
        needed = sum(
            getattr(memory, f"{kind}_size_in_bytes", 0) or 0
            for kind in ("argument", "output", "temp", "generated_code")
        )
        if needed <= fraction * limit:
            return chunk_size, compiled
        chunk_size //= 2
