"""``CrossModalDataModule``: batches of (x, y, class, index) for one split of a paired data set."""

from __future__ import annotations

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from bridgeeval.data.paired import PairedFeatures
from bridgeeval.data.splits import Split


def class_codes(data: PairedFeatures) -> torch.Tensor:
    """Classes for the max-margin loss: the data set's labels, else each item its own class."""
    if data.labels is None:
        return torch.arange(len(data))
    return torch.as_tensor(np.asarray(data.labels))


class CrossModalDataModule(pl.LightningDataModule):
    def __init__(self, data: PairedFeatures, split: Split, batch_size: int, seed: int, num_workers: int = 0):
        super().__init__()
        self.data, self.split = data, split
        self.batch_size, self.seed, self.num_workers = batch_size, seed, num_workers
        self.x = torch.from_numpy(data.input)
        self.y = torch.from_numpy(data.target)
        self.classes = class_codes(data)

    def subset(self, rows: np.ndarray) -> TensorDataset:
        idx = torch.as_tensor(rows, dtype=torch.long)
        return TensorDataset(self.x[idx], self.y[idx], self.classes[idx], torch.arange(len(idx)))

    def arrays(self, stage: str) -> tuple[torch.Tensor, torch.Tensor]:
        """The whole train or validation set (X, Y) in loader order, for neighbour caches."""
        idx = torch.as_tensor(self.split.train if stage == "train" else self.split.val, dtype=torch.long)
        return self.x[idx], self.y[idx]

    def train_dataloader(self) -> DataLoader:
        generator = torch.Generator().manual_seed(self.seed)
        return DataLoader(
            self.subset(self.split.train),
            batch_size=self.batch_size,
            shuffle=True,
            generator=generator,
            num_workers=self.num_workers,
        )

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.subset(self.split.val), batch_size=self.batch_size, num_workers=self.num_workers)
