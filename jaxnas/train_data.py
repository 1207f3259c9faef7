"""Training and test data for `mode=train`: whole splits in host memory, seeded epochs.

A split is `(images, labels)`: uint8 (0..255) or float (0..1) NHWC images and int32
labels. Sources: an `.npz` archive (keys named in the config) or a prepared
`tensorflow-datasets` dataset (`jaxnas.data.load_tfds`, never downloaded). Epoch `e`'s
order and augmentation are functions of `(seed, e, step)` only, so an epoch resumed
from a checkpoint sees the same batches as an uninterrupted run.

Augmentation (on the host, NumPy, before the batch is sharded): random crop with zero
padding and horizontal flip (torchvision `RandomCrop(32, padding)` +
`RandomHorizontalFlip`, as NB201, DARTS and NB101 train), then normalisation, then
DARTS' Cutout (one `cutout x cutout` square of zeros per image, its centre uniform
over the image and the square clipped at the border).
"""

from collections.abc import Iterator
from typing import NamedTuple

import ml_collections
import numpy as np

from jaxnas import data, errors


class Split(NamedTuple):
    """One split: images `u8[N, H, W, C]` (or f32 in 0..1) and labels `int32[N]`."""

    images: np.ndarray
    labels: np.ndarray


def load(config: ml_collections.ConfigDict) -> tuple[Split, Split]:
    """The (train, test) splits that `config.train.data` names.

    Raises:
      ConfigError: unknown source or a missing path.
      DataError: a missing file, array or dataset; labels that do not fit the images.
    """
    c = config.train.data
    if c.source == "npz":
        if not c.path:
            raise errors.ConfigError("train.data.source='npz' needs train.data.path")
        train = Split(*data.load_npz(c.path, c.train_images_key, c.train_labels_key))
        test = Split(*data.load_npz(c.path, c.test_images_key, c.test_labels_key))
    elif c.source == "tfds":
        data_dir = c.data_dir or None
        train = Split(*data.load_tfds(c.dataset, c.train_split, data_dir))
        test = Split(*data.load_tfds(c.dataset, c.test_split, data_dir))
    else:
        raise errors.ConfigError(
            f"unknown train.data.source {c.source!r}; expected 'npz' or 'tfds'"
        )
    train, test = _checked(train, "train"), _checked(test, "test")
    if c.max_train_examples > 0:
        train = Split(train.images[: c.max_train_examples], train.labels[: c.max_train_examples])
    if c.max_test_examples > 0:
        test = Split(test.images[: c.max_test_examples], test.labels[: c.max_test_examples])
    return train, test


def _checked(split: Split, name: str) -> Split:
    images = data.check_images(split.images)
    labels = np.asarray(split.labels)
    if labels.shape != (images.shape[0],):
        raise errors.DataError(
            f"{name} labels must be [{images.shape[0]}], got shape {labels.shape}"
        )
    if images.shape[0] == 0:
        raise errors.DataError(f"the {name} split has no images")
    return Split(images, labels.astype(np.int32))


def crop_flip(
    rng: np.random.Generator, images: np.ndarray, padding: int, flip: bool = True
) -> np.ndarray:
    """Random crop of the zero-padded images and a horizontal flip with probability 1/2.

    Args:
      rng: NumPy generator (the batch's own, see `epoch_batches`).
      images: `[B, H, W, C]` (any dtype).
      padding: pixels of zeros on every side; 0 crops nothing.
      flip: whether to flip.

    Returns:
      `[B, H, W, C]`, same dtype.
    """
    b, h, w, _ = images.shape
    top = rng.integers(0, 2 * padding + 1, b)
    left = rng.integers(0, 2 * padding + 1, b)
    flipped = rng.random(b) < 0.5 if flip else np.zeros(b, bool)
    padded = np.pad(images, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    rows = top[:, None] + np.arange(h)[None, :]  # [B, H]
    cols = left[:, None] + np.arange(w)[None, :]  # [B, W]
    cols = np.where(flipped[:, None], cols[:, ::-1], cols)
    return padded[np.arange(b)[:, None, None], rows[:, :, None], cols[:, None, :]]


def cutout(rng: np.random.Generator, images: np.ndarray, size: int) -> np.ndarray:
    """DARTS' Cutout: zeroes a `size x size` square (clipped) per normalised image."""
    b, h, w, _ = images.shape
    cy = rng.integers(0, h, b)
    cx = rng.integers(0, w, b)
    ys, xs = np.arange(h)[None, :], np.arange(w)[None, :]
    half = size // 2
    inside_y = (ys >= (cy - half)[:, None]) & (ys < (cy + half)[:, None])
    inside_x = (xs >= (cx - half)[:, None]) & (xs < (cx + half)[:, None])
    keep = ~(inside_y[:, :, None] & inside_x[:, None, :])
    return images * keep[..., None].astype(images.dtype)


def steps_per_epoch(num_images: int, batch_size: int) -> int:
    """Full batches per epoch (the last partial batch is dropped)."""
    if batch_size <= 0:
        raise errors.ConfigError(f"train.batch_size must be positive, got {batch_size}")
    steps = num_images // batch_size
    if steps == 0:
        raise errors.DataError(
            f"train.batch_size {batch_size} exceeds the {num_images} training images"
        )
    return steps


def epoch_batches(
    split: Split,
    seed: int,
    epoch: int,
    batch_size: int,
    normalization: str,
    crop_padding: int = 0,
    flip: bool = False,
    cutout_size: int = 0,
    start_step: int = 0,
) -> Iterator[dict[str, np.ndarray]]:
    """Epoch `epoch`'s batches `{"x": f32[B, H, W, C], "y": int32[B]}` from `start_step`.

    The order is a permutation drawn from `(seed, epoch)`; each batch's augmentation
    from `(seed, epoch, step)`. Crop and flip act on the raw images (zero padding is
    black, as torchvision pads the PIL image), cutout on the normalised ones.
    """
    n = split.images.shape[0]
    order = np.random.default_rng([seed, epoch]).permutation(n)
    for step in range(start_step, steps_per_epoch(n, batch_size)):
        idx = order[step * batch_size : (step + 1) * batch_size]
        rng = np.random.default_rng([seed, epoch, step, 1])
        images = split.images[idx]
        if crop_padding or flip:
            images = crop_flip(rng, images, crop_padding, flip)
        x = data.normalize(images, normalization)
        if cutout_size > 0:
            x = cutout(rng, x, cutout_size)
        yield {"x": x, "y": split.labels[idx]}


def eval_batches(
    split: Split, batch_size: int, normalization: str
) -> Iterator[tuple[dict[str, np.ndarray], int]]:
    """The whole split in order, as `(batch, real)`: every batch has `batch_size` rows,
    the last padded by repeating its first row; `real` counts the rows that are not."""
    n = split.images.shape[0]
    for start in range(0, n, batch_size):
        idx = np.arange(start, min(start + batch_size, n))
        real = idx.shape[0]
        idx = np.concatenate([idx, np.full(batch_size - real, idx[0])])
        yield {"x": data.normalize(split.images[idx], normalization), "y": split.labels[idx]}, real
