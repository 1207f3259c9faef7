"""Search spaces: registry of space factories."""

from jaxnas.spaces import autoformer, nats_sss, nb101, nb201, nds
from jaxnas.spaces.base import SearchSpace

SPACES = {
    "nb201": nb201.space,
    "nb101": nb101.space,
    "nats_sss": nats_sss.space,
    "nds_resnet": nds.resnet,
    "nds_resnext_a": nds.resnext_a,
    "nds_resnext_b": nds.resnext_b,
    "autoformer": autoformer.space,
}

__all__ = ["SPACES", "SearchSpace", "autoformer", "nats_sss", "nb101", "nb201", "nds"]
