"""Training: outputs, per-token loss normalisation, exact resume, vision options, overfitting."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from conftest import LONG_ANSWER, write_records

from finscribe.errors import FinScribeError
from finscribe.model import load_model
from finscribe.training.collate import IGNORE_INDEX, CompletionCollator, with_token_lengths
from finscribe.training.train import (
    TrainConfig,
    TrainingDataError,
    load_splits,
    main,
    prepare_model,
    train,
    training_arguments,
)
from finscribe.training.trainer import FinScribeTrainer


def _weights(folder):
    """Parameters by module name (the files use the original checkpoint's key names)."""
    model, _ = load_model(folder, device="cpu", dtype="float32")
    return {name: param.detach() for name, param in model.named_parameters()}


def _config(data, model, out, **overrides):
    values = dict(data=data, model=str(model), output_dir=out, max_steps=2, batch_size=2, gradient_accumulation_steps=1,
                  learning_rate=1e-3, logging_steps=1, save_steps=1000, report_to=("none",), eval_generate_samples=0)
    values.update(overrides)
    return TrainConfig(**values)


def test_full_sft_writes_a_loadable_run(records_jsonl, tiny_model_dir, tmp_path):
    out = train(_config(records_jsonl, tiny_model_dir, tmp_path / "run", max_steps=2, save_steps=1,
                        report_to=("tensorboard",), eval_generate_samples=2, max_new_tokens=8))
    names = {p.name for p in out.iterdir()}
    assert {"config.json", "train_config.json", "metrics.jsonl", "loss_curve.png", "model.safetensors", "tokenizer.json",
            "chat_template.jinja", "checkpoint-1", "checkpoint-2", "runs"} <= names
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == [1, 2]
    assert any("eval_loss" in r for r in rows) and any("eval_field_accuracy" in r for r in rows)
    assert json.loads((out / "train_config.json").read_text())["stage"] == "TrainConfig"
    trained_on = json.loads((out / "training_data.json").read_text())  # fields per region of the training data
    assert trained_on["train_records"] == 8
    assert trained_on["field_coverage"]["totals_section"]["fields"] == {"total": 8}
    before, after = _weights(tiny_model_dir), _weights(out)
    assert any(not torch.equal(before[k], after[k]) for k in before)  # full SFT moves the weights
    model, processor = load_model(out, device="cpu")  # the run folder loads like a checkpoint
    assert processor.tokenizer.eos_token == "</s>"


def _answer_token_losses(model_dir, records):
    """Per record: the summed answer-token cross-entropy (a graph to backprop) and the token count."""
    model, processor = load_model(model_dir, device="cpu", dtype="float32")
    collator = CompletionCollator(processor)
    token_sums, counts = [], []
    for record in records:
        batch = collator([record])
        logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits[0, :-1]
        labels = batch["labels"][0, 1:]
        token_sums.append(torch.nn.functional.cross_entropy(logits, labels, ignore_index=IGNORE_INDEX, reduction="sum"))
        counts.append(int((labels != IGNORE_INDEX).sum()))
    return model, token_sums, counts


def _gradient(model, loss, name):
    model.zero_grad()
    loss.backward(retain_graph=True)
    return dict(model.named_parameters())[name].grad.clone()


SGD_STEP = dict(optim="sgd", learning_rate=1.0, warmup_ratio=0.0, lr_scheduler="constant", max_grad_norm=0.0)
PROBED = "model.language_model.layers.0.mlp.down_proj.weight"


def test_loss_is_normalised_per_answer_token_across_accumulation(tiny_model_dir, tmp_path):
    """Two accumulated micro-batches, one long and one short answer: the update must equal the
    gradient of (sum of all answer-token losses) / (all answer tokens) — each token weighs the same."""
    records = write_records(tmp_path / "crops", [LONG_ANSWER, '{"total":"1"}'])
    data = tmp_path / "r.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in records))
    out = train(_config(data, tiny_model_dir, tmp_path / "run", max_steps=1, batch_size=1, gradient_accumulation_steps=2,
                        **SGD_STEP))
    update = _weights(tiny_model_dir)[PROBED] - _weights(out)[PROBED]  # SGD, lr 1: update == accumulated gradient

    model, token_sums, counts = _answer_token_losses(tiny_model_dir, records)
    assert counts[0] > 3 * counts[1]
    per_token = _gradient(model, (token_sums[0] + token_sums[1]) / sum(counts), PROBED)
    per_sample = _gradient(model, (token_sums[0] / counts[0] + token_sums[1] / counts[1]) / 2, PROBED)  # naive averaging
    torch.testing.assert_close(update, per_token, rtol=1e-3, atol=1e-7)
    assert not torch.allclose(update, per_sample, rtol=1e-2, atol=1e-7)


def test_resume_from_checkpoint_is_exact(records_jsonl, tiny_model_dir, tmp_path):
    common = dict(max_steps=4, batch_size=2, gradient_accumulation_steps=2, save_steps=2, learning_rate=2e-3)
    straight = train(_config(records_jsonl, tiny_model_dir, tmp_path / "straight", **common))
    resumed = train(_config(records_jsonl, tiny_model_dir, tmp_path / "resumed", **common,
                            resume_from_checkpoint=str(straight / "checkpoint-2")))
    a, b, half = _weights(straight), _weights(resumed), _weights(straight / "checkpoint-2")
    assert any(not torch.equal(a[k], half[k]) for k in a)  # the second half did train
    # resumed into a new folder: its metrics start from the checkpoint's history and cover the whole run
    assert [r["step"] for r in _rows(resumed) if "loss" in r] == [1, 2, 3, 4]
    [whole] = [r["train_loss"] for r in _rows(resumed) if "train_loss" in r]
    assert whole == pytest.approx([r["train_loss"] for r in _rows(straight) if "train_loss" in r][0], rel=1e-5)
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6)


def _rows(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_latest_resumes_from_the_newest_complete_checkpoint_with_whole_run_metrics(records_jsonl, tiny_model_dir, tmp_path):
    """A kill while checkpoint-4 was being saved: `latest` resumes from checkpoint-2, and the run
    ends as if it had never stopped (weights, per-step rows once each, whole-run train_loss)."""
    common = dict(max_steps=4, batch_size=2, gradient_accumulation_steps=1, save_steps=2, learning_rate=2e-3,
                  save_total_limit=None)
    straight = train(_config(records_jsonl, tiny_model_dir, tmp_path / "straight", **common))
    [summary] = [r for r in _rows(straight) if "train_loss" in r]
    run = tmp_path / "killed"
    shutil.copytree(straight, run)
    # the killed run: rows up to step 4 logged, checkpoint-4 half written, no summary, no final model
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _rows(straight) if "train_loss" not in r))
    (run / "checkpoint-4" / "trainer_state.json").unlink()
    (run / "checkpoint-4" / "model.safetensors").write_bytes(b"\0" * 100)
    (run / "checkpoint-6").mkdir()  # an empty folder from an even later interrupted save
    (run / "model.safetensors").unlink()
    resumed = train(_config(records_jsonl, tiny_model_dir, run, **common, resume_from_checkpoint="latest"))
    rows = _rows(resumed)
    assert [r["step"] for r in rows if "loss" in r] == [1, 2, 3, 4]  # each step once
    [resumed_summary] = [r for r in rows if "train_loss" in r]
    assert resumed_summary["train_loss"] == pytest.approx(summary["train_loss"], rel=1e-5)  # not the last 2 steps' mean
    losses = [r["loss"] for r in rows if "loss" in r]
    assert resumed_summary["train_loss"] == pytest.approx(sum(losses) / 4, rel=1e-5)
    a, b = _weights(straight), _weights(resumed)
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6)
    assert not (run / "checkpoint-6").exists() and (run / "checkpoint-4" / "trainer_state.json").is_file()


def test_resume_refuses_incomplete_checkpoints_clearly(tmp_path):
    from finscribe.training.resume import ResumeError, checked_checkpoint, latest_complete_checkpoint, loss_total

    (tmp_path / "checkpoint-2").mkdir()
    (tmp_path / "checkpoint-2" / "model.safetensors").write_bytes(b"x" * 10)
    (tmp_path / "checkpoint-2" / "trainer_state.json").write_text('{"global_step": 2, "log_h')  # cut by the kill
    with pytest.raises(ResumeError, match=r"no complete checkpoint .*checkpoint-2 \(no readable trainer_state.json\)"):
        latest_complete_checkpoint(tmp_path)
    with pytest.raises(ResumeError, match="incomplete checkpoint"):
        checked_checkpoint(tmp_path / "checkpoint-2")
    # an older checkpoint without loss_total.json: estimated from its logged losses
    state = {"global_step": 4, "log_history": [{"step": 2, "loss": 1.0}, {"step": 3, "loss": 4.0}]}
    (tmp_path / "checkpoint-2" / "trainer_state.json").write_text(json.dumps(state))
    assert loss_total(tmp_path / "checkpoint-2") == pytest.approx((1.0 * 2 + 4.0 * 1) * 4 / 3)


def test_freeze_vision_and_vision_lr(records_jsonl, tiny_model_dir, tmp_path):
    out = train(_config(records_jsonl, tiny_model_dir, tmp_path / "frozen", max_steps=1, warmup_ratio=0.0,
                        freeze_vision=True))
    before, after = _weights(tiny_model_dir), _weights(out)
    vision = [k for k in before if ".visual." in f".{k}"]
    assert vision and all(torch.equal(before[k], after[k]) for k in vision)
    assert not torch.equal(before["model.projector.linear_1.weight"], after["model.projector.linear_1.weight"])

    config = _config(records_jsonl, tiny_model_dir, tmp_path / "vlr", vision_lr=1e-5, learning_rate=1e-3)
    model, processor = prepare_model(config, torch.float32)
    trainer = FinScribeTrainer(model=model, args=training_arguments(config, bf16=False, has_val=False),
                               vision_lr=config.vision_lr)
    optimizer = trainer.create_optimizer()
    names = {id(p): n for n, p in model.named_parameters()}
    for group in optimizer.param_groups:
        in_vision = {".visual." in f".{names[id(p)]}" for p in group["params"]}
        assert len(in_vision) == 1
        assert group["lr"] == (1e-5 if in_vision.pop() else 1e-3)
    assert sum(len(g["params"]) for g in optimizer.param_groups) == sum(1 for p in model.parameters() if p.requires_grad)


def _image_tokens(processor, size):
    from PIL import Image

    grid = processor.image_processor(images=[Image.new("RGB", size, "white")], return_tensors="pt")["image_grid_thw"]
    return int(grid.prod()) // processor.image_processor.merge_size ** 2


def test_max_pixels_is_trained_with_and_saved_with_the_processor(records_jsonl, tiny_model_dir, tmp_path):
    """A 1,000 x 600 crop is 600,000 px: the tiny model's own cap (200,704) shrinks it to ~256 image
    tokens; with --max-pixels 700,000 it keeps its size (~765 tokens), in training and once loaded."""
    _, own = load_model(tiny_model_dir, device="cpu")
    assert _image_tokens(own, (1000, 600)) <= 256
    config = _config(records_jsonl, tiny_model_dir, tmp_path / "big", max_steps=1, max_pixels=700_000)
    _, prepared = prepare_model(config, torch.float32)
    assert _image_tokens(prepared, (1000, 600)) > 700
    out = train(config)
    _, saved = load_model(out, device="cpu")
    assert saved.image_processor.size["longest_edge"] == 700_000
    assert _image_tokens(saved, (1000, 600)) == _image_tokens(prepared, (1000, 600))
    assert _image_tokens(saved, (200, 100)) == _image_tokens(own, (200, 100))  # small crops: unchanged
    with pytest.raises(ValueError, match="max-pixels"):
        prepare_model(_config(records_jsonl, tiny_model_dir, tmp_path / "tiny", max_pixels=1_000), torch.float32)
    with pytest.raises(ValueError, match="max-pixels must be >= 784"):
        _config(records_jsonl, tiny_model_dir, tmp_path / "zero", max_pixels=10)


def test_cli_errors_are_clear(tmp_path, tiny_model_dir):
    with pytest.raises(TrainingDataError, match="found no training_manifest.json"):
        main(["--data-dir", str(tmp_path), "--model", str(tiny_model_dir), "--output-dir", str(tmp_path / "o")])
    with pytest.raises(SystemExit):  # neither --data-dir nor --data
        main(["--model", str(tiny_model_dir)])


def test_replay_from_a_missing_error_dir_is_a_clear_error(records_jsonl, tiny_model_dir, tmp_path):
    with pytest.raises(FinScribeError, match=r"nowhere"):
        main(["--data", str(records_jsonl), "--model", str(tiny_model_dir), "--output-dir", str(tmp_path / "o"),
              "--hard-samples", str(tmp_path / "nowhere"), "--max-steps", "1"])
    assert not (tmp_path / "o" / "model.safetensors").exists()


OVERFIT_TARGETS = ['{"total":"12.50"}', '{"total":"7.00"}', '{"total":"390.25"}', '{"total":"4.99"}']


def _overfit(tiny_model_dir, tmp_path, targets, steps):
    from finscribe.inference import predict

    records = write_records(tmp_path / "crops", targets, size=(224, 56), font_size=30)
    data = tmp_path / "r.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in records))
    out = train(_config(data, tiny_model_dir, tmp_path / "run", max_steps=steps, batch_size=len(targets),
                        learning_rate=1e-3, warmup_ratio=0.1, logging_steps=10))
    model, processor = load_model(out, device="cpu")
    predictions = predict(model, processor, [r["image"] for r in records], "totals_section", max_new_tokens=24)
    assert [p.raw_text for p in predictions] == targets
    assert [p.parsed for p in predictions] == [json.loads(t) for t in targets]
    assert all(p.error is None and not p.repetition for p in predictions)


def test_overfit_one_crop_fast(tiny_model_dir, tmp_path):
    """Masking, labels, EOS, prompt rendering, generation and parsing fit together: one crop
    trained for a few dozen steps greedy-decodes its exact JSON and stops at EOS."""
    _overfit(tiny_model_dir, tmp_path, OVERFIT_TARGETS[:1], steps=40)


@pytest.mark.slow
def test_overfit_four_crops_reads_the_image(tiny_model_dir, tmp_path):
    """Four crops with different totals: the answer can only come from the image (~100 s on 2 busy cores)."""
    _overfit(tiny_model_dir, tmp_path, OVERFIT_TARGETS, steps=300)


def test_training_arguments_are_built_from_the_config(tmp_path):
    """Every `arg(trainer=...)` names a real TrainingArguments field and reaches it unchanged."""
    import dataclasses

    from transformers import TrainingArguments

    from finscribe.config import trainer_arguments
    from finscribe.training.train import TrainConfig, training_arguments

    config = TrainConfig(data=(tmp_path / "r.jsonl",), output_dir=tmp_path / "o", epochs=2.5, batch_size=3,
                         learning_rate=7e-4, seed=11, dataloader_workers=1, warmup_ratio=0.2, report_to=("none",))
    wanted = trainer_arguments(config)
    assert set(wanted) <= {f.name for f in dataclasses.fields(TrainingArguments)}
    args = training_arguments(config, bf16=False, has_val=False)
    assert {name: getattr(args, name) for name in wanted} == wanted
    assert (args.num_train_epochs, args.per_device_eval_batch_size, args.data_seed) == (2.5, 3, 11)


@pytest.mark.parametrize("enabled", [False, True])
def test_activation_checkpointing_reaches_the_trainer_without_deprecation_warnings(tmp_path, enabled):
    """`--gradient-checkpointing` is set under whichever name this transformers takes (5.2x renamed it
    activation_checkpointing and warns on the old one), with non-reentrant recomputation when on."""
    import warnings

    from finscribe.training.train import TrainConfig, training_arguments

    config = TrainConfig(data=(tmp_path / "r.jsonl",), output_dir=tmp_path / "o", gradient_checkpointing=enabled,
                         report_to=("none",))
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*checkpointing.*deprecated", category=FutureWarning)
        args = training_arguments(config, bf16=False, has_val=False)
    assert args.gradient_checkpointing is enabled
    assert (args.gradient_checkpointing_kwargs == {"use_reentrant": False}) is enabled


class _Killed(Exception):
    """The kill, raised by `_KillAt` at the exact moment a test names."""


class _KillAt:
    """A TrainerCallback that 'kills' the run at one event of one step: `on_save` at step N is
    right after checkpoint-N is complete (the final save, when N = max_steps), `on_log` at step N
    before any checkpoint if N < save_steps. Deterministic: no timing, no signals."""

    def __new__(cls, event, step):
        from transformers import TrainerCallback

        def hook(self, args, state, control, **kwargs):
            if state.global_step == step:
                raise _Killed(f"{event} at step {step}")

        return type("KillAt", (TrainerCallback,), {event: hook})()


def test_a_kill_in_the_final_save_resumes_without_another_step(records_jsonl, tiny_model_dir, tmp_path):
    """Issue 27: killed after checkpoint-3 (= max_steps) was written, before the model and summary.
    `latest` resumes from checkpoint-3 and trains no 4th step: same rows, same summary, and (with a
    constant learning rate, where a 4th step would move them) the same weights. (3 steps of an
    epoch of 4: at an epoch's end the Trainer's loop has nothing left to run anyway.)"""
    common = dict(max_steps=3, batch_size=2, save_steps=3, learning_rate=2e-3, lr_scheduler="constant",
                  warmup_ratio=0.0, save_total_limit=None)
    straight = train(_config(records_jsonl, tiny_model_dir, tmp_path / "straight", **common))
    run = tmp_path / "killed"
    with pytest.raises(_Killed):
        train(_config(records_jsonl, tiny_model_dir, run, **common), callbacks=[_KillAt("on_save", 3)])
    assert (run / "checkpoint-3" / "trainer_state.json").is_file() and not (run / "model.safetensors").exists()
    resumed = train(_config(records_jsonl, tiny_model_dir, run, **common, resume_from_checkpoint="latest"))
    rows, expected = _rows(resumed), _rows(straight)
    assert [r["step"] for r in rows if "loss" in r] == [1, 2, 3]  # no step-4 row
    [summary], [want] = [r for r in rows if "train_loss" in r], [r for r in expected if "train_loss" in r]
    assert summary["step"] == 3 and summary["epoch"] == want["epoch"]
    assert summary["train_loss"] == pytest.approx(want["train_loss"], rel=1e-6)
    a, b = _weights(straight), _weights(resumed)
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)
    assert (resumed / "README.md").is_file() and (resumed / "loss_curve.png").is_file()


def test_a_kill_before_the_first_checkpoint_restarts_cleanly(records_jsonl, tiny_model_dir, tmp_path, caplog):
    """Issue 27: killed at step 2, before the first checkpoint (save_steps 1000). `latest` starts
    from step 0 and says so; so does a plain fresh start. Neither appends to the killed run's rows."""
    common = dict(max_steps=4, batch_size=2, learning_rate=2e-3)
    straight = train(_config(records_jsonl, tiny_model_dir, tmp_path / "straight", **common))
    steps = [r["step"] for r in _rows(straight) if "loss" in r]
    assert steps == [1, 2, 3, 4]
    for resume in ("latest", None):
        run = tmp_path / f"killed_{resume}"
        with pytest.raises(_Killed):
            train(_config(records_jsonl, tiny_model_dir, run, **common), callbacks=[_KillAt("on_log", 2)])
        assert [r["step"] for r in _rows(run)] == [1, 2] and not any(run.glob("checkpoint-*"))
        caplog.clear()
        with caplog.at_level("WARNING"):
            again = train(_config(records_jsonl, tiny_model_dir, run, **common, resume_from_checkpoint=resume))
        assert [r["step"] for r in _rows(again) if "loss" in r] == steps  # each step once
        assert len([r for r in _rows(again) if "train_loss" in r]) == 1
        if resume == "latest":
            assert "no complete checkpoint" in caplog.text and "starting from step 0" in caplog.text
        assert "rows of an earlier run in this folder removed" in caplog.text
        a, b = _weights(straight), _weights(again)
        for key in a:
            torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6)


@pytest.mark.parametrize("sampling", ["group_by_length", "batch_rebalance"])
def test_length_aware_sampling_trains_and_evaluates(records_jsonl, tiny_model_dir, tmp_path, sampling):
    """--sampling group_by_length / batch_rebalance: the train and val sets carry estimated lengths
    and the Trainer's length-aware samplers run (val loss too)."""
    out = train(_config(records_jsonl, tiny_model_dir, tmp_path / "run", max_steps=2, save_steps=2, sampling=sampling,
                        gradient_accumulation_steps=2))
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == [1, 2] and any("eval_loss" in r for r in rows)
    assert training_arguments(_config(records_jsonl, tiny_model_dir, tmp_path / "o", sampling=sampling,
                                      gradient_accumulation_steps=2), False, True).train_sampling_strategy == sampling


def test_val_limit_validates_on_the_first_records_only(tmp_path, tiny_model_dir):
    records = [*write_records(tmp_path / "crops", ['{"total":"1"}'] * 3),
               *write_records(tmp_path / "crops", [f'{{"total":"{i}"}}' for i in range(5)], split="val")]
    data = tmp_path / "r.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in records))
    _, val = load_splits(_config(data, tiny_model_dir, tmp_path / "o", val_limit=2))
    assert [r["source_id"] for r in val] == ["val_000", "val_001"]
    _, val = load_splits(_config(data, tiny_model_dir, tmp_path / "o"))
    assert len(val) == 5
    with pytest.raises(ValueError, match="--val-limit must be >= 1"):
        _config(data, tiny_model_dir, tmp_path / "o", val_limit=0)


def test_batch_rebalance_keeps_each_step_a_random_mix_cut_by_length(tmp_path, tiny_model_dir):
    """Each optimizer step's micro-batches together hold --batch-size x --gradient-accumulation-steps
    distinct records, and are cut by length: the long answers share one micro-batch, so the
    short ones are not padded to them."""
    answers = ['{"total":"1"}'] * 6 + [LONG_ANSWER] * 2
    records = write_records(tmp_path / "crops", answers)
    data = tmp_path / "r.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in records))
    config = _config(data, tiny_model_dir, tmp_path / "o", sampling="batch_rebalance", batch_size=2, seed=7,
                     gradient_accumulation_steps=4)
    model, processor = prepare_model(config, torch.float32)
    train_set, _ = load_splits(config)
    trainer = FinScribeTrainer(model=model, args=training_arguments(config, bf16=False, has_val=False),
                               train_dataset=with_token_lengths(train_set, processor),
                               data_collator=CompletionCollator(processor))
    micro_batches = list(trainer.get_train_dataloader())
    assert len(micro_batches) == 4  # one step of 8 records
    answer_lengths = [sorted((batch["labels"] != IGNORE_INDEX).sum(dim=1).tolist()) for batch in micro_batches]
    assert sorted(n for lengths in answer_lengths for n in lengths) == sorted(
        (batch["labels"] != IGNORE_INDEX).sum().item() for batch in [CompletionCollator(processor)([r]) for r in train_set])
    # cut by length: the micro-batches are runs of the length-sorted step, their ranges never interleave
    ranges = sorted((lengths[0], lengths[-1]) for lengths in answer_lengths)
    assert all(high <= next_low for (_, high), (next_low, _) in zip(ranges, ranges[1:]))
    # so the long answers are padded together and the short ones only to each other
    long_batches = [lengths for lengths in answer_lengths if max(lengths) > 20]
    assert len(long_batches) <= 2 and all(min(lengths) > 20 for lengths in long_batches)
    assert trainer._get_train_sampler().seed == config.seed  # --seed orders the steps, not the sampler's own 42


def test_a_rebalanced_step_updates_the_weights_as_one_batch_of_its_records(tiny_model_dir, tmp_path):
    """batch_rebalance changes only the padding: a step of 4 records cut into 4 micro-batches by
    length gives the same update as one batch of the same 4 (the loss is normalised over the
    whole step's answer tokens either way)."""
    records = write_records(tmp_path / "crops", ['{"total":"1"}', LONG_ANSWER, '{"total":"22.50"}', '{"tax_amount":"7.00"}'])
    data = tmp_path / "r.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in records))
    one_batch = train(_config(data, tiny_model_dir, tmp_path / "one", max_steps=1, batch_size=4,
                              gradient_accumulation_steps=1, **SGD_STEP))
    rebalanced = train(_config(data, tiny_model_dir, tmp_path / "cut", max_steps=1, batch_size=1,
                               gradient_accumulation_steps=4, sampling="batch_rebalance", **SGD_STEP))
    before, a, b = _weights(tiny_model_dir), _weights(one_batch), _weights(rebalanced)
    assert not torch.equal(before[PROBED], a[PROBED])
    for name in before:
        torch.testing.assert_close(before[name] - a[name], before[name] - b[name], rtol=1e-3, atol=1e-7)


def test_right_padded_batches_train_without_the_padding_mask(tiny_model_dir, tmp_path):
    """The trainer drops the padding mask of right-padded batches (sdpa then runs its causal
    kernel): loss and gradients must equal the masked forward's; a left-padded batch keeps it."""
    from PIL import Image

    records = write_records(tmp_path / "crops", ['{"total":"1"}', LONG_ANSWER, '{"total":"22.50"}'])
    records = [{**record, "image": Image.open(record["image"]).convert("RGB")} for record in records]
    model, processor = load_model(tiny_model_dir, device="cpu", dtype="float32")
    batch = CompletionCollator(processor)(records)
    assert not batch["attention_mask"].all()  # padded
    trainer = FinScribeTrainer(model=model, args=training_arguments(_config(None, tiny_model_dir, tmp_path / "out"), False, False))
    seen = []
    hook = model.register_forward_pre_hook(lambda module, args, kwargs: seen.append("attention_mask" in kwargs), with_kwargs=True)

    def loss_and_gradient(compute):
        model.zero_grad()
        loss = compute()
        loss.backward()
        return loss.detach(), model.get_parameter(PROBED).grad.clone()

    masked = loss_and_gradient(lambda: model(**batch).loss)
    dropped = loss_and_gradient(lambda: trainer.compute_loss(model, dict(batch)))
    assert seen == [True, False]
    torch.testing.assert_close(dropped, masked, rtol=1e-5, atol=1e-7)

    left_padded = {**batch, "attention_mask": batch["attention_mask"].flip(1)}
    trainer.compute_loss(model, left_padded)
    hook.remove()
    assert seen[-1] is True


def test_batch_rebalance_resumes_mid_epoch_exactly(records_jsonl, tiny_model_dir, tmp_path):
    """A rebalanced run resumed from a checkpoint in the middle of an epoch skips the micro-batches
    already taken (the sampler's order is fixed by --seed and the epoch) and ends on the weights of
    the run that went straight through, into the next epoch."""
    common = dict(max_steps=6, batch_size=1, gradient_accumulation_steps=2, save_steps=3, learning_rate=2e-3,
                  sampling="batch_rebalance", seed=3)  # 8 records, 2 a step: checkpoint-3 is mid-epoch
    straight = train(_config(records_jsonl, tiny_model_dir, tmp_path / "straight", **common))
    resumed = train(_config(records_jsonl, tiny_model_dir, tmp_path / "resumed", **common,
                            resume_from_checkpoint=str(straight / "checkpoint-3")))
    losses = [{r["step"]: r["loss"] for r in _rows(run) if "loss" in r} for run in (straight, resumed)]
    assert sorted(losses[1]) == [1, 2, 3, 4, 5, 6]
    for step in (4, 5, 6):
        assert losses[1][step] == pytest.approx(losses[0][step], rel=1e-5), losses
    a, b = _weights(straight), _weights(resumed)
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6)


def test_batch_rebalance_needs_micro_batches(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with pytest.raises(ValueError, match="gradient-accumulation-steps 2 or more"):
        TrainConfig(sampling="batch_rebalance", gradient_accumulation_steps=1)
    monkeypatch.setenv("WORLD_SIZE", "2")  # under torchrun: one micro-batch per process is two per step
    assert TrainConfig(sampling="batch_rebalance", gradient_accumulation_steps=1).sampling == "batch_rebalance"
