"""Search spaces: registry of space factories."""

from jaxnas.spaces import darts, nb201, nds_cells
from jaxnas.spaces.base import SearchSpace

SPACES = {
    "nb201": nb201.space,
    "darts": darts.space,
    **nds_cells.FACTORIES,
}

__all__ = ["SPACES", "SearchSpace", "darts", "nb201", "nds_cells"]
