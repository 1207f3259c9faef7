"""Image batches for scoring networks at initialisation.

Batches are `{"x": f32[B, H, W, C], "y": int32[B]}` (NHWC, normalised). Sources:
in-memory arrays or `.npz` files, a synthetic Gaussian batch (the offline default), and
`tensorflow-datasets` datasets that were prepared beforehand (never downloaded here).
"""

import os

import jax
import jax.numpy as jnp
import numpy as np

from jaxnas import errors

# (mean, std) per channel on the [0, 1] scale, as in the benchmarks' own code.
NORMALIZATION = {
    # NAS-Bench-201 / NASWOT (`get_dataset_with_transform.py`).
    "cifar10": (
        tuple(v / 255 for v in (125.3, 123.0, 113.9)),
        tuple(v / 255 for v in (63.0, 62.1, 66.7)),
    ),
    "cifar100": (
        tuple(v / 255 for v in (129.3, 124.1, 112.4)),
        tuple(v / 255 for v in (68.2, 65.4, 70.4)),
    ),
    "imagenet16-120": (
        tuple(v / 255 for v in (122.68, 116.66, 104.01)),
        tuple(v / 255 for v in (63.22, 61.26, 65.09)),
    ),
    # NAS-Bench-101 (`nasbench/lib/cifar.py`, RGB_MEAN / RGB_STD on the 0..255 scale).
    "cifar10-nb101": (
        tuple(v / 255 for v in (125.31, 122.95, 113.87)),
        tuple(v / 255 for v in (62.99, 62.09, 66.70)),
    ),
    # SamsungLabs/zero-cost-nas (`foresight/dataset.py`).
    "cifar10-zc": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    # NASLib / NAS-Bench-Suite-Zero (`naslib/utils/utils.py`, `_data_transforms_*`);
    # its ImageNet16-120 statistics are NB201's ("imagenet16-120").
    "cifar10-naslib": (
        (0.49139968, 0.48215827, 0.44653124),
        (0.24703233, 0.24348505, 0.26158768),
    ),
    "cifar100-naslib": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "none": ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),
}


def check_images(images, channels: int = 3) -> np.ndarray:
    """Returns `images` as an array after checking it is NHWC with `channels` channels."""
    images = np.asarray(images)
    if images.ndim != 4:
        raise errors.ShapeError(f"images must be [N, H, W, C], got shape {images.shape}")
    if images.shape[-1] != channels:
        raise errors.ShapeError(
            f"images must be NHWC with {channels} channels, got shape {images.shape}"
            + (" (channels first?)" if images.shape[1] == channels else "")
        )
    return images


def _mean_std(normalization: str) -> tuple[np.ndarray, np.ndarray]:
    if normalization not in NORMALIZATION:
        raise errors.ConfigError(
            f"unknown normalization {normalization!r}; expected one of {list(NORMALIZATION)}"
        )
    return tuple(np.asarray(v, np.float32) for v in NORMALIZATION[normalization])


def normalize(images, normalization: str = "cifar10") -> np.ndarray:
    """uint8 (0..255) or float (0..1) NHWC images -> f32 normalised NHWC images."""
    mean, std = _mean_std(normalization)
    images = check_images(images, mean.shape[0])
    scaled = images.astype(np.float32)
    if np.issubdtype(images.dtype, np.integer):
        scaled = scaled / 255.0
    return (scaled - mean) / std


def make_batch(images, labels=None, normalization: str = "cifar10") -> dict[str, jax.Array]:
    """Normalises images into a batch; labels default to zeros."""
    x = normalize(images, normalization)
    if labels is None:
        labels = np.zeros(x.shape[0], np.int32)
    labels = np.asarray(labels)
    if labels.shape != (x.shape[0],):
        raise errors.ShapeError(f"labels must be [{x.shape[0]}], got shape {labels.shape}")
    return {"x": jnp.asarray(x), "y": jnp.asarray(labels.astype(np.int32))}


def synthetic_batch(
    key: jax.Array,
    batch_size: int = 64,
    image_shape: tuple[int, int, int] = (32, 32, 3),
    num_classes: int = 10,
) -> dict[str, jax.Array]:
    """A batch of N(0, 1) images (already 'normalised') with uniform random labels."""
    key_x, key_y = jax.random.split(key)
    return {
        "x": jax.random.normal(key_x, (batch_size, *image_shape), jnp.float32),
        "y": jax.random.randint(key_y, (batch_size,), 0, num_classes, jnp.int32),
    }


def random_crops(
    key: jax.Array, images: jax.Array, count: int, size: int = 3, channels: int = 1
) -> jax.Array:
    """TE-NAS's linear-region inputs: random `size`x`size` crops of random channels.

    Each crop comes from an image drawn uniformly (with replacement when `count` exceeds
    the number of images), at a uniform position, keeping `channels` channels drawn
    without replacement in increasing order (TE-NAS `RandomCrop(3)` + `RandChannel(1)`).

    Args:
      key: PRNG key.
      images: f32[N, H, W, C] normalised images.
      count: number of crops.
      size: crop height and width.
      channels: channels kept per crop.

    Returns:
      f32[count, size, size, channels].
    """
    images = jnp.asarray(images)
    n, h, w, c = images.shape
    if size > min(h, w) or channels > c:
        raise errors.ShapeError(
            f"cannot cut {size}x{size}x{channels} crops from images of shape {images.shape}"
        )
    key_img, key_y, key_x, key_c = jax.random.split(key, 4)
    index = jax.random.randint(key_img, (count,), 0, n)
    top = jax.random.randint(key_y, (count,), 0, h - size + 1)
    left = jax.random.randint(key_x, (count,), 0, w - size + 1)
    picks = jax.vmap(lambda k: jnp.sort(jax.random.permutation(k, c)[:channels]))(
        jax.random.split(key_c, count)
    )

    def crop(i, y, x, chans):
        patch = jax.lax.dynamic_slice(images[i], (y, x, 0), (size, size, c))
        return patch[:, :, chans]

    return jax.vmap(crop)(index, top, left, picks)


def load_npz(
    path: str, images_key: str = "images", labels_key: str | None = "labels"
) -> tuple[np.ndarray, np.ndarray | None]:
    """Reads `(images, labels)` from an `.npz` archive; raises DataError naming the problem."""
    if not os.path.exists(path):
        raise errors.DataError(f"image file not found: {path}")
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise errors.DataError(f"cannot read {path} as a NumPy .npz archive: {exc}") from exc
    with archive:
        if images_key not in archive.files:
            raise errors.DataError(
                f"{path} has no array {images_key!r}; it holds {sorted(archive.files)}"
            )
        images = archive[images_key]
        labels = None
        if labels_key is not None:
            if labels_key not in archive.files:
                raise errors.DataError(
                    f"{path} has no array {labels_key!r}; it holds {sorted(archive.files)}"
                )
            labels = archive[labels_key]
    return images, labels


def random_crop_flip(key: jax.Array, images: np.ndarray, padding: int) -> np.ndarray:
    """torchvision's `RandomCrop(size, padding)` + `RandomHorizontalFlip()` per image.

    Pads every side with `padding` zeros (black, before normalisation, as torchvision
    pads the PIL image), crops a random window of the original size and mirrors it
    with probability 1/2. NHWC in, same shape and dtype out.
    """
    images = np.asarray(images)
    n, h, w, _ = images.shape
    key_y, key_x, key_flip = jax.random.split(key, 3)
    top = np.asarray(jax.random.randint(key_y, (n,), 0, 2 * padding + 1))
    left = np.asarray(jax.random.randint(key_x, (n,), 0, 2 * padding + 1))
    flip = np.asarray(jax.random.bernoulli(key_flip, 0.5, (n,)))
    padded = np.pad(images, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    out = np.stack([padded[i, top[i] : top[i] + h, left[i] : left[i] + w] for i in range(n)])
    out[flip] = out[flip, :, ::-1]
    return out


def sample_batch(
    key: jax.Array,
    images: np.ndarray,
    labels: np.ndarray | None,
    batch_size: int,
    normalization: str = "cifar10",
    crop_padding: int | None = None,
) -> dict[str, jax.Array]:
    """Draws `batch_size` distinct images (uniformly, without replacement) into a batch.

    Args:
      key: PRNG key (image choice and augmentation).
      images: NHWC images (uint8 0..255 or float 0..1).
      labels: int labels per image, or None (zeros).
      batch_size: images in the batch.
      normalization: a key of `NORMALIZATION`.
      crop_padding: None for no augmentation; k for the training augmentation of the
        NAS-Bench-Suite-Zero loaders: random crop with k pixels of zero padding and a
        random horizontal flip (`random_crop_flip`), before normalisation.
    """
    images = check_images(images, _mean_std(normalization)[0].shape[0])
    if batch_size > images.shape[0]:
        raise errors.DataError(
            f"batch size {batch_size} exceeds the {images.shape[0]} images available"
        )
    idx = np.asarray(jax.random.choice(key, images.shape[0], (batch_size,), replace=False))
    chosen = images[idx]
    if crop_padding is not None:
        # fold_in keeps the image choice of a key the same with and without augmentation.
        chosen = random_crop_flip(jax.random.fold_in(key, 1), chosen, crop_padding)
    return make_batch(chosen, None if labels is None else labels[idx], normalization)


TFDS_NAMES = {
    "cifar10": ("cifar10", "image", "label"),
    "cifar100": ("cifar100", "image", "label"),
    # First 120 classes of down-sampled ImageNet, as ImageNet16-120. tfds orders classes
    # by WordNet id, which may differ from the NB201 ImageNet16 label order.
    "imagenet16-120": ("imagenet_resized/16x16", "image", "label"),
}


def load_tfds(
    dataset: str,
    split: str = "train",
    data_dir: str | None = None,
    max_examples: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Reads images and labels of a prepared `tensorflow-datasets` dataset, offline.

    Uses the TensorFlow-free random-access API (`tfds.data_source`), which needs the
    dataset prepared in the `array_record` format, e.g. on a machine with network:
    `tfds build cifar10 --data_dir=DIR --file_format=array_record`.

    Args:
      dataset: "cifar10", "cifar100" or "imagenet16-120".
      split: tfds split name.
      data_dir: tfds data directory (default: tfds' own default, ~/tensorflow_datasets).
      max_examples: read at most this many examples (from the start of the split).

    Raises:
      DataError: unknown dataset, or the data is not prepared locally. Nothing is ever
        downloaded.
    """
    if dataset not in TFDS_NAMES:
        raise errors.DataError(
            f"unknown tfds dataset {dataset!r}; expected one of {list(TFDS_NAMES)}"
        )
    try:
        import tensorflow_datasets as tfds
    except ImportError as exc:
        raise errors.DataError(
            f"reading {dataset!r} from tfds needs tensorflow-datasets, which is not "
            "installed here: `pip install tensorflow-datasets`, or give the images as .npz"
        ) from exc

    name, image_key, label_key = TFDS_NAMES[dataset]
    builder = tfds.builder(name, data_dir=data_dir, try_gcs=False)
    if not builder.is_prepared():
        raise errors.DataError(
            f"tfds dataset {name!r} is not prepared under {builder.data_dir} and jaxnas "
            f"never downloads; run `tfds build {name} --data_dir=DIR "
            f"--file_format=array_record` where there is network, or pass images as .npz"
        )
    try:
        source = tfds.data_source(name, split=split, data_dir=data_dir, download=False)
    except NotImplementedError as exc:
        raise errors.DataError(
            f"tfds dataset {name!r} under {builder.data_dir} is not in the array_record "
            f"format needed for TensorFlow-free reading; rebuild it with "
            f"`--file_format=array_record`"
        ) from exc
    count = len(source) if max_examples is None else min(max_examples, len(source))
    records = [source[i] for i in range(count)]
    images = np.stack([np.asarray(r[image_key]) for r in records])
    labels = np.asarray([int(r[label_key]) for r in records], np.int32)
    if dataset == "imagenet16-120":
        keep = labels < 120
        images, labels = images[keep], labels[keep]
    return images, labels
