"""Population sharding over devices: seconds per architecture on 1, 2, ... devices.

  python scripts/bench_sharding.py [--devices 2] [--space nb201] [--proxy naswot]
      [--num-archs 32] [--batch-size 64]

On a CPU, `--devices N` starts JAX with N virtual host devices
(`--xla_force_host_platform_device_count=N`, set here before JAX starts; on a GPU
machine the real local devices are used). The same population is scored through
`score_population`, jitted, once over a mesh of the first d devices for each d in
1, 2, ..., N, side by side in this one process: a first call compiles, a second call
of the same shape on new architectures gives the steady seconds per architecture. The
scores of every mesh must equal those of one device (checked, printed). The ratios are
the speed-up of d devices over one.
"""

import argparse
import os
import sys
import time


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--devices", type=int, default=2)
    parser.add_argument("--space", default="nb201")
    parser.add_argument("--proxy", default="naswot")
    parser.add_argument("--num-archs", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    flags = os.environ.get("XLA_FLAGS", "")
    os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={args.devices}"
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))
    import jax
    import numpy as np

    from jaxnas import data, proxies, xla_settings
    from jaxnas.spaces import SPACES

    xla_settings.prefer_memory_schedule()
    devices = jax.local_devices()[: args.devices]
    space = SPACES[args.space]()
    proxy = proxies.get_proxy(args.proxy)
    key = jax.random.key(args.seed)
    batch = data.synthetic_batch(key, args.batch_size, (32, 32, 3))
    keys = jax.random.split(key, 1)
    n = args.num_archs
    population = np.asarray(space.sample(jax.random.key(args.seed + 1), 2 * n))
    print(
        f"{args.space} {args.proxy}, batch {args.batch_size} synthetic 32x32, {n} architectures "
        f"per call, {jax.default_backend()} devices {[d.id for d in devices]}, "
        f"{os.cpu_count()} cores, load {os.getloadavg()}"
    )
    base, reference = None, None
    for d in range(1, len(devices) + 1):
        mesh = proxies.population_mesh(devices[:d])

        @jax.jit
        def scorer(genotypes, mesh=mesh):
            return proxies.score_population(proxy, space, genotypes, batch, keys, mesh=mesh)

        start = time.perf_counter()
        jax.block_until_ready(scorer(population[:n]))
        first = time.perf_counter() - start
        start = time.perf_counter()
        scores = np.asarray(jax.block_until_ready(scorer(population[n:])))
        steady = (time.perf_counter() - start) / n
        if reference is None:
            base, reference = steady, scores
        same = np.allclose(scores, reference, rtol=1e-4, equal_nan=True)
        print(
            f"{d} device(s): {steady:.3f} s/arch steady, first call {first:.1f} s, "
            f"speed-up x{base / steady:.2f} over one device, scores equal one device's: {same}"
        )


if __name__ == "__main__":
    main()
