"""The Trainer that `finscribe train` runs: transformers' Trainer plus what FinScribe's runs need.

- an optional separate learning rate for the vision encoder (`--vision-lr`);
- no padding mask on right-padded batches, so sdpa runs its causal kernel (same loss, faster);
- checkpoints that carry the whole run's loss sum, and resume that loads PaddleOCR-VL's saved
  key layout and stops cleanly at max_steps;
- `--seed` ordering the batch_rebalance sampler's steps.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from peft import PeftModel
from transformers import PreTrainedModel, Trainer
from transformers.trainer_pt_utils import BatchRebalanceSampler

from finscribe.training.resume import write_loss_total


def is_vision(name: str) -> bool:
    return ".visual." in f".{name}"


class FinScribeTrainer(Trainer):
    """Trainer with an optional separate learning rate for the vision encoder's parameters, a
    checkpoint loader that understands PaddleOCR-VL's saved key layout, and --seed ordering the
    batch_rebalance sampler's steps."""

    def __init__(self, *args: Any, vision_lr: float | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.vision_lr = vision_lr
        self.loss_before_resume = 0.0  # Σ per-step loss of the steps before a resume (training/resume.py)

    def _save_checkpoint(self, model, trial):
        # The whole run's loss sum goes into the checkpoint BEFORE Trainer writes trainer_state.json
        # (its last file), so a complete checkpoint always has it.
        if self.args.should_save:
            folder = Path(self._get_output_dir(trial=trial)) / f"checkpoint-{self.state.global_step}"
            write_loss_total(folder, self.state.global_step,
                             self.loss_before_resume + self._total_loss_scalar + self._tr_loss.item())
        super()._save_checkpoint(model, trial)

    def compute_loss(self, model: Any, inputs: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        # CompletionCollator pads on the right, so the causal mask alone already keeps every real
        # token from seeing padding. Without the padding mask, sdpa runs its causal kernel, which
        # skips the masked half of each attention matrix: the same loss (padding positions carry
        # no labels), in less time per step (RESULTS.md, "The padding mask").
        mask = inputs.get("attention_mask")
        if mask is not None and bool((mask[:, 1:] <= mask[:, :-1]).all()):
            inputs = {key: value for key, value in inputs.items() if key != "attention_mask"}
        return super().compute_loss(model, inputs, *args, **kwargs)

    def _get_train_sampler(self, train_dataset: Any = None) -> Any:
        sampler = super()._get_train_sampler(train_dataset)
        if isinstance(sampler, BatchRebalanceSampler):  # it shuffles with a fixed seed of its own (42): use --seed
            sampler.seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
        return sampler

    def _run_epoch(self, *args: Any, **kwargs: Any) -> None:
        # Resumed from a checkpoint at max_steps (a kill during the final save): Trainer would run
        # one more step before it checks max_steps. Train none; _finalize_training logs the summary.
        if 0 < self.state.max_steps <= self.state.global_step:
            self.control.should_training_stop = True
            return
        super()._run_epoch(*args, **kwargs)

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "train_loss" in logs and self.state.global_step > 0:  # the summary: the mean over the WHOLE run
            logs = {**logs, "train_loss": (self.loss_before_resume + self._total_loss_scalar) / self.state.global_step}
        super().log(logs, start_time)

    def create_optimizer(self, model=None):
        optimizer = super().create_optimizer(model)
        if self.vision_lr is None:
            return optimizer
        names = {id(p): n for n, p in (model or self.model).named_parameters()}
        groups = []
        for group in optimizer.param_groups:
            vision = [p for p in group["params"] if is_vision(names.get(id(p), ""))]
            other = [p for p in group["params"] if not is_vision(names.get(id(p), ""))]
            settings = {k: v for k, v in group.items() if k != "params"}
            groups += [{**settings, "params": other}] if other else []
            groups += [{**settings, "params": vision, "lr": self.vision_lr}] if vision else []
        # Rebuild (it has no state yet) with the same optimizer class/kwargs, vision params in own groups.
        optimizer_cls, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, model or self.model)
        self.optimizer = optimizer_cls(groups, **optimizer_kwargs)
        return self.optimizer

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):

        model = self.model if model is None else model
        if self.is_fsdp_enabled or self.is_deepspeed_enabled or isinstance(model, PeftModel) \
                or not isinstance(model, PreTrainedModel):
            return super()._load_from_checkpoint(resume_from_checkpoint, model)
        # save_pretrained writes PaddleOCR-VL in the original checkpoint's key layout (mlp_AR.*,
        # visual.*, model.layers.*); Trainer's plain load_state_dict(strict=False) matches none of
        # those keys and silently resumes from the *current* weights. from_pretrained maps them.
        loaded = type(model).from_pretrained(resume_from_checkpoint, dtype=model.dtype)
        model.load_state_dict(loaded.state_dict(), strict=True)
