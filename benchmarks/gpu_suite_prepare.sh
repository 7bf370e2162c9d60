#!/usr/bin/env bash
# Prepare benchmarks/gpu_suite.py for the lent H200 (the device tool; its README and KINDS.md).
# The device has Python 3.12, torch 2.11.0, torchvision, tokenizers 0.23, safetensors 0.8, sentencepiece,
# protobuf, pandas, pyarrow, matplotlib, lxml, fonttools, but reaches no registry and gets only the repository.
# This fetches, once, here:
#   .whl/  the wheels it lacks: torchao 0.18.0 (the release built for torch 2.11), and the versions FinScribe is
#          tested with here (transformers 5.25 needs huggingface_hub >= 2.4, newer than the device's 1.33),
#          each with the needs the device does not meet;
#   .v1/   the real PaddleOCR-VL v1 small files (../shared does not travel).
# Both are git-ignored through .git/info/exclude. Then one device `run`, carry [".whl", ".v1"], timeout_s 600:
#   python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD || exit; PYTHONUNBUFFERED=1 python3 benchmarks/gpu_suite.py --like .v1 --output-dir $OUT/gpu_suite 2>&1 | tee $OUT/gpu_suite.log
set -euo pipefail
cd "$(dirname "$0")/.."
for ignored in /.whl/ /.v1/; do
    grep -qxF "$ignored" .git/info/exclude || echo "$ignored" >> .git/info/exclude
done
rm -rf .v1 && cp -r "${FINSCRIBE_REAL_FILES:-../shared/paddleocr_vl/v1}" .v1
mkdir -p .whl
"${PYTHON:-.venv/bin/python}" -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl \
    torchao==0.18.0 \
    transformers==5.25.0 huggingface_hub==2.4.0 httpx2==2.16.2 httpcore2==2.16.2 click==8.5.1 hf-xet==1.8.0 \
    kernels==0.19.1 tomlkit==0.15.3 truststore==0.10.5 \
    peft==0.21.2 accelerate==1.16.0 datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 \
    faker==40.63.0 babel==2.19.0 rapidfuzz==3.14.6 apted==1.0.3 fpdf2==2.8.9 defusedxml==0.7.1 pypdfium2==5.15.2
du -sh .whl .v1
