#!/usr/bin/env bash
# The test suite on jax 0.11 as well as on the pinned jax, before GPU time is spent.
#
#   bash scripts/check_jax_versions.sh                  # the representative subset below
#   bash scripts/check_jax_versions.sh tests/test_nb201.py -k mask   # any pytest arguments
#
# 1. Builds (once) a virtual environment with jax 0.11 on the CPU and the project's other
#    dependencies except tensorflow-datasets, like the GPU image (jax 0.11 needs Python >= 3.12:
#    $PYTHON312, default python3.12, else pyenv's 3.12). Where: $JAX011_VENV, default
#    ~/.cache/jaxnas/venv-jax011 (outside the repository).
# 2. In it, with ml_collections and tensorflow_datasets made unimportable (the GPU image
#    has neither): `import jaxnas`, score an NB201 population, and check every dispatch.
# 3. Runs the tests (default subset; slow tests deselected as usual) with jax 0.11, then
#    with the pinned jax of $PINNED_PYTHON (default: python), and prints both summaries.
# Exit status: non-zero if any step fails. Expected: a few minutes per run on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
VENV="${JAX011_VENV:-$HOME/.cache/jaxnas/venv-jax011}"
PINNED_PYTHON="${PINNED_PYTHON:-python}"
SUBSET=(tests/test_network.py tests/test_nb201.py tests/test_score_population.py
  tests/test_sharding.py tests/test_dispatch.py tests/test_distributed.py tests/test_main.py)
ARGS=("$@")
[ ${#ARGS[@]} -eq 0 ] && ARGS=("${SUBSET[@]}")

if [ ! -x "$VENV/bin/python" ]; then
  # A pyenv shim can exist without a usable interpreter behind it: try each candidate.
  PY=""
  for candidate in ${PYTHON312:-} python3.12 "$HOME"/.pyenv/versions/3.12*/bin/python; do
    if "$candidate" -c 'import sys; assert sys.version_info >= (3, 12)' 2>/dev/null; then
      PY="$candidate"
      break
    fi
  done
  [ -n "$PY" ] || { echo "error: jax 0.11 needs Python >= 3.12; set PYTHON312" >&2; exit 2; }
  "$PY" -m venv "$VENV"
  "$VENV/bin/pip" install -q "jax==0.11.*" "jaxlib==0.11.*" "flax>=0.12.8,<0.13" \
    "optax>=0.2.8" "chex>=0.1.92" absl-py "numpy>=2.0" "scipy>=1.13" ml-collections \
    "pytest>=8" "pytest-xdist>=3"
fi
"$VENV/bin/python" -c "import jax; assert jax.__version__.startswith('0.11'), jax.__version__"

echo "== jax 0.11 without ml_collections / tensorflow_datasets: import and score"
PYTHONPATH="$ROOT" "$VENV/bin/python" - <<'EOF'
import importlib.abc
import sys


class Missing(importlib.abc.MetaPathFinder):
    """The GPU image: these packages are not installed."""

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("ml_collections", "tensorflow_datasets"):
            raise ImportError(f"{name} is not installed here")


sys.meta_path.insert(0, Missing())
import jax
import numpy as np

import jaxnas
from jaxnas import data, proxies
from jaxnas.spaces import nb201

batch = data.synthetic_batch(jax.random.key(0), 8, (8, 8, 3))
keys = jax.random.split(jax.random.key(1), 2)
scores = {}
for mode, chunk in (("switch", 1), ("mask", 4)):
    space = nb201.space(channels=4, cells_per_stage=1, dispatch=mode)
    population = space.enumerate()[:: 15625 // 7][:7]
    for name in ("naswot", "synflow", "snip"):
        scores[mode, name] = np.asarray(jax.jit(
            lambda p, space=space, name=name, chunk=chunk: proxies.score_population(
                proxies.get_proxy(name), space, p, batch, keys, chunk_size=chunk
            )
        )(population))
for name in ("naswot", "synflow", "snip"):
    np.testing.assert_allclose(scores["mask", name], scores["switch", name], rtol=1e-4)
    # -inf is a valid worst score (a singular NASWOT kernel, e.g. an all-"none" cell).
    assert not np.isnan(scores["switch", name]).any(), name
print(f"jaxnas {jaxnas.__version__} on jax {jax.__version__}: imports without ml_collections "
      "and tensorflow_datasets; naswot, synflow, snip equal under switch and mask")
EOF

status=0
echo "== jax 0.11: pytest ${ARGS[*]}"
PYTHONPATH="$ROOT" nice -n 10 "$VENV/bin/python" -m pytest -q -p no:cacheprovider "${ARGS[@]}" \
  | tail -n 3 || status=1
echo "== pinned jax ($("$PINNED_PYTHON" -c 'import jax; print(jax.__version__)')): pytest ${ARGS[*]}"
PYTHONPATH="$ROOT" nice -n 10 "$PINNED_PYTHON" -m pytest -q -p no:cacheprovider "${ARGS[@]}" \
  | tail -n 3 || status=1
exit $status
