"""Zero-cost proxies: registry and the population scorer.

`PROXIES` maps a name to a factory returning a `ProxyFn`; `get_proxy` resolves a spec
string such as `"naswot"` or `"naswot(count_relu_conv_bn_twice=True)"` at the edge (CLI).
"""

import ast
import functools

from jaxnas import errors, types
from jaxnas.proxies import (
    aznas,
    epe_nas,
    fisher,
    flops,
    grad_norm,
    grasp,
    jacob_cov,
    knas,
    l2_norm,
    lswag,
    meco,
    naswot,
    ntk,
    params,
    plain,
    regions,
    snip,
    swap,
    synflow,
    zen,
    zico,
)
from jaxnas.proxies.base import (
    aggregate,
    network_overrides,
    population_mesh,
    score_inits,
    score_network,
    score_population,
    shared,
    sharing,
    stack,
    with_network_overrides,
)

PROXIES = {
    "naswot": naswot.naswot,
    # The NAS-Bench-Suite-Zero family (NASLib `zerocost` measures).
    "epe_nas": epe_nas.epe_nas,
    "fisher": fisher.fisher,
    "flops": flops.flops,
    "grad_norm": grad_norm.grad_norm,
    "grasp": grasp.grasp,
    "jacob_cov": jacob_cov.jacob_cov,
    "l2_norm": l2_norm.l2_norm,
    "params": params.params,
    "plain": plain.plain,
    "snip": snip.snip,
    "synflow": synflow.synflow,
    "zen": zen.zen,
    # Kernel, gradient-statistics and expressivity proxies.
    "ntk_cond": ntk.ntk_cond,
    "linear_regions": regions.linear_regions,
    "knas": knas.knas,
    "zico": zico.zico,
    "swap": swap.swap,
    "lswag": lswag.lswag,
    "meco": meco.meco,
    "az_expressivity": aznas.az_expressivity,
    "az_progressivity": aznas.az_progressivity,
    "az_trainability": aznas.az_trainability,
}


def parse_spec(spec: str) -> tuple[str, dict]:
    """`"name(a=1, b='x')"` -> `("name", {"a": 1, "b": "x"})` (literal kwargs only)."""
    try:
        node = ast.parse(spec.strip(), mode="eval").body
    except SyntaxError as exc:
        raise errors.ConfigError(f"malformed proxy spec {spec!r}") from exc
    if isinstance(node, ast.Name):
        return node.id, {}
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.args:
        try:
            kwargs = {kw.arg: ast.literal_eval(kw.value) for kw in node.keywords}
        except ValueError as exc:
            raise errors.ConfigError(
                f"proxy spec {spec!r}: arguments must be literals (numbers, strings, ...)"
            ) from exc
        return node.func.id, kwargs
    raise errors.ConfigError(f"malformed proxy spec {spec!r}; expected name or name(key=value)")


@functools.cache
def get_proxy(spec: str) -> types.ProxyFn:
    """Resolves a spec string; the same spec gives the same function (jit cache reuse)."""
    name, kwargs = parse_spec(spec)
    if name not in PROXIES:
        raise errors.ConfigError(f"unknown proxy {name!r}; available: {sorted(PROXIES)}")
    try:
        return PROXIES[name](**kwargs)
    except TypeError as exc:
        raise errors.ConfigError(f"proxy spec {spec!r}: {exc}") from exc


__all__ = [
    "PROXIES",
    "aggregate",
    "get_proxy",
    "network_overrides",
    "parse_spec",
    "population_mesh",
    "score_inits",
    "score_network",
    "score_population",
    "shared",
    "sharing",
    "stack",
    "with_network_overrides",
]
