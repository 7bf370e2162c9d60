#!/usr/bin/env bash
# Make the committed tiny region detector (finscribe/assets/tiny_layout) from synthetic pages, the
# way it was made (2026-12-04/05: ~345 min on a loaded 2-core machine, one torch thread):
#   1. 1,400 synthetic pages (seed 1001) and 2,000 more (seed 1002): 60 % drawn by the layout
#      composer, 30 % degraded; 3,000 more each (seeds 1003-1006): 70 % composed,
#      35 % degraded; the layout `minimal` and the composed family `composed_banner` are held out
#      (test split only);
#   2. phase 1: 900 steps from random weights; phases 2-6: 1,300, 1,200, 1,000, 1,000 and 1,500
#      more on the first 1,400 pages; phase 7: 2,000 more on the first two sets; phase 8: 3,000
#      more on the first three; phase 9: 3,000 more on the first four; phase 10: 3,000 more on the first five; phase 11: 3,000 more on all six. Each phase starts from the one
#      before (--init-from) with a fresh warm-up + cosine; each is resumable
#      (--resume-from-checkpoint latest);
#   3. benchmarks/layout.py on 200 fresh pages (seed 990001) writes the held-out figures into the card.
#     bash scripts/make_tiny_layout.sh [WORK_DIR]      (default data/layout; nothing there is committed)
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-data/layout}
fs=.venv/bin/finscribe
nice -n 10 $fs generate --num-samples 1400 --output-dir "$work/pages" --seed 1001 --composed-share 0.6 --degrade 0.3
nice -n 10 $fs generate --num-samples 2000 --output-dir "$work/pages2" --seed 1002 --composed-share 0.6 --degrade 0.3
nice -n 10 $fs generate --num-samples 3000 --output-dir "$work/pages3" --seed 1003 --composed-share 0.7 --degrade 0.35
nice -n 10 $fs generate --num-samples 3000 --output-dir "$work/pages4" --seed 1004 --composed-share 0.7 --degrade 0.35
nice -n 10 $fs generate --num-samples 3000 --output-dir "$work/pages5" --seed 1005 --composed-share 0.7 --degrade 0.35
nice -n 10 $fs generate --num-samples 3000 --output-dir "$work/pages6" --seed 1006 --composed-share 0.7 --degrade 0.35
common=(--batch-size 4 --eval-limit 40 --save-steps 100 --save-total-limit 2)
data=(--data "$work/pages/training_manifest.json")
resume() { [ -d "$1" ] && ls -d "$1"/checkpoint-* >/dev/null 2>&1 && echo "--resume-from-checkpoint latest" || true; }
[ -f "$work/phase1/model.safetensors" ] || nice -n 10 $fs train-layout "${data[@]}" "${common[@]}" --output-dir "$work/phase1" --max-steps 900 \
    --eval-steps 300 --seed 0 $(resume "$work/phase1")
# Each later phase starts from the one before with a fresh warm-up + cosine (--init-from).
phase() {  # phase N STEPS EVAL_STEPS [SEED, default N-1]
  [ -f "$work/phase$1/model.safetensors" ] || nice -n 10 $fs train-layout "${data[@]}" "${common[@]}" --output-dir "$work/phase$1" \
      --init-from "$work/phase$(($1 - 1))" --max-steps "$2" --warmup-steps 50 --eval-steps "$3" --seed "${4:-$(($1 - 1))}" \
      $(resume "$work/phase$1")
}
phase 2 1300 650
phase 3 1200 600
phase 4 1000 500
phase 5 1000 500 5
phase 6 1500 750 6
data+=("$work/pages2/training_manifest.json")  # from phase 7 on: 2,000 more pages (seed 1002)
phase 7 2000 1000 7
data+=("$work/pages3/training_manifest.json")  # from phase 8 on: 3,000 more, 70 % composed, 35 % degraded (seed 1003)
phase 8 3000 1500 8
data+=("$work/pages4/training_manifest.json")  # phase 9: 3,000 more of the same mix (seed 1004)
phase 9 3000 1500 9
data+=("$work/pages5/training_manifest.json")  # phase 10: 3,000 more of the same mix (seed 1005)
phase 10 3000 1500 10
data+=("$work/pages6/training_manifest.json")  # phase 11: 3,000 more of the same mix (seed 1006)
phase 11 3000 1500 11
last=phase11
asset=finscribe/assets/tiny_layout
rm -rf "$asset" && mkdir -p "$asset"
for f in config.json model.safetensors preprocessor_config.json train_layout_config.json training_data.json val_metrics.json metrics.jsonl loss_curve.png; do
  cp "$work/$last/$f" "$asset/"
done
nice -n 10 .venv/bin/python benchmarks/layout.py --layout-model "$asset" --pages 200 --output "$work/layout_benchmark.json" --write-card
