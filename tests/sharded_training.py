"""Run by test_training.py in a process with two virtual CPU devices (XLA_FLAGS).

Trains a tiny NB201 network for one epoch of five steps (batch 8) sharded over two
devices and on one device, from the same seed, and exits non-zero unless the
parameters, BN statistics and optimizer state agree to float32 tolerance (rtol 1e-5,
atol 1e-6: the two programs sum a batch's gradients and BN moments in different
orders).
"""

import os
import sys
import tempfile

import jax
import numpy as np

from jaxnas import configs, training


def main():
    assert jax.local_device_count() == 2, jax.devices()
    rng = np.random.default_rng(0)
    tmp = tempfile.mkdtemp()
    npz = os.path.join(tmp, "tiny.npz")
    np.savez(
        npz,
        train_images=rng.integers(0, 256, (40, 8, 8, 3)).astype(np.uint8),
        train_labels=rng.integers(0, 10, 40),
        test_images=rng.integers(0, 256, (8, 8, 8, 3)).astype(np.uint8),
        test_labels=rng.integers(0, 10, 8),
    )
    config = training.apply_recipe(configs.default_config(), "nb201")
    config.space.kwargs = dict(channels=4, cells_per_stage=1)
    t = config.train
    t.arch = (
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|"
        "+|skip_connect~0|nor_conv_1x1~1|nor_conv_3x3~2|"
    )
    t.epochs, t.batch_size, t.eval_batch_size, t.plot = 1, 8, 8, False
    t.data.path = npz
    two = training.train(config, os.path.join(tmp, "two"))
    one = training.train(config, os.path.join(tmp, "one"), devices=jax.local_devices()[:1])
    if (two["devices"], one["devices"]) != (2, 1):
        sys.exit(f"ran on {two['devices']} and {one['devices']} devices, not 2 and 1")
    a = training.load_checkpoint(os.path.join(tmp, "two"))[1]
    b = training.load_checkpoint(os.path.join(tmp, "one"))[1]
    if int(a["step"]) != 5 or int(b["step"]) != 5:
        sys.exit(f"steps {a['step']} and {b['step']}, expected 5")
    worst = 0.0
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        if not np.allclose(x, y, rtol=1e-5, atol=1e-6):
            sys.exit(f"two devices differ from one: max |diff| {np.abs(x - y).max()}")
        worst = max(worst, float(np.abs(x - y).max(initial=0.0)))
    print(f"two devices train like one (max |diff| {worst:.2e} after 5 steps)")


if __name__ == "__main__":
    main()
