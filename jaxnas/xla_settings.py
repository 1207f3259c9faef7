"""XLA settings for jaxnas programs on CPU.

Call `prefer_memory_schedule()` before JAX's first computation (XLA reads `XLA_FLAGS`
once, when it starts a backend); the CLI and the scripts do. The test suite keeps XLA's
default (WORKSPACE_NOTES.md, Known gaps).
"""

import os

CONCURRENCY_SCHEDULER = "xla_cpu_enable_concurrency_optimized_scheduler"


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
