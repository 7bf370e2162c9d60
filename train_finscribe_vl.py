"""Fine-tune PaddleOCR-VL on FinScribe data (the seed's entry point; same flags as `finscribe train`).

    python train_finscribe_vl.py --data-dir data --output-dir ./finetuned_finscribe_vl \
        --epochs 4 --batch-size 4 --gradient-accumulation-steps 4 --learning-rate 2e-5 \
        [--use-lora --lora-r 16] [--logging-steps 50] [--model models/tiny]
    accelerate launch --config_file configs/accelerate/ddp.yaml train_finscribe_vl.py --data-dir data ...
"""

from finscribe.cli import script

if __name__ == "__main__":
    raise SystemExit(script("train_finscribe_vl.py"))
