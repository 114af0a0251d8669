#!/usr/bin/env bash
# The GPU checks in one device command (see benchmarks/gpu_reproduction.py for what it measures).
#   bash benchmarks/gpu_reproduction.sh --prepare   here, once: copy the data it reads into .gpu-data/ and download the
#                                                   wheels the GPU image lacks into .whl/ (both git-ignored, ~45 MiB)
#   bash benchmarks/gpu_reproduction.sh             on the device machine, with .gpu-data and .whl carried
#   bash benchmarks/gpu_reproduction.sh --dry-run   on a CPU: the same three stages with tiny models (the tests run it)
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${MASKVIZ_DATA:-$(cd .. && pwd)/shared/data}"
if [ "${1:-}" = "--prepare" ]; then
  rm -rf .gpu-data && mkdir -p .gpu-data/corpus/enwiki_2015_wikiextractor
  cp "$DATA/corpus/enwiki_2015_wikiextractor/enwiki_000.txt.gz" .gpu-data/corpus/enwiki_2015_wikiextractor/
  cp -r "$DATA/blimp" "$DATA/wikitext-2-raw" .gpu-data/
  # the GPU image has torch, transformers, tokenizers, pandas, scipy, pyarrow: these are what maskviz adds
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
    datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 simple-parsing==0.1.9 docstring-parser==0.18.0
  du -sh .gpu-data .whl
  exit 0
fi
if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH="/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
else
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
[ -d .gpu-data ] && export MASKVIZ_DATA="$PWD/.gpu-data"
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
PY="${PYTHON:-python3}"
[ -x .venv/bin/python ] && [ "${1:-}" = "--dry-run" ] && PY=.venv/bin/python
exec "$PY" benchmarks/gpu_reproduction.py "$@"
