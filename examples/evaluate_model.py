"""Evaluate a model on one document (PNG, JPEG, TIFF or PDF, one page or many) against its ground truth.

    python examples/evaluate_model.py --image crop.png --ground-truth crop.json \
        --model runs/train/final --output results.json [--region totals_section]

The ground truth is a region annotation `{"region", "fields"}` or a full label. A page (no region
named) is read region by region: the detector (`--layout-model`, or `--boxes FILE`) finds the
regions, each crop is read with its prompt, and the merged document is scored. For a whole split
use `finscribe evaluate` (`--pages` for whole pages). This script only calls `finscribe.eval.document.evaluate_main`.
"""

from finscribe.cli import script

if __name__ == "__main__":
    raise SystemExit(script("evaluate_model.py"))
