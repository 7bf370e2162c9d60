"""Quantization benchmark: float32 vs INT8 size, peak memory, latency, field accuracy.

Same function as `finscribe benchmark-quant` (finscribe.deploy.quant_benchmark). Reproduce the
RESULTS.md figures:

    python tests/deploy_helpers.py runs/bench/overfit          # overfit tiny model + its 4 crops
    python benchmarks/quantization.py --model runs/bench/overfit --data runs/bench/overfit-data \
        --output-dir runs/bench/quant-tiny --repeats 5
    python benchmarks/quantization.py --full-size-random --model runs/bench/overfit \
        --data runs/bench/overfit-data --output-dir runs/bench/quant-full --limit 2 --repeats 2 \
        --fixed-new-tokens 8
"""

import sys

from finscribe.deploy.quant_benchmark import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], prog="python benchmarks/quantization.py"))
