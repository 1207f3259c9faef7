"""Search spaces: registry of space factories."""

from jaxnas.spaces import darts, nb201
from jaxnas.spaces.base import SearchSpace

SPACES = {
    "nb201": nb201.space,
    "darts": darts.space,
}

__all__ = ["SPACES", "SearchSpace", "darts", "nb201"]
