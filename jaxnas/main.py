"""Command-line entry point.

  python -m jaxnas.main --config=configs/nb201_naswot.py[:arg] --workdir=DIR
      [--coordinator_address=HOST:PORT --num_processes=N --process_id=I]

With `--num_processes`/`--process_id` (and a coordinator, or on a detected SLURM / MPI /
TPU-pod launch) the run is one of several processes: see `jaxnas.distributed`.

This file is kept short on purpose: the experiment logic lives in `jaxnas.experiment`,
which the end-to-end tests call directly. Bad input ends with one `error: ...` line and
exit status 2, not a stack trace.
"""

import os
import re
import shlex
import sys

import jax
from absl import app, flags, logging
from ml_collections import config_flags

from jaxnas import (
    compilation_cache,
    config_checks,
    configs,
    dispatch,
    distributed,
    errors,
    experiment,
    inputs,
    xla_settings,
)


def define_flags(flag_values: flags.FlagValues, argv: list[str] | None = None) -> flags.FlagValues:
    """Defines `--config`, `--workdir`, `--compilation_cache` and the multi-process flags
    (`--coordinator_address`, `--num_processes`, `--process_id`) on `flag_values`.

    `--config.*` overrides are found in `argv` (`sys.argv` if None); tests pass a fresh
    `flag_values` and their own `argv`.
    """
    config_flags.DEFINE_config_file(
        "config",
        None,
        "Experiment configuration file.",
        flag_values,
        lock_config=True,
        sys_argv=argv,
    )
    flags.DEFINE_string("workdir", None, "Directory for the results.", flag_values=flag_values)
    flags.DEFINE_string(
        "compilation_cache",
        None,
        "Folder of JAX's persistent compilation cache (a second run of a config loads its "
        f"compiled programs from there), or 'none' for off. Default: "
        f"${compilation_cache.ENV_VAR}, else ~/.cache/jaxnas/xla.",
        flag_values=flag_values,
    )
    flags.DEFINE_string(
        "coordinator_address",
        "",
        "host:port of process 0: join JAX's multi-process runtime ('auto': as JAX detects).",
        flag_values=flag_values,
    )
    flags.DEFINE_integer(
        "num_processes",
        0,
        "Processes (hosts) sharing the run; 0: one or detected.",
        flag_values=flag_values,
    )
    flags.DEFINE_integer(
        "process_id", -1, "This process's index in 0..num_processes-1.", flag_values=flag_values
    )
    flags.mark_flags_as_required(["config", "workdir"], flag_values=flag_values)
    return flag_values


FLAGS = define_flags(flags.FLAGS)


def fail(message: str) -> None:
    """Prints `error: message` (its first line) and exits with status 2."""
    lines = message.strip().splitlines() or ["failed"]
    print(f"error: {lines[0]}", file=sys.stderr)
    sys.exit(2)


def out_of_memory_message(exc: Exception, config) -> str | None:
    """One line for XLA's RESOURCE_EXHAUSTED error, naming the settings that size a
    call; None for any other error."""
    text = str(exc)
    if "RESOURCE_EXHAUSTED" not in text:
        return None
    asked = re.search(r"allocating (\d+) bytes", text)
    size = f" ({int(asked.group(1)) / 1e9:.1f} GB asked for)" if asked else ""
    return (
        f"out of memory{size}: a compiled call holds chunk_size architectures x "
        "init_chunk_size initialisations x data.batch_size images at once (here "
        f"{inputs.chunk_size(config)} x "
        f"{dispatch.init_chunk(config.num_inits, config.init_chunk_size)} x "
        f"{config.data.batch_size}), and on a CPU two calls may run at once; lower one of "
        "them or set concurrent_calls=1"
    )


def _flag_error_message(exc: Exception) -> str:
    """One line for an error raised while parsing flags.

    ml_collections re-raises an error from the config file's `get_config` (a
    `ConfigError` from `parse_arg`, say) with the traceback as its message; the line
    that names the problem is the traceback's last, `module.Type: message`.
    """
    text = str(exc)
    if "Error whilst parsing config file" not in text:
        return text
    last = [line for line in text.splitlines() if line.strip()][-1]
    return last.split(": ", 1)[1] if ": " in last else last


def parse_flags(argv: list[str], flag_values: flags.FlagValues = FLAGS) -> list[str]:
    """absl's flag parser, with a bad flag, override or config file as one `error:` line.

    The config file is loaded and its `--config.*` overrides applied here, before any
    work, so that a missing file, a field that does not exist or a value of the wrong
    type stops the run at once.
    """
    for arg in argv[1:]:
        if arg.startswith("--config="):
            path = arg[len("--config=") :].split(":", 1)[0]
            if not os.path.isfile(path):
                fail(f"config file not found: {path}")
    try:
        rest = flag_values(argv)
        flag_values.config  # noqa: B018  (loads the file and applies the overrides)
    except flags.UnrecognizedFlagError as exc:
        name = exc.flagname
        if name.startswith("config."):
            fail(
                f"config field '{name}' does not exist; the fields are "
                "those of jaxnas.configs.default_config"
            )
        fail(f"unknown flag --{name}")
    except (AttributeError, KeyError) as exc:  # an override of a field that does not exist
        key = str(exc).strip("\"'")
        overrides = [a[2:].split("=", 1)[0] for a in argv[1:] if a.startswith("--config.")]
        name = next((n for n in overrides if key in n.split(".")), f"config.{key}")
        fail(
            f"config field '{name}' does not exist; the fields are "
            "those of jaxnas.configs.default_config"
        )
    except (flags.Error, OSError, ValueError, TypeError) as exc:
        fail(_flag_error_message(exc))
    try:
        config_checks.validate(flag_values.config, configs.default_config())
    except errors.ConfigError as exc:
        fail(str(exc))
    return rest


def run_cli(
    config,
    workdir: str,
    cache: str | None = None,
    coordinator_address: str = "",
    num_processes: int = 0,
    process_id: int = -1,
) -> None:
    """Runs the experiment (JAX's compilation cache in `cache`, see
    `compilation_cache.resolve`; the multi-process runtime joined as `distributed.setup`
    says); bad input exits 2 with one line, Ctrl-C says how to resume."""
    try:
        compilation_cache.enable(cache)
        distributed.setup(coordinator_address, num_processes, process_id)
        os.makedirs(workdir, exist_ok=True)
        # The command as typed (config arguments included), for reports that cite runs.
        if distributed.hosts().primary:
            with open(os.path.join(workdir, "command.txt"), "w") as f:
                f.write(shlex.join(["python", "-m", "jaxnas.main", *sys.argv[1:]]) + "\n")
        experiment.run(config, workdir)
    except errors.JaxnasError as exc:
        fail(str(exc))
    except jax.errors.JaxRuntimeError as exc:
        message = out_of_memory_message(exc, config)
        if message is None:
            raise
        fail(message)
    except KeyboardInterrupt:
        print(
            f"interrupted: the scores saved in {workdir} are kept; run the same command "
            "again to resume",
            file=sys.stderr,
        )
        sys.exit(130)  # the shell's status for SIGINT


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    # JAX logs backend probing (e.g. "Unable to initialize backend 'tpu'") at INFO.
    logging.set_verbosity(logging.WARNING)
    xla_settings.prefer_memory_schedule()
    xla_settings.trim_heap_after_compiles()
    run_cli(
        FLAGS.config,
        FLAGS.workdir,
        FLAGS.compilation_cache,
        FLAGS.coordinator_address,
        FLAGS.num_processes,
        FLAGS.process_id,
    )


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
