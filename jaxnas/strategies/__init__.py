"""Search strategies (ask/tell): registry of factories."""

from jaxnas.strategies.base import BestSoFar, Strategy, failed_to_worst, update_best
from jaxnas.strategies.random_search import random_search

STRATEGIES = {
    "random_search": random_search,
}

__all__ = [
    "STRATEGIES",
    "BestSoFar",
    "Strategy",
    "failed_to_worst",
    "random_search",
    "update_best",
]
