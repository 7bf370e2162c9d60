"""Real multi-process data-parallel training: torchrun, 2 CPU ranks (gloo), the tiny model;
`--sampling batch_rebalance` across ranks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from conftest import LONG_ANSWER, write_records

# one thread per rank on the 2 cores; no WORLD_SIZE inherited, so the one-process runs are one process
ENV = {**{k: v for k, v in os.environ.items() if k != "WORLD_SIZE"}, "OMP_NUM_THREADS": "1",
       "TOKENIZERS_PARALLELISM": "false"}

DRIVER = textwrap.dedent('''
    import hashlib, os, sys
    import torch
    from transformers import TrainerCallback
    from finscribe.training.train import TrainConfig, train

    class Checksum(TrainerCallback):
        """Each rank writes a hash of its own parameters when training ends."""
        def on_train_end(self, args, state, control, model=None, **kwargs):
            digest = hashlib.sha256()
            for name, param in sorted(model.named_parameters()):
                digest.update(name.encode()); digest.update(param.detach().cpu().numpy().tobytes())
            with open(os.path.join(sys.argv[3], f"rank{os.environ['RANK']}.txt"), "w") as handle:
                handle.write(f"{digest.hexdigest()} {state.global_step} {args.world_size}")

    torch.set_num_threads(1)
    train(TrainConfig(data=sys.argv[1], model=sys.argv[2], output_dir=os.path.join(sys.argv[3], "run"), max_steps=3,
                      batch_size=2, gradient_accumulation_steps=1, learning_rate=1e-3, save_steps=1000, logging_steps=1,
                      report_to=("none",), eval_generate_samples=0), callbacks=[Checksum()])
''')


def test_torchrun_two_ranks_end_with_identical_weights(records_jsonl, tiny_model_dir, tmp_path):
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(driver), str(records_jsonl), str(tiny_model_dir), str(tmp_path)]
    result = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-6000:]
    rank0 = (tmp_path / "rank0.txt").read_text().split()
    rank1 = (tmp_path / "rank1.txt").read_text().split()
    assert rank0[1:] == ["3", "2"]  # 3 optimizer steps; the Trainer ran data-parallel over 2 ranks
    assert rank0 == rank1  # DDP kept the replicas identical
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == [1, 2, 3]  # only rank 0 logs
    assert (tmp_path / "run" / "model.safetensors").is_file()


def test_batch_rebalance_across_two_ranks_trains_each_step_on_the_same_records_as_one_process(tiny_model_dir, tmp_path):
    """The rebalance sampler is rank-aware: every rank draws the same step of batch x accumulation x ranks
    records (seeded alike) and takes its own length-cut micro-batches. So 2 ranks x 2 micro-batches, and
    2 ranks x 1 (allowed: still 2 micro-batches per step), log the loss of one process cutting the same
    8 records into 4 micro-batches, step for step, over more than one epoch (were the epoch not forwarded
    to the sampler under DDP, accelerate's shard wrapper would hide it, the ranks would redraw epoch 1's
    order at step 3 and their loss would part from the one process's)."""
    answers = [f'{{"total":"{i}.00"}}' for i in range(9)] + [LONG_ANSWER] * 3
    data = tmp_path / "records.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in write_records(tmp_path / "crops", answers)), encoding="utf-8")
    train = ["-m", "finscribe.training.train", "--data", str(data), "--model", str(tiny_model_dir), "--max-steps", "3",
             "--sampling", "batch_rebalance", "--learning-rate", "1e-3", "--warmup-ratio", "0", "--logging-steps", "1",
             "--save-steps", "1000", "--report-to", "none", "--eval-generate-samples", "0"]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    runs = {"one": [sys.executable, *train, "--batch-size", "2", "--gradient-accumulation-steps", "4"],
            "two_by_two": [*torchrun, *train, "--batch-size", "2", "--gradient-accumulation-steps", "2"],
            "two_by_one": [*torchrun, *train, "--batch-size", "4", "--gradient-accumulation-steps", "1"]}
    losses = {}
    for name, cmd in runs.items():
        result = subprocess.run([*cmd, "--output-dir", str(tmp_path / name)], env=ENV, capture_output=True, text=True,
                                timeout=300)
        assert result.returncode == 0, result.stderr[-6000:]
        rows = [json.loads(line) for line in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
        losses[name] = {r["step"]: r["loss"] for r in rows if "loss" in r}
    assert sorted(losses["one"]) == [1, 2, 3]  # 12 records, 8 a step: step 2 is the epoch's last 4, step 3 the next epoch's first 8
    assert len(set(losses["one"].values())) == 3
    for name in ("two_by_two", "two_by_one"):
        assert losses[name].keys() == losses["one"].keys()
        for step, loss in losses["one"].items():
            assert abs(losses[name][step] - loss) <= 1e-4 * loss, (name, losses)
