"""TE-NAS's number of linear regions: distinct ReLU activation patterns over many inputs.

Chen, Gong, Wang, "Neural Architecture Search on ImageNet in Four GPU Hours: A
Theoretically Inspired Perspective" (TE-NAS), ICLR 2021; reference code
VITA-Group/TENAS `lib/procedures/linear_region_counter.py`.

Every sample's pattern concatenates the on/off state of every ReLU unit of the network;
the score is the number of distinct patterns among the samples (higher is better).
Counting is exact (packed bit codes, `patterns.count_distinct_rows`), where the
reference's fp16 matrix products are exact only up to 2048 units (reference.md §F.10).

TE-NAS protocol (reference.md §A.3), the defaults here:
  * inputs: 3000 random 3x3 crops of one random channel of real normalised training
    images (`data.random_crops`; the CLI's `data.crops`);
  * network: the thin NB201 network `space.network(genotype, **TENAS_REGIONS_NETWORK)`
    (one cell at C=1, no stem, no reduction) with PyTorch's default init;
  * BatchNorm statistics per forward pass of 1000 samples (TE-NAS forwards its 3000
    crops as 3 batches of 1000): `chunk_size`.
"""

import jax
import jax.numpy as jnp

from jaxnas import errors, types
from jaxnas.proxies import patterns, protocols

# TE-NAS's thin NB201 network (`prune_tenas.py`, C=1, N=1, depth=1, use_stem=False):
# `space.network(g, **TENAS_REGIONS_NETWORK)`, fed f32[B, 3, 3, 1] crops.
TENAS_REGIONS_NETWORK = dict(channels=1, cells_per_stage=1, num_stages=1, stem=False, in_channels=1)
# TE-NAS's protocol: that network on 3000 3x3 one-channel crops, K=3 initialisations.
TENAS_PROTOCOL = protocols.Protocol(
    network=TENAS_REGIONS_NETWORK,
    batch_size=3000,
    num_inits=3,
    crop_size=3,
    reference="reference.md §A.3",
)


def linear_regions(*, chunk_size: int = 1000) -> types.ProxyFn:
    """Returns the linear-regions proxy: the number of distinct activation patterns.

    Args:
      chunk_size: samples per forward pass (each pass has its own BatchNorm
        statistics). A batch larger than this must be a multiple of it.
    """

    def linear_regions_fn(network, params, batch, key):
        del key
        x = batch["x"]
        b = x.shape[0]
        chunk = min(chunk_size, b)
        if b % chunk:
            raise errors.ShapeError(
                f"linear_regions: a batch of {b} samples is not a multiple of "
                f"chunk_size={chunk_size}"
            )

        def codes(xc):
            logits, taps = network.apply(params, xc, taps=True)
            finite = jnp.all(jnp.isfinite(logits))
            return patterns.sample_codes(patterns.distinct_taps(taps)), finite

        chunks, finite = jax.lax.map(codes, x.reshape(b // chunk, chunk, *x.shape[1:]))
        count = patterns.count_distinct_rows(chunks.reshape(b, -1)).astype(jnp.float32)
        return jnp.where(jnp.all(finite), count, jnp.nan)

    return linear_regions_fn
