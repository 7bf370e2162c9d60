"""Generate the synthetic invoice training set (pages, region crops, labels, manifest).

    python examples/generate_training_data.py --num-samples 8000 --output-dir data/synthetic_invoices

Same flags as `finscribe generate --help`; this script only calls it.
"""


from finscribe.cli import run
from finscribe.synthetic.export import main

if __name__ == "__main__":
    raise SystemExit(run(main, prog="generate_training_data.py"))
