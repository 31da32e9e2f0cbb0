#!/usr/bin/env bash
# bench_gpu.py on a GPU machine without a package registry: installs the wheels carried in .whl/ (see the device
# notes: optuna, cmaes, sqlalchemy, alembic, mako, colorlog, gluonts, toto-ts, kronos-finance, rotary-embedding-torch,
# pydantic and its parts, optuna-dashboard, bottle, typing_extensions, toto-2, dd-unit-scaling, unit-scaling,
# docstring-parser, tabulate; statsmodels is not needed), then runs it with
# the machine's own CUDA torch. Arguments go to bench_gpu.py; output also goes to $OUT/bench_gpu.jsonl when OUT is set.
set -uo pipefail
cd "$(dirname "$0")/../.."
if [ -d .whl ]; then
  rm -rf /tmp/site
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || exit 9
  export PYTHONPATH=/tmp/site
fi
export PYTHONUNBUFFERED=1
python3 tests/benchmarks/bench_gpu.py "$@" 2>&1 | tee "${OUT:-/tmp}/bench_gpu.jsonl"
