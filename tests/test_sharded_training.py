"""Sharded training launched for real on 2 CPU processes (gloo), the tiny model (issue 25, part 5).

- `accelerate launch` with the shipped `configs/accelerate/fsdp.yaml` and `deepspeed_zero2.yaml` trains
  through `finscribe train`; its loss matches one process with the same global batch, and a checkpoint
  it saved resumes from its step (not always step-for-step, see the test). ZeRO-2 shards the optimizer
  state over the CPU processes (DeepSpeed's CPU accelerator; skipped where DeepSpeed is not installed).
  The FSDP config, on CPU processes, is run data-parallel, not sharded: accelerate (1.16) enables FSDP
  only on an accelerator device. The test asserts that too, so the README stays true.
- The sharding itself: FSDP2 (`fully_shard`, the layer classes the config wraps) over the same 2 CPU
  processes, each holding half of the weights; loss against one process, and a distributed checkpoint
  saved sharded resumes step-for-step.

Slow (minutes; README "Many GPUs" has the times): `pytest -m slow tests/test_sharded_training.py`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import write_records

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
LOSS_TOLERANCE = 1e-4  # relative, per logged step: fp32 on both sides, only the reduction order differs


@pytest.fixture
def sixteen_crops(tmp_path):
    totals = [f'{{"total":"{i * 11}.{i}0","tax_amount":"{i}.{i}5"}}' for i in range(16)]
    path = tmp_path / "records.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in write_records(tmp_path / "crops", totals)), encoding="utf-8")
    return path


def _run(cmd: list[str], timeout: int = 900) -> None:
    done = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=timeout, cwd=REPO)
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-6000:])


def _losses(run: Path) -> dict[int, float]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in rows if "loss" in r}


def _close(a: dict[int, float], b: dict[int, float]) -> bool:
    return a.keys() == b.keys() and all(abs(a[s] - b[s]) <= LOSS_TOLERANCE * abs(a[s]) for s in a)


def _sharded_optimizer_files(checkpoint: Path) -> list[str]:
    """ZeRO's optimizer state files, one per process holding its shard (global_stepN/zero_pp_rank_R_*)."""
    return sorted(p.name for p in checkpoint.glob("global_step*/zero_pp_rank_*_optim_states.pt"))


@pytest.mark.parametrize("config", ["fsdp.yaml", "deepspeed_zero2.yaml"])
def test_accelerate_config_trains_on_two_cpu_processes_like_one_and_resumes(config, sixteen_crops, tiny_model_dir, tmp_path):
    if config.startswith("deepspeed"):
        pytest.importorskip("deepspeed", reason="DeepSpeed is the optional extra: pip install -e '.[deepspeed]'")
    train = ["-m", "finscribe.training.train", "--data", str(sixteen_crops), "--model", str(tiny_model_dir), "--max-steps", "20",
             "--gradient-accumulation-steps", "1", "--learning-rate", "1e-3", "--warmup-ratio", "0", "--logging-steps", "1",
             "--save-steps", "10", "--report-to", "none", "--eval-generate-samples", "0"]
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", f"configs/accelerate/{config}",
              "--num_processes", "2", "--mixed_precision", "no"]  # the configs' bf16 is for GPUs
    _run([sys.executable, *train, "--batch-size", "4", "--output-dir", str(tmp_path / "one")])
    _run([*launch, *train, "--batch-size", "2", "--output-dir", str(tmp_path / "two")])
    one, two = _losses(tmp_path / "one"), _losses(tmp_path / "two")
    assert sorted(two) == list(range(1, 21)) and two[20] < two[1] - 1  # it trained
    assert _close(one, two), (one, two)  # same global batch of 4 (2 per process), same loss at every step

    saved = {p.name for p in (tmp_path / "two" / "checkpoint-10").iterdir()}
    if config == "fsdp.yaml":
        # What accelerate did with the FSDP config on CPU processes: a data-parallel checkpoint (whole weights and
        # one optimizer file), not FSDP's sharded `pytorch_model_fsdp_0/` and `optimizer_0/` folders.
        assert {"model.safetensors", "optimizer.pt"} <= saved and not any(name.endswith("_0") for name in saved)
    else:  # ZeRO-2 for real: each process saved its own shard of the optimizer state
        assert _sharded_optimizer_files(tmp_path / "two" / "checkpoint-10") == [
            "zero_pp_rank_0_mp_rank_00_optim_states.pt", "zero_pp_rank_1_mp_rank_00_optim_states.pt"]

    # Resume: only checkpoint-10 of that launch, launched again; steps 11-20 as the uninterrupted run.
    (tmp_path / "resumed").mkdir()
    shutil.copytree(tmp_path / "two" / "checkpoint-10", tmp_path / "resumed" / "checkpoint-10")
    _run([*launch, *train, "--batch-size", "2", "--output-dir", str(tmp_path / "resumed"), "--resume-from-checkpoint", "latest"])
    resumed = _losses(tmp_path / "resumed")
    assert sorted(resumed)[-10:] == list(range(11, 21))
    # It continued from step 10's weights (a fresh start would log ~two[1]) and ends where the uninterrupted run
    # does. Not step-for-step: in 2 of 4 measured resumes (benchmarks/RESULTS.md, "Sharded training") the Trainer's
    # steps 11-20 were identical, in the others step 11 was already 0.05-0.3 % off (the same on a rerun).
    assert resumed[11] < two[1] - 1 and abs(resumed[11] - two[11]) < 0.02 * two[11]
    assert abs(resumed[20] - two[20]) < 0.05 * two[20], (resumed, two)


FSDP2_DRIVER = textwrap.dedent('''
    """FSDP2 on CPU processes: the tiny model sharded by the layer classes configs/accelerate/fsdp.yaml wraps."""
    import json, sys
    import torch, torch.distributed as dist, torch.distributed.checkpoint as dcp, yaml
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict
    from torch.distributed.fsdp import fully_shard
    from finscribe.model import load_model
    from finscribe.training.collate import IGNORE_INDEX, CompletionCollator

    data, model_dir, out, steps, save_at, resume_from = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.set_num_threads(1)
    model, processor = load_model(model_dir, device="cpu", dtype=torch.float32)
    model.config.use_cache = False
    wrap = set(yaml.safe_load(open("configs/accelerate/fsdp.yaml"))["fsdp_config"]["fsdp_transformer_layer_cls_to_wrap"].split(","))
    layers = [m for m in model.modules() if type(m).__name__ in wrap]
    for layer in layers:
        fully_shard(layer)
    fully_shard(model)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    records = [json.loads(line) for line in open(data)]
    collate = CompletionCollator(processor)
    GLOBAL = 4
    local = GLOBAL // world
    start = 0
    if resume_from != "-":
        model_state, optim_state = get_state_dict(model, optimizer)
        state = {"model": model_state, "optim": optim_state}
        dcp.load(state, checkpoint_id=resume_from)
        set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optim"])
        start = save_at
    losses = {}
    for step in range(start, steps):
        batch = collate([records[(step * GLOBAL + rank * local + i) % len(records)] for i in range(local)])
        tokens = (batch["labels"][:, 1:] != IGNORE_INDEX).sum().float()
        dist.all_reduce(tokens)  # the loss is the mean over the GLOBAL batch's answer tokens, as Trainer does
        loss = model(**batch, num_items_in_batch=tokens).loss
        (loss * world).backward()  # FSDP averages gradients over ranks
        optimizer.step()
        optimizer.zero_grad()
        total = loss.detach().clone()
        dist.all_reduce(total)
        losses[step + 1] = float(total)
        if step + 1 == save_at and resume_from == "-":
            model_state, optim_state = get_state_dict(model, optimizer)
            dcp.save({"model": model_state, "optim": optim_state}, checkpoint_id=out + "/checkpoint")
    params = list(model.parameters())
    report = {"world": world, "wrapped_layers": len(layers), "losses": losses,
              "sharded": all(type(p).__name__ == "DTensor" for p in params),
              "local_numel": sum(p.to_local().numel() for p in params), "numel": sum(p.numel() for p in params)}
    with open(f"{out}/rank{rank}.json", "w") as handle:
        json.dump(report, handle)
    dist.destroy_process_group()
''')


def test_fsdp2_shards_the_tiny_model_on_two_cpu_processes_like_one_and_resumes(sixteen_crops, tiny_model_dir, tmp_path):
    driver = tmp_path / "driver.py"
    driver.write_text(FSDP2_DRIVER)

    def run(nproc: int, out: Path, resume_from: str = "-") -> list[dict]:
        out.mkdir()
        _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc), str(driver),
              str(sixteen_crops), str(tiny_model_dir), str(out), "20", "10", resume_from])
        return [json.loads((out / f"rank{r}.json").read_text()) for r in range(nproc)]

    one = run(1, tmp_path / "one")[0]
    two = run(2, tmp_path / "two")
    assert two[0]["wrapped_layers"] == 8  # 4 decoder + 4 vision encoder layers: the config's class names exist
    for rank in two:  # every weight is a DTensor and each process holds about half of them
        assert rank["sharded"] and rank["world"] == 2 and rank["local_numel"] < 0.6 * rank["numel"]
    assert two[0]["local_numel"] + two[1]["local_numel"] == two[0]["numel"]
    losses = {int(s): v for s, v in two[0]["losses"].items()}
    assert losses[20] < losses[1] - 1  # it trained
    assert _close({int(s): v for s, v in one["losses"].items()}, losses), (one["losses"], losses)

    resumed = run(2, tmp_path / "resumed", resume_from=str(tmp_path / "two" / "checkpoint"))
    assert _close({int(s): v for s, v in resumed[0]["losses"].items()}, {s: losses[s] for s in range(11, 21)})
