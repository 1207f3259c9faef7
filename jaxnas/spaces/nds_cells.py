"""The NDS cell search spaces, as NASWOT scores them.

Radosavovic, Johnson, Xie, Lo, Dollar, "On Network Design Spaces for Visual Recognition"
(NDS), ICCV 2019; networks built by pycls' `nas.py` (the DARTS `NetworkCIFAR` /
`NetworkImageNet` macro network with DARTS' ops), which NASWOT (Mellor et al., ICML
2021, `nasspace.py`) scores with each sampled network's width, depth and auxiliary
head.

Five cell spaces share the DARTS cell machinery (`jaxnas.spaces.darts`); they differ in
the candidate ops (pycls `genotypes.py` lists, in that order), the number of nodes and
the concatenated output (NDS Table 2):

| space        | ops | nodes | output                    |
|--------------|-----|-------|---------------------------|
| `nds_nasnet` | 13  | 5     | loose ends                |
| `nds_amoeba` | 8   | 5     | loose ends                |
| `nds_pnas`   | 8   | 5     | all nodes                 |
| `nds_enas`   | 5   | 5     | loose ends                |
| `nds_darts`  | 8   | 4     | all nodes (`none` included) |

Each node picks two inputs (with repetition) among the two cell inputs and the earlier
nodes and one op per input: o**2 (j + 2)**2 choices for node j, as NDS counts them.
Normal and reduction cells are independent. Unlike NASLib's NAS-Bench-301 network, every
op's BatchNorm has affine parameters and pooling has no BatchNorm (pycls `operations.py`,
DARTS evaluation networks). NDS samples the width C in {16, 24, 32} and the depth
(number of cells) in {4, 8, 12, 16, 20} per network; here they are network settings
(default C=16, 8 cells, no auxiliary head), e.g. `network(g, channels=32, num_cells=20,
auxiliary=True)`. NASWOT builds NDS networks with one output class; the default here is
10 (CIFAR-10).
"""

import functools

from jaxnas.spaces import darts

NASNET_OPS = (
    "skip_connect",
    "conv_3x1_1x3",
    "conv_7x1_1x7",
    "dil_conv_3x3",
    "avg_pool_3x3",
    "max_pool_3x3",
    "max_pool_5x5",
    "max_pool_7x7",
    "conv_1x1",
    "conv_3x3",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "sep_conv_7x7",
)
ENAS_OPS = ("skip_connect", "sep_conv_3x3", "sep_conv_5x5", "avg_pool_3x3", "max_pool_3x3")
AMOEBA_OPS = (
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "sep_conv_7x7",
    "avg_pool_3x3",
    "max_pool_3x3",
    "dil_sep_conv_3x3",
    "conv_7x1_1x7",
)
PNAS_OPS = (
    "sep_conv_3x3",
    "sep_conv_5x5",
    "sep_conv_7x7",
    "conv_7x1_1x7",
    "skip_connect",
    "avg_pool_3x3",
    "max_pool_3x3",
    "dil_conv_3x3",
)
DARTS_OPS = darts.DARTS_OPS

# name -> (ops, nodes, concatenation)
CELLS = {
    "nds_nasnet": (NASNET_OPS, 5, "loose_end"),
    "nds_amoeba": (AMOEBA_OPS, 5, "loose_end"),
    "nds_pnas": (PNAS_OPS, 5, "all"),
    "nds_enas": (ENAS_OPS, 5, "loose_end"),
    "nds_darts": (DARTS_OPS, 4, "all"),
}


def space(name: str, channels: int = 16, num_cells: int = 8, **settings):
    """The NDS cell space `name` (a key of `CELLS`) with pycls' op conventions.

    Args:
      name: "nds_nasnet", "nds_amoeba", "nds_pnas", "nds_enas" or "nds_darts".
      channels: initial width C (NDS samples 16, 24 or 32).
      num_cells: number of cells (NDS samples 4, 8, 12, 16 or 20).
      **settings: other `darts.space` network settings (num_classes, reductions,
        stem, auxiliary, in_channels, batch_norm).

    Returns:
      A `SearchSpace` whose genotypes are int32[8 * nodes] (see `jaxnas.spaces.darts`).
    """
    cell_ops, num_nodes, concat = CELLS[name]
    return darts.space(
        channels=channels,
        num_cells=num_cells,
        cell_ops=cell_ops,
        num_nodes=num_nodes,
        concat=concat,
        affine_ops=True,
        pool_bn=False,
        name=name,
        **settings,
    )


FACTORIES = {name: functools.partial(space, name) for name in CELLS}
"""Registry entries: `FACTORIES["nds_enas"](channels=..., ...)` -> SearchSpace."""
