"""The proxy registry's records: what each proxy declares it needs is what it needs, and
fusing, protocol batches and a newly added proxy follow the declarations."""

import inspect

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnas import errors, proxies, types
from jaxnas.proxies import protocols
from jaxnas.spaces import nb201

GENOTYPE = jnp.asarray([3, 2, 4, 1, 3, 0])


def test_fusing_groups_proxies_of_one_network_and_protocol():
    cifar10, cifar100 = (protocols.NB201_DATASETS[d] for d in ("cifar10", "cifar100"))
    names = ["snip", "synflow", "ntk_cond", "grad_norm", "swap", "naswot", "lswag"]
    # synflow turns BatchNorm off; ntk_cond and swap have their own networks and batches;
    # lswag's 64 images are CIFAR-10's batch, not CIFAR-100's 20.
    assert proxies.fuse_groups(names, dataset=cifar10) == [
        ["snip", "grad_norm", "naswot", "lswag"],
        ["synflow"],
        ["ntk_cond"],
        ["swap"],
    ]
    assert proxies.fuse_groups(names, dataset=cifar100)[0] == ["snip", "grad_norm", "naswot"]
    # Under one protocol (the CLI's), only the network overrides separate them.
    assert proxies.fuse_groups(names) == [
        ["snip", "ntk_cond", "grad_norm", "swap", "naswot", "lswag"],
        ["synflow"],
    ]
    specs = ["knas(variant='code')", "knas", "snip"]
    assert proxies.fuse_groups(specs, dataset=cifar10) == [specs[:2], ["snip"]]


def test_a_spec_resolves_to_its_record_and_carries_its_network_overrides():
    assert proxies.record("knas(variant='code')") is proxies.PROXIES["knas"]
    for name, entry in proxies.PROXIES.items():
        assert proxies.network_overrides(proxies.get_proxy(name)) == dict(entry.network)
    with pytest.raises(errors.ConfigError, match="unknown proxy 'nope'"):
        proxies.record("nope")


def test_every_record_is_a_complete_declaration():
    space_arguments = set(inspect.signature(nb201.space).parameters)
    for name, entry in proxies.PROXIES.items():
        p = entry.protocol
        assert set(entry.network) <= space_arguments, name
        assert set(p.network) <= space_arguments, name
        assert p.num_inits >= 1 and (p.batch_size is None or p.batch_size >= 1), name
        if p.crop_size is not None:  # crops carry no labels and need a count
            assert p.batch_size is not None and not entry.labels, name
        assert (p == protocols.DEFAULT_PROTOCOL) == (p.reference == ""), name


def test_declared_labels_are_exactly_the_proxies_that_read_them(tiny_space, tiny_batch):
    """Each proxy traced on a batch without labels: those declaring `labels` fail with
    a ShapeError naming them, the others score as with labels."""
    unlabelled = {"x": tiny_batch["x"]}
    key = jax.random.key(0)
    reads = set()
    for name, entry in sorted(proxies.PROXIES.items()):
        proxy = proxies.get_proxy(name)
        net = tiny_space.network(GENOTYPE, **entry.network)
        try:
            out = jax.eval_shape(
                lambda p=proxy, n=net: proxies.score_network(p, n, unlabelled, key)
            )
        except errors.ShapeError as exc:
            assert "needs labels" in str(exc), (name, exc)
            reads.add(name)
            continue
        chex.assert_shape(out, ())
    assert reads == {name for name, entry in proxies.PROXIES.items() if entry.labels}


def test_protocol_batches_follow_the_dataset_and_the_protocol(shared_data):
    key = jax.random.key(3)
    for name, dataset in protocols.NB201_DATASETS.items():
        batch = protocols.protocol_batch(dataset, protocols.DEFAULT_PROTOCOL, key, labels=True)
        images, _ = dataset.load()
        assert batch["x"].shape[0] == min(dataset.batch_size, len(images)), name
        assert batch["x"].shape[-1] == 3 and batch["y"].shape == batch["x"].shape[:1]
        assert 0 <= int(batch["y"].min()) and int(batch["y"].max()) < dataset.num_classes
        unlabelled = protocols.protocol_batch(dataset, protocols.DEFAULT_PROTOCOL, key, False)
        assert set(unlabelled) == {"x"}
        np.testing.assert_array_equal(unlabelled["x"], batch["x"])
    cifar100 = protocols.NB201_DATASETS["cifar100"]
    knas = proxies.PROXIES["knas"].protocol  # 50 images, capped at the 20 available
    assert protocols.protocol_batch(cifar100, knas, key, True)["x"].shape[0] == 20
    regions = proxies.PROXIES["linear_regions"].protocol
    crops = protocols.protocol_batch(protocols.NB201_DATASETS["cifar10"], regions, key, False)
    assert set(crops) == {"x"} and crops["x"].shape == (3000, 3, 3, 1)
    with pytest.raises(errors.ConfigError, match="no labels"):
        protocols.protocol_batch(cifar100, regions, key, True)


def output_norm() -> types.ProxyFn:
    """The README's toy proxy: the mean norm of the logits at initialisation."""

    def output_norm_fn(network, params, batch, key):
        del key
        logits = network.apply(params, batch["x"])
        return jnp.mean(jnp.linalg.norm(logits, axis=-1))

    return output_norm_fn


@pytest.fixture
def toy_registered(monkeypatch):
    """`output_norm` added with one registry line (declaring a network override)."""
    entry = proxies.Proxy(output_norm, network=dict(batch_norm=False))
    monkeypatch.setitem(proxies.PROXIES, "output_norm", entry)
    yield
    proxies.get_proxy.cache_clear()


def test_a_proxy_added_with_one_registry_line_scores_as_declared(
    toy_registered, tiny_space, tiny_batch
):
    population = jnp.asarray([[3, 2, 4, 1, 3, 0], [1, 1, 1, 1, 1, 1]])
    keys = jax.random.split(jax.random.key(1), 2)
    proxy = proxies.get_proxy("output_norm")
    scores = proxies.score_population(proxy, tiny_space, population, tiny_batch, keys)
    chex.assert_shape(scores, (2, 2))
    # The declared override is applied: each score is that of the network without BN.
    for p, genotype in enumerate(population):
        net = tiny_space.network(genotype, batch_norm=False)
        expected = proxies.score_inits(output_norm(), net, tiny_batch, keys)
        np.testing.assert_allclose(scores[p], expected, rtol=1e-5)
    assert proxies.fuse_groups(["output_norm", "snip", "synflow"]) == [
        ["output_norm", "synflow"],
        ["snip"],
    ]
