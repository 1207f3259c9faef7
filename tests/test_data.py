"""Batches: normalisation, npz loading, synthetic data, offline tfds failures."""

import os
import sys
import time

import chex
import jax
import numpy as np
import pytest

from jaxnas import data, errors


def test_normalization_gives_the_published_nb201_values():
    # NB201's transform: (pixel - (125.3, 123.0, 113.9)) / (63.0, 62.1, 66.7) in 0..255
    # units (reference.md, get_dataset_with_transform.py); values worked out by hand.
    images = np.zeros((2, 2, 2, 3), np.uint8)
    images[:, 0] = 255
    images[:, 1] = 100
    expected_255 = (2.0587302, 2.1256039, 2.1154423)  # (255 - mean) / std
    expected_100 = (-0.4015873, -0.3703704, -0.2083958)  # (100 - mean) / std
    for x in (data.normalize(images, "cifar10"), data.normalize(images / 255.0, "cifar10")):
        chex.assert_shape(x, (2, 2, 2, 3))
        np.testing.assert_allclose(x[:, 0], np.broadcast_to(expected_255, (2, 2, 3)), rtol=1e-5)
        np.testing.assert_allclose(x[:, 1], np.broadcast_to(expected_100, (2, 2, 3)), rtol=1e-5)


def test_channels_first_images_are_rejected_with_a_hint():
    with pytest.raises(errors.ShapeError, match=r"channels first\?"):
        data.normalize(np.zeros((2, 3, 32, 32), np.uint8))
    with pytest.raises(errors.ShapeError, match=r"\[N, H, W, C\]"):
        data.normalize(np.zeros((3, 32, 32), np.uint8))
    with pytest.raises(errors.ConfigError, match="unknown normalization"):
        data.normalize(np.zeros((1, 2, 2, 3)), "mnist")


def test_synthetic_batch_shapes_labels_and_keys(key):
    a = data.synthetic_batch(key, 64, (8, 8, 3), 10)
    chex.assert_shape(a["x"], (64, 8, 8, 3))
    chex.assert_shape(a["y"], (64,))
    y = np.asarray(a["y"])
    assert y.min() >= 0 and y.max() < 10 and len(set(y.tolist())) > 5
    x = np.asarray(a["x"])
    assert abs(x.mean()) < 0.05 and abs(x.std() - 1.0) < 0.05  # "already normalised"
    b = data.synthetic_batch(jax.random.key(1), 64, (8, 8, 3), 10)
    assert not np.allclose(a["x"], b["x"]) and not np.array_equal(a["y"], b["y"])


def test_npz_round_trip_and_errors(tmp_path, key):
    path = str(tmp_path / "imgs.npz")
    np.savez(
        path,
        images=np.arange(6 * 4 * 4 * 3, dtype=np.uint8).reshape(6, 4, 4, 3),
        labels=np.arange(6),
    )
    images, labels = data.load_npz(path)
    batch = data.sample_batch(key, images, labels, 4)
    chex.assert_shape(batch["x"], (4, 4, 4, 3))
    assert len(set(np.asarray(batch["y"]).tolist())) == 4  # without replacement
    with pytest.raises(errors.DataError, match="image file not found"):
        data.load_npz(str(tmp_path / "missing.npz"))
    with pytest.raises(errors.DataError, match="has no array 'pixels'"):
        data.load_npz(path, images_key="pixels")
    with pytest.raises(errors.DataError, match="exceeds the 6 images"):
        data.sample_batch(key, images, labels, 7)


def test_real_cifar10_batch_statistics(shared_data, key):
    path = os.path.join(shared_data, "images", "cifar10_jpeg_yoongikim_train1280_test1000.npz")
    images, labels = data.load_npz(path, "train_images", "train_labels")
    batch = data.sample_batch(key, images, labels, 256)
    x = np.asarray(batch["x"])
    assert abs(x.mean()) < 0.2 and 0.8 < x.std() < 1.2  # the constants fit the data


def test_tfds_fails_fast_and_clearly_when_data_is_not_prepared(tmp_path):
    # The GPU image has no tensorflow-datasets; `make install` does.
    pytest.importorskip("tensorflow_datasets", reason="tensorflow-datasets is not installed")
    start = time.perf_counter()
    with pytest.raises(errors.DataError, match="not prepared .* never downloads"):
        data.load_tfds("cifar10", data_dir=str(tmp_path))
    assert time.perf_counter() - start < 30  # no DNS retries
    with pytest.raises(errors.DataError, match="unknown tfds dataset"):
        data.load_tfds("svhn", data_dir=str(tmp_path))


def test_tfds_without_tensorflow_datasets_says_so(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)  # import raises
    with pytest.raises(errors.DataError, match="needs tensorflow-datasets"):
        data.load_tfds("cifar10")


def test_random_crop_flip_is_a_padded_shifted_or_mirrored_window(key):
    images = np.arange(5 * 6 * 6 * 3, dtype=np.uint8).reshape(5, 6, 6, 3) + 1
    out = data.random_crop_flip(key, images, 2)
    assert out.shape == images.shape and out.dtype == images.dtype
    padded = np.pad(images, ((0, 0), (2, 2), (2, 2), (0, 0)))
    for i in range(5):
        windows = [padded[i, t : t + 6, c : c + 6] for t in range(5) for c in range(5)]
        assert any(np.array_equal(out[i], w) or np.array_equal(out[i], w[:, ::-1]) for w in windows)
    plain = data.sample_batch(key, images, None, 3)
    augmented = data.sample_batch(key, images, np.arange(5), 3, crop_padding=0)
    # Same images chosen; padding 0 can only mirror them.
    for a, b in zip(np.asarray(plain["x"]), np.asarray(augmented["x"])):
        assert np.allclose(a, b) or np.allclose(a, b[:, ::-1])
