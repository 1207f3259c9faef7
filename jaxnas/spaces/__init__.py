"""Search spaces: registry of space factories."""

from jaxnas.spaces import nb201
from jaxnas.spaces.base import SearchSpace

SPACES = {
    "nb201": nb201.space,
}

__all__ = ["SPACES", "SearchSpace", "nb201"]
