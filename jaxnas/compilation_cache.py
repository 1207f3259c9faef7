"""JAX's persistent compilation cache for the CLI and the scripts.

XLA compiles every scoring program before its first call (tens of seconds for a gradient
proxy on a data-driven network). With the cache, the compiled executables are written to a
folder keyed by the program, the jax/jaxlib version and the XLA flags, so a second run of
the same config on the same machine loads them and starts scoring in seconds.

The folder is, in order: the CLI's `--compilation_cache=DIR`, the environment variable
`JAXNAS_COMPILATION_CACHE`, else `$XDG_CACHE_HOME/jaxnas/xla` (`~/.cache/jaxnas/xla`).
`none` (either way) turns the cache off. Library users set it themselves (README.md):

  jax.config.update("jax_compilation_cache_dir", "/path/to/cache")
"""

import os

import jax

from jaxnas import errors

ENV_VAR = "JAXNAS_COMPILATION_CACHE"
OFF = "none"
# Programs that compile faster than this are not worth a disk read; jax's default (1 s)
# skipped the small init / data programs a run also compiles (0.3-0.8 s each on 2 cores).
MIN_COMPILE_SECONDS = 0.2


def default_dir() -> str:
    """`$XDG_CACHE_HOME/jaxnas/xla`, or `~/.cache/jaxnas/xla` without that variable."""
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(root, "jaxnas", "xla")


def resolve(flag: str | None = None) -> str | None:
    """The cache folder from a flag value, else `$JAXNAS_COMPILATION_CACHE`, else the
    default; None when the chosen value is `none` (off)."""
    value = flag if flag else os.environ.get(ENV_VAR, "") or default_dir()
    if value.strip().lower() == OFF:
        return None
    return os.path.abspath(os.path.expanduser(value))


def enable(flag: str | None = None) -> str | None:
    """Turns the persistent compilation cache on (see `resolve`); returns its folder.

    Call before the first compilation. Raises ConfigError when the folder cannot be
    created or written.
    """
    path = resolve(flag)
    if path is None:
        jax.config.update("jax_compilation_cache_dir", None)
        return None
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        raise errors.ConfigError(f"compilation cache folder {path!r}: {exc.strerror}") from exc
    if not os.access(path, os.W_OK):
        raise errors.ConfigError(
            f"compilation cache folder {path!r} is not writable; pass another with "
            f"--compilation_cache=DIR or set {ENV_VAR}=none"
        )
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return path
