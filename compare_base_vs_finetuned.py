"""Compare the base and the fine-tuned PaddleOCR-VL on one document (PNG, JPEG, TIFF or PDF, any page count).

    python compare_base_vs_finetuned.py --image crop.png --model runs/train/final \
        --output comparison.json [--base models/paddleocr-vl] [--ground-truth crop.json] [--region totals_section]

A page (no region named) is read region by region by both models, at the same detected boxes
(`--layout-model`, or `--boxes FILE`). `--base` defaults to the model `--model` was fine-tuned from (its adapter_config.json,
train_config.json or quantization.json say which). For a whole test split with confidence intervals use `finscribe compare`.
Flags: `python compare_base_vs_finetuned.py --help`; this script only calls
`finscribe.eval.document.compare_main`.
"""

from finscribe.cli import script

if __name__ == "__main__":
    raise SystemExit(script("compare_base_vs_finetuned.py"))
