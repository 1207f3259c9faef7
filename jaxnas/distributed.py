"""Several processes (hosts) working on one experiment.

Two ways to spread a run over P processes, both set up once per process by `setup`
(the CLI's `--coordinator_address`, `--num_processes`, `--process_id` flags):

  * **JAX's multi-controller runtime** (`jax.distributed`): with a coordinator address,
    `--coordinator_address=auto` (JAX detects Cloud TPU pods, SLURM, Open MPI), or on a
    multi-task SLURM / Open MPI launch without the flag. `jax.devices()` then lists every
    process's devices and `proxies.population_mesh()` spans them all: a search scores
    each generation over all devices of all hosts in lockstep, and every host gets every
    score (the strategies are deterministic, so all hosts take the same steps).
  * **Host shards without the runtime**: only `--num_processes` and `--process_id`.
    The processes never talk to each other; each scores its share of the population on
    its own devices and they meet through files in a shared workdir.

A score-mode population is split in contiguous host shards in either case (`host_range`):
process i scores architectures `host_range(P, i, n)` on its local devices, saves them
after every compiled call (`partial.<proxy>.<config hash>.host<i>of<n>.npy` in
`experiment`), then writes `shard.<proxy>.<config hash>.host<i>of<n>.npy`; process 0
waits for every shard and writes the merged results (`merge_shards`). A process that
dies and is restarted with the same command resumes its shard from its checkpoint.
Under the runtime, JAX stops the other processes when one stops sending heartbeats
(after `heartbeat_timeout_seconds`): restart the whole job, and every host resumes its
own shard. Without the runtime the other hosts go on, and process 0 keeps waiting for
the missing shard. The workdir must be one directory seen by every host (a shared
filesystem) in both cases.
"""

import dataclasses
import os
import time
from collections.abc import Callable

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxnas import errors


@dataclasses.dataclass(frozen=True)
class Hosts:
    """This process's place among the processes of a run."""

    index: int = 0
    count: int = 1
    runtime: bool = False  # joined jax.distributed

    @property
    def primary(self) -> bool:
        return self.index == 0


_HOSTS = Hosts()


def hosts() -> Hosts:
    """The processes of this run (one, unless `setup` said otherwise)."""
    return _HOSTS


def detected_cluster() -> str | None:
    """The multi-process launcher this process runs under, if any ("slurm", "mpi", "tpu").

    Only environment variables are read (JAX's own TPU detection asks the cloud metadata
    server, which hangs off-cloud); `jax.distributed.initialize()` finds the details.
    """
    if int(os.environ.get("SLURM_NTASKS", "1")) > 1 and "SLURM_PROCID" in os.environ:
        return "slurm"
    if int(os.environ.get("OMPI_COMM_WORLD_SIZE", "1")) > 1:
        return "mpi"
    if "," in os.environ.get("TPU_WORKER_HOSTNAMES", ""):
        return "tpu"
    return None


def setup(
    coordinator_address: str = "",
    num_processes: int = 0,
    process_id: int = -1,
    heartbeat_timeout_seconds: int = 100,
) -> Hosts:
    """Declares this process's place among the processes of a run; call once, first.

    Args:
      coordinator_address: "host:port" of process 0's coordinator: join JAX's runtime.
        "auto": join it with what JAX detects itself (Cloud TPU pods, SLURM, Open MPI,
        Kubernetes). "": join it only on a cluster `detected_cluster` sees.
      num_processes: processes in the run; 0 = 1, or the runtime's count.
      process_id: this process's index in 0..num_processes-1; -1 = 0, or the runtime's.
      heartbeat_timeout_seconds: how long the runtime waits for a silent process before
        stopping the others.

    Returns:
      The `Hosts` record that `hosts()` returns from now on.

    Raises:
      ConfigError: inconsistent counts, or a coordinator without a process count and id.
    """
    global _HOSTS
    if num_processes < 0 or (num_processes and not -1 <= process_id < num_processes):
        raise errors.ConfigError(
            f"--process_id={process_id} is not in 0..{num_processes - 1} "
            f"(--num_processes={num_processes})"
        )
    explicit = coordinator_address not in ("", "auto")
    if explicit and (num_processes < 1 or process_id < 0):
        raise errors.ConfigError("--coordinator_address needs --num_processes and --process_id")
    if explicit or coordinator_address == "auto" or detected_cluster():
        given = (coordinator_address, num_processes, process_id) if explicit else ()
        try:
            jax.distributed.initialize(*given, heartbeat_timeout_seconds=heartbeat_timeout_seconds)
        except (ValueError, RuntimeError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise errors.ConfigError(
                f"could not join JAX's multi-process runtime: {first}"
            ) from exc
    elif num_processes > 1 and process_id < 0:
        raise errors.ConfigError(f"--num_processes={num_processes} needs --process_id")
    if coordinator_address or detected_cluster():
        _HOSTS = Hosts(jax.process_index(), jax.process_count(), runtime=True)
    else:
        _HOSTS = Hosts(max(process_id, 0), max(num_processes, 1))
    if _HOSTS.count > 1:
        how = "in JAX's runtime" if _HOSTS.runtime else "host shards, no runtime"
        print(
            f"process {_HOSTS.index} of {_HOSTS.count} ({how}): "
            f"{jax.local_device_count()} of {jax.device_count()} devices"
        )
    return _HOSTS


def host_range(num: int, index: int, count: int) -> tuple[int, int]:
    """Architectures `start..stop-1` of a population of `num` that host `index` of
    `count` scores: contiguous shares whose sizes differ by at most one."""
    base, extra = divmod(num, count)
    start = index * base + min(index, extra)
    return start, start + base + (index < extra)


def replicate(tree, mesh: Mesh):
    """Host values (the same on every process) as arrays replicated over `mesh`.

    A mesh of this process's devices takes `jax.device_put`; one spanning several
    processes needs global arrays built from each process's copy (PRNG keys through
    their key data).
    """
    sharding = NamedSharding(mesh, PartitionSpec())
    if sharding.is_fully_addressable:
        return jax.device_put(tree, sharding)

    def put(value):
        if jax.dtypes.issubdtype(value.dtype, jax.dtypes.prng_key):
            data = np.asarray(jax.random.key_data(value))
            global_data = jax.make_array_from_process_local_data(sharding, data)
            return jax.random.wrap_key_data(global_data, impl=jax.random.key_impl(value))
        return jax.make_array_from_process_local_data(sharding, np.asarray(value))

    return jax.tree.map(put, tree)


def to_host(array: jax.Array) -> np.ndarray:
    """The whole value of `array` on this host, also when its shards lie on other
    processes' devices (gathered over the runtime: every process must call this)."""
    if array.is_fully_addressable:
        return np.asarray(jax.device_get(array))
    return np.asarray(multihost_utils.process_allgather(array, tiled=True))


def host_files(workdir: str, mode: str, where: Hosts | None = None) -> tuple[str, str]:
    """The directory this process writes to and the name of its config file there.

    Process 0 keeps `workdir` and `config.json`. In score mode the other hosts write
    their shards into the same (shared) workdir and keep their own config file
    (`config.host<i>of<n>.json`, read to decide whether their shard resumes). A search
    runs in lockstep on every host and each writes the same records, so the other hosts
    write into `workdir/host<i>`, one writer per file.

    Raises:
      ConfigError: a search over several processes without JAX's runtime.
    """
    where = hosts() if where is None else where
    if where.count == 1 or where.primary:
        return workdir, "config.json"
    if mode != "score":
        if not where.runtime:
            raise errors.ConfigError(
                f"mode {mode!r} over {where.count} processes runs over JAX's runtime: give "
                "--coordinator_address (host shards without it are for score mode)"
            )
        return os.path.join(workdir, f"host{where.index}"), "config.json"
    return workdir, f"config.host{where.index}of{where.count}.json"


def shard_path(workdir: str, name: str, index: int, count: int, partial: bool = False) -> str:
    """The file of host `index`'s scores of proxy (group) `name`; `partial`: its
    checkpoint while it is scoring. One host keeps the single-process names."""
    kind = "partial" if partial else "shard"
    suffix = "" if count == 1 else f".host{index}of{count}"
    return os.path.join(workdir, f"{kind}.{name}{suffix}.npy")


def score_shard(
    score: Callable[[int, int, str, np.ndarray | None], np.ndarray],
    num: int,
    workdir: str,
    name: str,
    resume: bool,
    where: Hosts | None = None,
) -> str:
    """Scores this host's shard of `num` architectures unless its file is there already.

    Args:
      score: `(start, stop, checkpoint, previous) -> f32[stop - start, ...]`, scoring
        architectures start..stop-1, saving its scores so far to `checkpoint` and going
        on after `previous` (the checkpoint's scores, or None).
      num: architectures in the whole population.
      workdir: the run's (shared) directory.
      name: the proxy (group) name in the file names.
      resume: whether files of an earlier run with the same config may be reused.
      where: the hosts (default: `hosts()`).

    Returns:
      The path of this host's shard file, f32[stop - start, ...].
    """
    where = hosts() if where is None else where
    start, stop = host_range(num, where.index, where.count)
    done = shard_path(workdir, name, where.index, where.count)
    checkpoint = shard_path(workdir, name, where.index, where.count, partial=True)
    if resume and os.path.exists(done):
        print(f"resuming {name}: host {where.index}'s shard already scored")
        return done
    previous = np.load(checkpoint) if resume and os.path.exists(checkpoint) else None
    scores = score(start, stop, checkpoint, previous)
    save_whole(done, scores)
    if os.path.exists(checkpoint):
        os.remove(checkpoint)
    return done


def merge_shards(
    workdir: str, name: str, count: int, poll_seconds: float = 2.0, timeout: float | None = None
) -> np.ndarray:
    """Waits until all `count` hosts' shard files of `name` exist; their scores in
    population order.

    Raises:
      JaxnasError: a shard still missing after `timeout` seconds (None: wait forever);
        the message names the hosts to (re)start.
    """
    paths = [shard_path(workdir, name, i, count) for i in range(count)]
    start = time.monotonic()
    reported = None
    while True:
        missing = [i for i, p in enumerate(paths) if not os.path.exists(p)]
        if not missing:
            return np.concatenate([np.load(p) for p in paths])
        if timeout is not None and time.monotonic() - start > timeout:
            raise errors.JaxnasError(
                f"{name}: no shard from host(s) {missing} after {timeout:.0f} s; start them "
                "with the same command (they resume their shards), then rerun this host"
            )
        if missing != reported:
            print(f"{name}: waiting for the shards of host(s) {missing}")
            reported = missing
        time.sleep(poll_seconds)


def save_whole(path: str, array: np.ndarray) -> None:
    """Writes `path` whole or not at all (a reader polling for it never sees half)."""
    tmp = f"{path}.tmp.npy"
    np.save(tmp, array)
    os.replace(tmp, path)
