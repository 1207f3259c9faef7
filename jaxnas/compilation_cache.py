"""JAX's persistent compilation cache for the CLI and the scripts.

XLA compiles every scoring program before its first call (tens of seconds for a gradient
proxy on a data-driven network). With the cache, the compiled executables are written to a
folder keyed by the program, the jax/jaxlib version and the XLA flags, so a second run of
the same config on the same machine loads them and starts scoring in seconds.

The folder is, in order: the CLI's `--compilation_cache=DIR`, the environment variable
`JAXNAS_COMPILATION_CACHE`, else `$XDG_CACHE_HOME/jaxnas/xla` (`~/.cache/jaxnas/xla`).
`none` (either way) turns the cache off. Library users set it themselves (README.md):

  jax.config.update("jax_compilation_cache_dir", "/path/to/cache")

JAX's cache is keyed by the traced program, so a second run still traces it before the
lookup (12-45 s for a gradient proxy on a DARTS or NB101 network). `traced` keeps the
traced program too (`jax.export`, in the `traced/` folder of the cache), keyed by what
its caller says the program is made from and by the jaxnas sources, the library
versions, `XLA_FLAGS` and the devices (`fingerprint`).
"""

import functools
import hashlib
import importlib.metadata
import os
import pathlib
import tempfile

import jax
from jax import export

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


TRACED = "traced"  # the cache's sub-folder of exported (traced) programs


def fingerprint() -> str:
    """A digest of what a traced program depends on besides its own key: every source
    file of the jaxnas package, the jax / jaxlib / flax / numpy versions, JAX's settings
    (`jax.config`, those of caching and logging aside, and the transfer guards, which
    check a program's inputs at run time and are thread-local), `XLA_FLAGS` and the
    local devices."""
    settings = sorted(
        (name, repr(value))
        for name, value in jax.config.values.items()
        if not any(part in name for part in ("cache", "log", "transfer_guard"))
    )
    return hashlib.sha256((_process() + repr(settings)).encode()).hexdigest()


@functools.cache
def _process() -> str:
    """The part of `fingerprint` fixed for a process (XLA reads `XLA_FLAGS` once, at
    its start), computed once rather than at every scoring call."""
    digest = hashlib.sha256()
    package = pathlib.Path(__file__).resolve().parent
    for path in sorted(package.rglob("*.py")):
        digest.update(str(path.relative_to(package)).encode())
        digest.update(path.read_bytes())
    versions = [importlib.metadata.version(n) for n in ("jax", "jaxlib", "flax", "numpy")]
    devices = [(d.platform, d.device_kind, d.id) for d in jax.local_devices()]
    digest.update(repr((versions, os.environ.get("XLA_FLAGS", ""), devices)).encode())
    return digest.hexdigest()


def traced(jitted, key: str):
    """`jitted` (a `jax.jit` function), with its traced programs kept on disk.

    With the compilation cache on, the first call for a set of argument types (shapes,
    dtypes, weak types) exports the program (`jax.export`) into the cache's `traced/`
    folder, or loads it from there, and runs it through `Exported.call`, whose compiled
    form JAX's own cache then keeps: a second run skips the tracing as well as the
    compile. `key` must name everything the program is made from that is not an
    argument (for the CLI: the config and the proxies it scores; change it whenever the
    traced function's code changes outside jaxnas); the arguments' types and
    `fingerprint()` are added to it. An entry that cannot be written or read, or a
    program that `jax.export` refuses, falls back to tracing (with a warning). With the
    cache off (or in a multi-process run), `jitted` itself is returned. Like a `jax.jit`
    function, the result has `lower(*args)`.
    """
    root = jax.config.jax_compilation_cache_dir
    if not root or jax.process_count() > 1:  # a multi-process program is traced per run
        return jitted
    folder = os.path.join(root, TRACED)
    calls = {}

    def program(args):
        leaves, treedef = jax.tree.flatten(args)
        types = [str(jax.typeof(leaf)) for leaf in leaves]
        text = repr((key, str(treedef), types, fingerprint()))
        name = hashlib.sha256(text.encode()).hexdigest()
        if name not in calls:
            exported = _load_or_export(jitted, args, folder, name)
            calls[name] = jitted if exported is None else jax.jit(exported.call)
        return calls[name]

    def call(*args):
        return program(args)(*args)

    call.lower = lambda *args: program(args).lower(*args)
    return call


def _load_or_export(jitted, args, folder: str, name: str) -> export.Exported | None:
    """The entry `name`, else `jitted` exported for `args` and written there; None when
    `jax.export` refuses the program."""
    path = os.path.join(folder, f"{name}.bin")
    try:
        with open(path, "rb") as f:
            return export.deserialize(bytearray(f.read()))
    except FileNotFoundError:
        pass
    except Exception as exc:  # an unreadable entry is replaced, as a miss would be
        print(f"compilation cache: re-tracing {name[:12]} (its entry did not load: {exc})")
    try:
        exported = export.export(jitted)(*args)
    except Exception as exc:  # e.g. a host callback or a custom call export does not keep
        print(f"compilation cache: this program is traced on every run ({exc})")
        return None
    _write(path, exported.serialize())
    return exported


def _write(path: str, data: bytes) -> None:
    """Writes `data` whole, then renames it to `path` (a run stopped halfway leaves no
    partial entry); a folder that cannot be written leaves the entry out, with a
    warning, as JAX's own cache does."""
    folder = os.path.dirname(path)
    temp = None
    try:
        os.makedirs(folder, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, delete=False) as f:
            temp = f.name
            f.write(data)
        # A temporary file is private (0600); the entry is readable by whoever shares
        # the cache folder, as that folder's own permissions allow.
        os.chmod(temp, 0o644)
        os.replace(temp, path)
    except OSError as exc:
        print(f"compilation cache: traced program not written ({exc})")
        if temp is not None and os.path.exists(temp):
            os.remove(temp)
