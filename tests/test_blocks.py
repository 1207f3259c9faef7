"""Block proxies (AZ-NAS, MeCo) beyond NB201: NB101 and DARTS-style cells.

The data-driven network (every architecture one program, DARTS loose-end outputs as
masked channels) must give the values of the materialised network, block by block, and
each block's input gradient must see that block alone (DARTS cells read two earlier
outputs, so a leak through the older one would mix blocks).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from cell_checks import TINY_CELLS

from jaxnas import errors, network, proxies
from jaxnas.proxies import aznas, blocks, meco
from jaxnas.spaces import darts, nats_sss, nb101

CASES = {
    # 2 stacks: the second cell opens with the stack's max-pool.
    "nb101": (lambda: nb101.space(stem_channels=8, num_stacks=2, cells_per_stack=1), 3),
    "darts": (lambda: darts.space(**TINY_CELLS), 3),
    "darts_loose_end": (lambda: darts.space(**TINY_CELLS, concat="loose_end"), 3),
}


# XLA's optimisations cost more compile time than these tiny programs run.
pytestmark = pytest.mark.usefixtures("fast_compile")


def _case(name, seed):
    factory, num_blocks = CASES[name]
    space = factory()
    x = jax.random.normal(jax.random.key(0), (4, 8, 8, 3))
    genotype = space.sample(jax.random.key(seed), 1)[0]
    net = space.network(genotype, **proxies.UNROLLED)
    params = net.init(jax.random.key(1), x)
    model = space.materialize(np.asarray(genotype))
    shapes = jax.eval_shape(model.init, jax.random.key(0), x)
    stats = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes["batch_stats"])
    variables = {**space.restrict(params, genotype, x), "batch_stats": stats}
    fixed = network.from_linen(model, train=True)
    return net, params, fixed, variables, x, num_blocks


def _noise(cells, key):
    keys = jax.random.split(key, len(cells) - 1)
    return [jax.random.rademacher(k, c.output.shape, jnp.float32) for k, c in zip(keys, cells[1:])]


@pytest.mark.parametrize("name", sorted(CASES))
def test_block_proxies_of_data_driven_and_materialised_networks_agree(name):
    net, params, fixed, variables, x, num_blocks = _case(name, seed=4)
    _, cells = blocks.block_outputs(net, params, x)
    assert len(cells) == num_blocks
    masks = [c.mask for c in cells]
    if name == "darts_loose_end":
        # The check is only meaningful where the data-driven cells mask channels.
        assert any(m is not None and float(jnp.min(m)) == 0.0 for m in masks)
    else:
        assert all(m is None for m in masks)

    noise = _noise(cells, jax.random.key(2))
    kept = [n if m is None else n[..., np.asarray(m) > 0] for n, m in zip(noise, masks[1:])]

    @jax.jit
    def values(network_params, fixed_variables):
        meco = proxies.get_proxy("meco")
        batch = {"x": x}
        ours = blocks.input_gradients(net, network_params, x, lambda _: noise)[1:]
        theirs = blocks.input_gradients(fixed, fixed_variables, x, lambda _: kept)[1:]
        return (
            aznas.components_from(*ours),
            aznas.components_from(*theirs),
            meco(net, network_params, batch, None),
            meco(fixed, fixed_variables, batch, None),
        )

    got, want, got_meco, want_meco = values(params, variables)
    assert np.all(np.isfinite(np.asarray(want))) and np.isfinite(want_meco)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got_meco, want_meco, rtol=1e-4)


@pytest.mark.parametrize("name", ["darts", "nb101"])
def test_each_block_input_gradient_sees_its_own_block_only(name):
    net, params, _, _, x, num_blocks = _case(name, seed=5)
    _, cells = blocks.block_outputs(net, params, x)
    noise = _noise(cells, jax.random.key(3))

    @jax.jit
    def input_gradients(cotangents):
        return blocks.input_gradients(net, params, x, lambda _: cotangents)[3]

    together = input_gradients(noise)
    for i in range(num_blocks - 1):
        alone = input_gradients([g if j == i else jnp.zeros_like(g) for j, g in enumerate(noise)])
        for got, want in zip(alone[i], together[i], strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
        assert max(float(jnp.max(jnp.abs(g))) for g in alone[i]) > 0


@pytest.mark.parametrize("name", ["darts", "nb101"])
def test_every_block_maps_earlier_block_outputs_to_its_own(name):
    # AZ-NAS's "from block l to block l - 1": nothing runs between two blocks, so every
    # input of a block is an earlier block's output (NB101's stem ReLU and max-pools are
    # inside its blocks, and its stem block's output is what the first cell reads).
    net, params, fixed, variables, x, _ = _case(name, seed=4)
    for cells in (
        blocks.block_outputs(net, params, x)[1],
        blocks.block_outputs(fixed, variables, x)[1],
    ):
        for i, cell in enumerate(cells[1:], 1):
            for value in cell.inputs:
                assert any(value is earlier.output for earlier in cells[:i]), (name, i)
        if name == "nb101":
            assert float(jnp.min(cells[0].output)) == 0.0


def test_a_tensor_read_twice_is_one_input_perturbed_once():
    # DARTS cell 0 reads the CIFAR stem's output as both inputs: one input, and its
    # gradient is the gradient with respect to that tensor (the sum over both uses).
    net, params, _, _, x, _ = _case("darts", seed=4)
    _, cells = blocks.block_outputs(net, params, x)
    assert [len(c.inputs) for c in cells[1:]] == [1, 2]
    noise = _noise(cells, jax.random.key(3))
    g_in = blocks.input_gradients(net, params, x, lambda _: noise)[3][0]
    later = tuple(jnp.zeros_like(i) for i in cells[2].inputs)

    def cell0(perturbation):  # cell 0's output, `perturbation` added to the stem output
        perturbations = [(perturbation,), later]
        return blocks.block_outputs(net, params, x, perturbations=perturbations)[1][1].output

    _, vjp = jax.vjp(cell0, jnp.zeros_like(cells[0].output))
    np.testing.assert_allclose(g_in[0], vjp(noise[0])[0], rtol=1e-5, atol=1e-6)


def test_networks_without_enough_blocks_are_refused():
    net, params, _, _, x, _ = _case("darts", seed=4)
    with pytest.raises(errors.ConfigError, match="at least one block"):
        blocks.block_outputs(net, params, x, pattern="no_such_module")
    with pytest.raises(errors.ConfigError, match="at least two blocks"):
        blocks.input_gradients(net, params, x, lambda outputs: outputs[1:], pattern="stem")
    # MeCo reads one block as well as many.
    one_block = meco.meco(blocks_pattern="stem")
    assert np.isfinite(one_block(net, params, {"x": x}, None))


def test_the_data_driven_nats_sss_network_is_refused():
    space = nats_sss.space()
    x = jax.random.normal(jax.random.key(0), (2, 8, 8, 3))
    genotype = space.sample(jax.random.key(1), 1)[0]
    net = space.network(genotype, **proxies.UNROLLED)
    params = net.init(jax.random.key(1), x)
    with pytest.raises(errors.ConfigError, match="NATS-SSS"):
        blocks.block_outputs(net, params, x)
