"""Small stand-ins shared by the test files (not a test module)."""
from __future__ import annotations

from torch.utils.data import Dataset


class Items(Dataset):
    """A list of (image, mask) pairs as a dataset."""

    def __init__(self, items):
        self.items = list(items)

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]
