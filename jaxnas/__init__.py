"""jaxnas: training-free neural architecture search in JAX/Flax.

Public API: the `Network` / `Tap` / `SearchSpace` / `Strategy` contracts, and the
subpackages `spaces`, `proxies`, `strategies`, plus `data`, `benchmarks`, `evaluation`
and `search`.
"""

from jaxnas import benchmarks, data, errors, evaluation, proxies, search, spaces, strategies
from jaxnas.network import Network, from_linen, from_nnx, initial_params, sow_tap
from jaxnas.proxies import get_proxy, score_population
from jaxnas.spaces import SearchSpace
from jaxnas.strategies import Strategy
from jaxnas.types import Tap

__version__ = "0.1.0"

__all__ = [
    "Network",
    "SearchSpace",
    "Strategy",
    "Tap",
    "benchmarks",
    "data",
    "errors",
    "evaluation",
    "from_linen",
    "from_nnx",
    "get_proxy",
    "initial_params",
    "proxies",
    "score_population",
    "search",
    "sow_tap",
    "spaces",
    "strategies",
]
