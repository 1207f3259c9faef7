"""What a proxy needs, declared once: the record behind each `proxies.PROXIES` entry.

A proxy's factory returns a pure function `proxy(network, params, batch, key) -> f32[]`.
Its `Proxy` record says what that function needs from whoever scores with it, the way
neural-tangents' layers declare their requirements:

  * `labels`: it reads `batch["y"]` (a loss); without labels it raises ShapeError.
  * `instrumented`: it reads the probes that `jaxnas.spaces.op_layers` modules record, or
    blocks named as the spaces name them, so it scores networks of a jaxnas space and
    raises ConfigError on a bring-your-own model.
  * `network`: static `space.network` overrides it is always scored with (synflow
    scores the network without BatchNorm); `get_proxy` attaches them to the function.
  * `protocol`: its reference protocol (`Protocol`; shared/docs/reference.md §A): the
    proxy network, inputs, batch size and initialisations its authors scored with.

Scoring several proxies in one compiled program (`base.stack`) needs one network:
`proxies.fuse_groups` groups those that declare the same overrides (and, under their
reference protocols on a dataset, the same protocol there). `NB201_DATASETS` defines
the batches of the NB201 correlation report (`scripts/proxy_report.py`) and
`protocol_batch` draws one.
"""

import dataclasses
import os
from collections.abc import Callable, Mapping
from typing import Any

import jax.numpy as jnp

from jaxnas import benchmarks, data, errors, types


@dataclasses.dataclass(frozen=True)
class Protocol:
    """A proxy's reference scoring protocol on NB201.

    Attributes:
      network: `space.network` settings of the proxy network (NB201 names, e.g.
        TE-NAS's C=3, one cell per stage); empty: the benchmark network, C=16, N=5.
      batch_size: images per batch (at most those a dataset has); None: the dataset's.
      num_inits: initialisations K per architecture; the scores are averaged.
      crop_size: None: whole images; an int: the batch is `batch_size` random
        `crop_size` x `crop_size` one-channel crops of the normalised images (TE-NAS's
        linear-region inputs, `data.random_crops`).
      reference: where the protocol is specified (ignored by `==`).
    """

    network: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    batch_size: int | None = None
    num_inits: int = 1
    crop_size: int | None = None
    # Not part of what is scored: protocols that differ only here score alike (and fuse).
    reference: str = dataclasses.field(default="", compare=False)

    def describe(self) -> str:
        """One line: network, inputs and initialisations, e.g. for a report's table."""
        net = ", ".join(f"{k}={v}" for k, v in self.network.items()) or "benchmark network"
        size = "the dataset's batch" if self.batch_size is None else str(self.batch_size)
        inputs = f"{size} images"
        if self.crop_size is not None:
            inputs = f"{size} {self.crop_size}x{self.crop_size} one-channel crops"
        return f"{net}; {inputs}; K={self.num_inits}"

    def on(self, dataset: "Dataset") -> "Protocol":
        """The protocol on `dataset`: its batch size where the protocol leaves it open."""
        return dataclasses.replace(self, batch_size=self.batch_size or dataset.batch_size)


DEFAULT_PROTOCOL = Protocol()


@dataclasses.dataclass(frozen=True)
class Proxy:
    """A registered proxy: its factory and what the function it returns needs.

    Attributes:
      factory: `factory(**kwargs) -> ProxyFn` (keyword arguments from a spec string).
      labels: the proxy reads `batch["y"]`.
      instrumented: the proxy reads probes or named blocks of a jaxnas space's network.
      network: static `space.network` overrides the proxy is always scored with.
      protocol: the reference protocol (default: the benchmark network, the dataset's
        batch, one initialisation).
    """

    factory: Callable[..., types.ProxyFn]
    labels: bool = False
    instrumented: bool = False
    network: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    protocol: Protocol = DEFAULT_PROTOCOL


@dataclasses.dataclass(frozen=True)
class Dataset:
    """Real images of the shared data as one NB201 dataset's batches (Suite-Zero's data
    settings: its normalisation, random crop + flip augmentation).

    Attributes:
      accuracy: the NB201 test-accuracy column (`nb201_test_acc_200ep.csv.gz`).
      num_classes: the network's classes.
      images: the `.npz` file under the shared data's `images/`.
      images_key, labels_key: its arrays.
      normalization: a key of `data.NORMALIZATION`.
      batch_size: the default batch (at most the images available).
      crop_padding: the augmentation's zero padding.
      stand_in_labels: the labels are another label set's ids mod `num_classes` (the
        dataset's own labels are not in the shared data).
    """

    accuracy: str
    num_classes: int
    images: str
    images_key: str
    labels_key: str
    normalization: str
    batch_size: int
    crop_padding: int
    stand_in_labels: bool = False

    def load(self):
        """(images, int labels) of the shared data file."""
        path = os.path.join(benchmarks.shared_data_dir(), "images", self.images)
        images, labels = data.load_npz(path, self.images_key, self.labels_key)
        return images, labels % self.num_classes if self.stand_in_labels else labels


NB201_DATASETS = {
    # Real CIFAR-10 training images (JPEG-decoded), NASLib normalisation.
    "cifar10": Dataset(
        "cifar10_test",
        10,
        "cifar10_jpeg_yoongikim_train1280_test1000.npz",
        "train_images",
        "train_labels",
        "cifar10-naslib",
        64,
        4,
    ),
    # The 20 real CIFAR-100 test images available, real fine labels.
    "cifar100": Dataset(
        "cifar100_test",
        100,
        "cifar100_test_first20_foolbox.npz",
        "images",
        "labels",
        "cifar100-naslib",
        20,
        4,
    ),
    # 20 real ImageNet-1k validation images box-resized to 16x16; ImageNet16-120's class
    # ids are not available, so the labels are ImageNet-1k ids mod 120.
    "imagenet16-120": Dataset(
        "imagenet16_120_test",
        120,
        "imagenet_val20_foolbox_resized.npz",
        "images_16",
        "labels_in1k",
        "imagenet16-120",
        20,
        2,
        stand_in_labels=True,
    ),
}


def protocol_batch(
    dataset: Dataset, protocol: Protocol, key: types.PRNGKey, labels: bool
) -> types.Batch:
    """The batch `protocol` scores on `dataset`, drawn with `key`.

    Images: `{"x": f32[B, H, W, 3]}` with B = the protocol's batch size (default: the
    dataset's, at most the images available), augmented; crops: `{"x": f32[B, s, s, 1]}`.
    `labels` adds `"y": int32[B]` (for proxies that declare them; crops have none).
    """
    images, image_labels = dataset.load()
    if protocol.crop_size is not None:
        if labels:
            raise errors.ConfigError("a crops protocol has no labels for its proxies")
        pool = jnp.asarray(data.normalize(images, dataset.normalization))
        return {"x": data.random_crops(key, pool, protocol.batch_size, protocol.crop_size)}
    size = min(protocol.batch_size or dataset.batch_size, len(images))
    batch = data.sample_batch(
        key, images, image_labels, size, dataset.normalization, dataset.crop_padding
    )
    return batch if labels else {"x": batch["x"]}


__all__ = [
    "DEFAULT_PROTOCOL",
    "NB201_DATASETS",
    "Dataset",
    "Protocol",
    "Proxy",
    "protocol_batch",
]
