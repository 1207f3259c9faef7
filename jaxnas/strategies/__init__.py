"""Search strategies (ask/tell): registry of factories `(space, population_size, **kw)`."""

from jaxnas.strategies.base import BestSoFar, Strategy, failed_to_worst, update_best
from jaxnas.strategies.evolution import evolution
from jaxnas.strategies.nsga2 import nsga2
from jaxnas.strategies.random_search import random_search
from jaxnas.strategies.rea import rea

STRATEGIES = {
    "evolution": evolution,
    "nsga2": nsga2,
    "random_search": random_search,
    "rea": rea,
}

__all__ = [
    "STRATEGIES",
    "BestSoFar",
    "Strategy",
    "evolution",
    "failed_to_worst",
    "nsga2",
    "random_search",
    "rea",
    "update_best",
]
