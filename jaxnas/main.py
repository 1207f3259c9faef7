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
import shlex
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from jaxnas import distributed, errors, experiment, xla_settings

config_flags.DEFINE_config_file("config", None, "Experiment configuration file.", lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for the results.")
flags.DEFINE_string(
    "coordinator_address",
    "",
    "host:port of process 0: join JAX's multi-process runtime ('auto': as JAX detects).",
)
flags.DEFINE_integer("num_processes", 0, "Processes (hosts) sharing the run; 0: one or detected.")
flags.DEFINE_integer("process_id", -1, "This process's index in 0..num_processes-1.")
flags.mark_flags_as_required(["config", "workdir"])
FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    # JAX logs backend probing (e.g. "Unable to initialize backend 'tpu'") at INFO.
    logging.set_verbosity(logging.WARNING)
    xla_settings.prefer_memory_schedule()
    try:
        distributed.setup(FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id)
        os.makedirs(FLAGS.workdir, exist_ok=True)
        # The command as typed (config arguments included), for reports that cite runs.
        if distributed.hosts().primary:
            with open(os.path.join(FLAGS.workdir, "command.txt"), "w") as f:
                f.write(shlex.join(["python", "-m", "jaxnas.main", *sys.argv[1:]]) + "\n")
        experiment.run(FLAGS.config, FLAGS.workdir)
    except errors.JaxnasError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    app.run(main)
