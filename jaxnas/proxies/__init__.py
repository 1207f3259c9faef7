"""Zero-cost proxies: registry and the population scorer.

`PROXIES` maps a name to its record (`protocols.Proxy`: the factory returning a
`ProxyFn`, and what the proxy needs: labels, an instrumented space, network overrides,
its reference protocol); `get_proxy` resolves a spec string such as `"naswot"` or
`"naswot(count_relu_conv_bn_twice=True)"` at the edge (CLI); `fuse_groups` says which
proxies can be scored together in one program (`stack`).
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
    shared_initialisations,
    sharing,
    stack,
    with_network_overrides,
    with_shared_requests,
)
from jaxnas.proxies.protocols import Dataset, Protocol, Proxy

# Block proxies intercept each cell's module (`blocks.block_outputs`), so they need the
# cells unrolled where a space would scan them (NB201's default).
UNROLLED = {"scan_cells": False}

# One record per proxy: its factory and what it needs (`protocols.Proxy`). A new proxy is
# a module with its factory plus one line here.
PROXIES = {
    "naswot": Proxy(naswot.naswot),
    # The NAS-Bench-Suite-Zero family (NASLib `zerocost` measures).
    "epe_nas": Proxy(epe_nas.epe_nas, labels=True),
    "fisher": Proxy(fisher.fisher, labels=True, instrumented=True),
    "flops": Proxy(flops.flops, instrumented=True),
    "grad_norm": Proxy(grad_norm.grad_norm, labels=True),
    "grasp": Proxy(grasp.grasp, labels=True),
    "jacob_cov": Proxy(jacob_cov.jacob_cov),
    "l2_norm": Proxy(l2_norm.l2_norm),
    "params": Proxy(params.params),
    "plain": Proxy(plain.plain, labels=True),
    "snip": Proxy(snip.snip, labels=True),
    "synflow": Proxy(synflow.synflow, network=dict(batch_norm=False)),
    "zen": Proxy(zen.zen, instrumented=True),
    # Kernel, gradient-statistics and expressivity proxies.
    "ntk_cond": Proxy(ntk.ntk_cond, protocol=ntk.TENAS_PROTOCOL),
    "linear_regions": Proxy(regions.linear_regions, protocol=regions.TENAS_PROTOCOL),
    "knas": Proxy(knas.knas, labels=True, protocol=knas.PROTOCOL),
    "zico": Proxy(zico.zico, labels=True, protocol=zico.PROTOCOL),
    "swap": Proxy(swap.swap, protocol=swap.PROTOCOL),
    "lswag": Proxy(lswag.lswag, labels=True, protocol=lswag.PROTOCOL),
    "meco": Proxy(meco.meco, instrumented=True, network=UNROLLED, protocol=meco.PROTOCOL),
    "az_expressivity": Proxy(aznas.az_expressivity, instrumented=True, network=UNROLLED),
    "az_progressivity": Proxy(aznas.az_progressivity, instrumented=True, network=UNROLLED),
    "az_trainability": Proxy(aznas.az_trainability, instrumented=True, network=UNROLLED),
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


def record(spec: str) -> Proxy:
    """The registry record of a spec's proxy (`"knas(variant='code')"` -> `knas`'s)."""
    name, _ = parse_spec(spec)
    if name not in PROXIES:
        raise errors.ConfigError(f"unknown proxy {name!r}; available: {sorted(PROXIES)}")
    return PROXIES[name]


@functools.cache
def get_proxy(spec: str) -> types.ProxyFn:
    """Resolves a spec string; the same spec gives the same function (jit cache reuse).

    The function carries the record's network overrides (`network_overrides`).
    """
    entry = record(spec)
    _, kwargs = parse_spec(spec)
    try:
        fn = entry.factory(**kwargs)
    except TypeError as exc:
        raise errors.ConfigError(f"proxy spec {spec!r}: {exc}") from exc
    return with_network_overrides(fn, **entry.network)


def fuse_groups(specs, *, dataset: Dataset | None = None) -> list[list[str]]:
    """The specs that can be scored together in one program (`stack`), in their order.

    Proxies declaring the same network overrides share a network; with `dataset` (each
    proxy under its reference protocol on that dataset, `Protocol.on`) they must also
    share the protocol, which fixes the proxy network, the batch and the
    initialisations.
    """
    keys, groups = [], []
    for spec in specs:
        entry = record(spec)
        key = (dict(entry.network), entry.protocol.on(dataset) if dataset else None)
        if key in keys:
            groups[keys.index(key)].append(spec)
        else:
            keys.append(key)
            groups.append([spec])
    return groups


__all__ = [
    "PROXIES",
    "Dataset",
    "Protocol",
    "Proxy",
    "aggregate",
    "fuse_groups",
    "get_proxy",
    "network_overrides",
    "parse_spec",
    "population_mesh",
    "record",
    "score_inits",
    "score_network",
    "score_population",
    "shared_initialisations",
    "shared",
    "sharing",
    "stack",
    "with_network_overrides",
    "with_shared_requests",
]
