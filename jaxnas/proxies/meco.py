"""MeCo: the minimum eigenvalue of the channel correlation of feature maps, summed.

Jiang et al., "Zero-shot Neural Architecture Search via Minimum Eigenvalue of Pearson
Correlation" (MeCo), NeurIPS 2023; reference code HamsterMimi/MeCo
`correlation/NAS_Bench_201.py` (`get_score`), reference.md §A.15.

One image (the first of the batch) goes through the network (BatchNorm in train mode on
that image). For a feature map f32[1, H, W, C], the Pearson correlation of its C
channels over the H*W positions (NaN entries, from constant channels, set to 0) has a
smallest eigenvalue lambda_min; MeCo = sum of lambda_min over the feature maps. Higher
is better.

Feature maps. The reference hooks *every* PyTorch module, containers included, so a
ReLUConvBN contributes its ReLU, Conv, BN and container outputs (Conv and BN outputs
have the same channel correlation at initialisation) and 2-D outputs contribute 0.
Here the feature maps are those a network exposes without per-op instrumentation:

  * the output of every ReLU (from the taps, relu of the pre-activation), counted once
    per ReLU module reading it (the tap weight);
  * the output of every block (stem, cells, reduction blocks; `blocks.SPACE_BLOCKS`),
    restricted to its valid channels where a data-driven cell masks some.

So this is MeCo restricted to those modules: the op-level outputs inside a cell (conv,
BN, pooling, edge outputs) are not summed. The PyTorch oracle
(`scripts/torch_kernel_oracle.py`) hooks the same modules.
"""

import jax
import jax.numpy as jnp

from jaxnas import types
from jaxnas.proxies import blocks, protocols

# The benchmark network on one image.
PROTOCOL = protocols.Protocol(batch_size=1, reference="reference.md §A.15")


def min_correlation_eigenvalue(feature: jax.Array, channel_weight=None) -> jax.Array:
    """lambda_min of the channel correlation of one feature map f32[H, W, C]: f32[].

    Channels with weight 0 (absent from the architecture) are left out: their rows and
    columns are replaced by the identity, which cannot lower lambda_min below that of
    the present channels (the eigenvalues of a correlation matrix average 1).
    """
    c = feature.shape[-1]
    fea = feature.reshape(-1, c).T  # [C, H*W]
    centred = fea - jnp.mean(fea, axis=1, keepdims=True)
    cov = centred @ centred.T
    norm = jnp.sqrt(jnp.diag(cov))
    corr = cov / (norm[:, None] * norm[None, :])
    corr = jnp.where(jnp.isfinite(corr), corr, 0.0)
    if channel_weight is not None:
        keep = jnp.broadcast_to(channel_weight > 0, (c,))
        both = keep[:, None] & keep[None, :]
        corr = jnp.where(both, corr, jnp.eye(c, dtype=jnp.float32))
    return jnp.linalg.eigvalsh(corr)[0]


def meco(*, blocks_pattern: str = blocks.BLOCKS) -> types.ProxyFn:
    """Returns the MeCo proxy (see the module docstring for the feature maps).

    Args:
      blocks_pattern: regular expression naming the blocks (`blocks.block_outputs`).
    """

    def meco_fn(network, params, batch, key):
        del key
        x = batch["x"][:1]
        logits, taps, cells = blocks.block_outputs(network, params, x, blocks_pattern, taps=True)
        total = jnp.zeros((), jnp.float32)
        for cell in cells:
            if cell.output.ndim == 4:
                total = total + min_correlation_eigenvalue(cell.output[0], cell.mask)
        for tap in taps.values():
            if tap.value.ndim != 4:
                continue
            weight = jnp.broadcast_to(tap.weight.astype(jnp.float32), tap.value.shape[1:])
            channels = jnp.max(weight, axis=(0, 1))
            value = min_correlation_eigenvalue(jax.nn.relu(tap.value[0]), channels)
            total = total + jnp.max(channels) * value
        return jnp.where(jnp.all(jnp.isfinite(logits)), total, jnp.nan)

    return meco_fn
