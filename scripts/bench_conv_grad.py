"""One convolution's gradient on XLA:CPU, at top level and inside the switch forms used by
the data-driven networks.

  python scripts/bench_conv_grad.py [--shape 64 32 32 16] [--calls 20]

Times `grad(sum(sin(conv(x, w))))` with respect to x and w, jitted, for a 3x3 "same"
convolution f32[B, H, W, C] -> f32[B, H, W, C]:

  * where the convolution sits: at top level; as the taken branch of `lax.switch`; of a
    switch under one `jax.checkpoint` (residuals recomputed in the backward pass, how
    `functional.switch` kept DARTS gradients within memory); of a switch whose branches
    are each checkpointed; of `lax.cond`; in a `lax.scan` body (scanned cells);
  * which convolution: `lax.conv_general_dilated` (JAX's own transpose rules) or
    `functional.conv2d` (jaxnas's custom JVP, whose kernel gradient is a sum of matrix
    products).

Prints milliseconds per call and XLA's temporary memory for each pair.
"""

import argparse
import time

import jax
import jax.numpy as jnp

from jaxnas.spaces import functional


def native(x, w):
    return jax.lax.conv_general_dilated(
        x, w, (1, 1), [(1, 1), (1, 1)], dimension_numbers=("NHWC", "HWIO", "NHWC")
    )


def jaxnas_conv(x, w):
    return functional.conv2d(x, w, padding=1)


def placements(conv):
    """`(i, x, w) -> y` per placement; `i` (int32 1, the conv branch) is a traced argument
    so that XLA cannot fold a conditional into its taken branch."""
    branches = [lambda x, w: x, conv]
    return {
        "top level": lambda i, x, w: conv(x, w),
        "lax.switch": lambda i, x, w: jax.lax.switch(i, branches, x, w),
        "checkpointed switch": jax.checkpoint(lambda i, x, w: jax.lax.switch(i, branches, x, w)),
        "checkpointed branches": lambda i, x, w: jax.lax.switch(
            i, [jax.checkpoint(b) for b in branches], x, w
        ),
        "lax.cond": lambda i, x, w: jax.lax.cond(i > 0, conv, branches[0], x, w),
        "lax.scan body": lambda i, x, w: jax.lax.scan(lambda h, k: (conv(h, k), None), x, w[None])[
            0
        ],
    }


def time_call(fn, args, calls):
    jax.block_until_ready(fn(*args))
    start = time.perf_counter()
    for _ in range(calls):
        jax.block_until_ready(fn(*args))
    return (time.perf_counter() - start) / calls


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", type=int, nargs=4, default=(64, 32, 32, 16))
    parser.add_argument("--calls", type=int, default=20)
    args = parser.parse_args()
    b, h, w, c = args.shape
    x = jax.random.normal(jax.random.key(0), (b, h, w, c))
    kernel = 0.1 * jax.random.normal(jax.random.key(1), (3, 3, c, c))
    print(f"f32{list(args.shape)}, 3x3 conv, {args.calls} calls each")
    for conv_name, conv in (("lax conv", native), ("jaxnas conv2d", jaxnas_conv)):
        for where, f in placements(conv).items():
            grad = jax.jit(jax.grad(lambda x, w, i, f=f: jnp.sum(jnp.sin(f(i, x, w))), (0, 1)))
            args_ = (x, kernel, jnp.int32(1))
            memory = grad.lower(*args_).compile().memory_analysis()
            ms = time_call(grad, args_, args.calls) * 1e3
            print(
                f"{conv_name:14s} {where:22s} {ms:8.2f} ms  "
                f"temp {memory.temp_size_in_bytes / 2**20:6.1f} MiB"
            )


if __name__ == "__main__":
    main()
