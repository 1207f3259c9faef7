"""XLA settings for jaxnas programs on CPU.

Call `prefer_memory_schedule()` before JAX's first computation (XLA reads `XLA_FLAGS`
once, when it starts a backend); the CLI and the scripts do. The test suite keeps XLA's
default (WORKSPACE_NOTES.md, Known gaps). `trim_heap_after_compiles()` hands the memory
a large compile freed back to the system; the CLI and `scripts/bench_compile.py`'s
workers (hence `scripts/bench_all.py`) call it.
"""

import ctypes
import os

from jax import monitoring

CONCURRENCY_SCHEDULER = "xla_cpu_enable_concurrency_optimized_scheduler"

# JAX records this event when an XLA compile (or a compilation-cache load) has returned,
# before the executable first runs (`jax._src.dispatch.BACKEND_COMPILE_EVENT`).
COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"

_trim_after_seconds = float("inf")
_listening = False


def prefer_memory_schedule() -> None:
    """Turns off XLA:CPU's concurrency-optimised scheduler, unless `XLA_FLAGS` sets it.

    That scheduler keeps intermediates of independent branches alive together to run
    them in parallel; for gradients through a data-driven network's `lax.switch` edges it
    multiplied the temporary memory (snip on a 3-cell DARTS network, C=8, batch 64:
    1.04 GB with it, 0.40 GB without; NB201, C=16, N=5: 1.05 GB vs 0.20 GB) and was not
    faster (0.89 vs 0.65 s and 2.06 vs 1.87 s per cell on one core;
    WORKSPACE_NOTES.md). `jax.jit(..., compiler_options=...)` accepts the option but
    did not change the schedule, hence the environment variable.
    """
    flags = os.environ.get("XLA_FLAGS", "")
    if CONCURRENCY_SCHEDULER not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} --{CONCURRENCY_SCHEDULER}=false".strip()


def trim_heap() -> bool:
    """Returns the C heap's free pages to the system (glibc's `malloc_trim(0)`).

    False where the C library has no `malloc_trim` (macOS, musl, Windows): nothing is
    done there.
    """
    try:
        trim = getattr(ctypes.CDLL(None), "malloc_trim", None)
    except (OSError, TypeError):  # Windows has no process-wide symbol table to open
        return False
    if trim is None:
        return False
    trim.argtypes = [ctypes.c_size_t]
    trim(0)
    return True


def trim_heap_after_compiles(min_seconds: float = 1.0) -> None:
    """After every XLA compile of at least `min_seconds`, calls `trim_heap()`.

    XLA's compiler frees what it allocated, but glibc keeps the freed pages in its
    per-thread arenas, so a process that has just compiled a large program stays that
    much larger while it runs it, and the program's temporary buffers come on top. The
    fused DARTS gradient stack at batch 64 held 3.4 GB after its compile and 1.4 GB after
    the trim; its peak fell from 5.1 to 3.5 GB (WORKSPACE_NOTES.md, session 30). Short
    compiles (eager operations, small helpers) are left alone: a trim walks the whole
    heap. A second call changes the threshold and keeps one listener.
    """
    global _trim_after_seconds, _listening
    if not _listening:
        monitoring.register_event_duration_secs_listener(_trim_after_compile)
        _listening = True
    _trim_after_seconds = min_seconds


def _trim_after_compile(event: str, seconds: float, **_) -> None:
    if event == COMPILE_EVENT and seconds >= _trim_after_seconds:
        trim_heap()
