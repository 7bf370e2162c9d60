"""Real multi-process data-parallel training: torchrun, 2 CPU ranks (gloo), the tiny model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

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
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(driver), str(records_jsonl), str(tiny_model_dir), str(tmp_path)]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-6000:]
    rank0 = (tmp_path / "rank0.txt").read_text().split()
    rank1 = (tmp_path / "rank1.txt").read_text().split()
    assert rank0[1:] == ["3", "2"]  # 3 optimizer steps; the Trainer ran data-parallel over 2 ranks
    assert rank0 == rank1  # DDP kept the replicas identical
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == [1, 2, 3]  # only rank 0 logs
    assert (tmp_path / "run" / "model.safetensors").is_file()
