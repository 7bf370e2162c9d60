"""Compare the base and the fine-tuned PaddleOCR-VL on one document image.

    python compare_base_vs_finetuned.py --image crop.png --model runs/train/final \
        --output comparison.json [--base models/paddleocr-vl] [--ground-truth crop.json] [--region totals_section]

`--base` defaults to PaddlePaddle/PaddleOCR-VL, which needs the Hugging Face Hub: offline, pass a
local folder. For a whole test split with confidence intervals use `finscribe compare`.
Flags: `python compare_base_vs_finetuned.py --help`; this script only calls
`finscribe.eval.document.compare_main`.
"""

from finscribe.cli import run
from finscribe.eval.document import compare_main

if __name__ == "__main__":
    raise SystemExit(run(compare_main, prog="compare_base_vs_finetuned.py"))
