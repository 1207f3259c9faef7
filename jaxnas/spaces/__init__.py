"""Search spaces: registry of space factories."""

from jaxnas.spaces import nats_sss, nb101, nb201
from jaxnas.spaces.base import SearchSpace

SPACES = {
    "nb201": nb201.space,
    "nb101": nb101.space,
    "nats_sss": nats_sss.space,
}

__all__ = ["SPACES", "SearchSpace", "nats_sss", "nb101", "nb201"]
