"""The 🤗 Dataset of training records that `+` extends, as the seed's replay recipe writes it:

    normal_dataset = build_dataset(crops_dir=Path("data/crops"), annotations_dir=Path("data/annotations"))
    hard_samples = build_hard_sample_dataset(error_dir=Path("data/hard_samples"), region_type="totals_section")
    combined = normal_dataset + hard_samples[:len(normal_dataset) // 4]      # 80 % normal, 20 % hard
    train(TrainConfig(output_dir=Path("runs/replay"), model="models/tiny"), train_dataset=combined)

A plain `datasets.Dataset` has no `+`, and slicing it (`hard_samples[:k]`) gives a dict of
columns, so `RecordDataset` adds exactly one thing: `+` with another dataset, a dict of columns
(a slice) or a list of records, which concatenates them in order (`mix_datasets` in
finscribe.mining.replay_dataset does the shuffled, oversampling 80/20 mix). Everything else is
🤗 Datasets' own behaviour, unchanged.
"""

from __future__ import annotations

from typing import Any

import datasets

from finscribe.data.records import RECORD_KEYS


class RecordDataset(datasets.Dataset):
    """A `datasets.Dataset` of records (RECORD_KEYS columns) that supports `a + b`."""

    @classmethod
    def wrap(cls, dataset: datasets.Dataset) -> RecordDataset:
        """The same rows (same Arrow table, no copy) as a RecordDataset."""
        if isinstance(dataset, cls):
            return dataset
        return cls(dataset.data, info=dataset.info, split=dataset.split, indices_table=dataset._indices,
                   fingerprint=dataset._fingerprint)

    def _as_dataset(self, other: Any) -> datasets.Dataset:
        if isinstance(other, datasets.Dataset):
            data = other
        elif isinstance(other, dict):  # a slice: {"image": [...], "prompt": [...], ...}
            data = datasets.Dataset.from_dict({k: list(v) for k, v in other.items()})
        elif isinstance(other, list):
            data = datasets.Dataset.from_list(other) if other else datasets.Dataset.from_dict({k: [] for k in self.column_names})
        else:
            return NotImplemented
        missing = sorted(set(self.column_names) - set(data.column_names))
        if missing and len(data):
            raise ValueError(f"cannot add records without column(s) {missing}; records need {list(RECORD_KEYS)}")
        if not len(data):
            return self.select([])
        return data.select_columns(self.column_names).cast(self.features)

    def __add__(self, other: Any) -> RecordDataset:
        data = self._as_dataset(other)
        if data is NotImplemented:
            return NotImplemented
        return RecordDataset.wrap(datasets.concatenate_datasets([self, data]))

    def __radd__(self, other: Any) -> RecordDataset:
        data = self._as_dataset(other)
        if data is NotImplemented:
            return NotImplemented
        return RecordDataset.wrap(datasets.concatenate_datasets([data, self]))
