"""The record of a training run: :class:`EpochStats` per epoch, collected in a :class:`History`.

Taught in ``notebooks/06_end_to_end.ipynb`` (reading and plotting the curves of a run); :func:`segtutor.train.fit`
returns a :class:`History`, checkpoints (:mod:`segtutor.checkpoint`) store it as plain lists
(:meth:`History.to_dict`), and :func:`segtutor.viz.plot_history` draws it. ``segtutor.train`` re-exports both names.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, fields

__all__ = ["EpochStats", "History"]

@dataclass(frozen=True)
class EpochStats:
    """What one epoch of :func:`segtutor.train.fit` measured. ``val_*`` are ``None`` when ``fit`` had no ``val_data``.

    ``epoch`` counts from 1; ``train_loss`` is the mean loss over the epoch's training batches, weighted by
    their size (measured as the weights changed during the epoch); ``val_loss``, ``val_miou`` and ``val_pixel_accuracy`` are measured after the
    epoch; ``lr`` is the learning rate of the epoch's last step; ``seconds`` the wall time of the epoch.
    """

    epoch: int
    train_loss: float
    val_loss: float | None
    val_miou: float | None
    val_pixel_accuracy: float | None
    lr: float
    seconds: float


class History(Sequence):
    """The per-epoch record of a :func:`segtutor.train.fit` run: a read-only list of :class:`EpochStats`.

    ``history[-1].val_miou`` reads one epoch, ``history.train_loss`` one column (a list over epochs),
    ``history.plot()`` draws the curves, ``to_dict`` / ``from_dict`` convert to plain types for checkpoints.
    """

    COLUMNS = tuple(f.name for f in fields(EpochStats))

    def __init__(self, records: Sequence[EpochStats] = ()) -> None:
        self._records: list[EpochStats] = list(records)

    def __len__(self) -> int:
        return len(self._records)

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return History(self._records[index])
        return self._records[index]

    def __iter__(self) -> Iterator[EpochStats]:
        return iter(self._records)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, History) and self._records == other._records

    def __getattr__(self, name: str) -> list:
        if name in History.COLUMNS:
            return [getattr(r, name) for r in self._records]
        raise AttributeError(f"'History' has no attribute {name!r}; columns are {', '.join(History.COLUMNS)}")

    def append(self, record: EpochStats) -> None:
        self._records.append(record)

    def to_dict(self) -> dict[str, list]:
        """Columns as plain lists: ``{"epoch": [...], "train_loss": [...], ...}``."""
        return {name: [getattr(r, name) for r in self._records] for name in History.COLUMNS}

    @classmethod
    def from_dict(cls, data: Mapping[str, Sequence]) -> History:
        """Inverse of :meth:`to_dict`."""
        missing = [name for name in cls.COLUMNS if name not in data]
        if missing:
            raise ValueError(f"history dict lacks the column(s) {missing}; expected keys {list(cls.COLUMNS)}")
        lengths = {len(data[name]) for name in cls.COLUMNS}
        if len(lengths) != 1:
            raise ValueError(f"history columns have different lengths {sorted(lengths)}")
        n = lengths.pop()
        return cls([EpochStats(**{name: data[name][i] for name in cls.COLUMNS}) for i in range(n)])

    def plot(self):
        """Draw loss, mIoU / pixel accuracy and learning rate per epoch; returns the matplotlib Figure."""
        from .viz import plot_history

        return plot_history(self)

    def __repr__(self) -> str:
        def fmt(value: float | None) -> str:
            return "-" if value is None else f"{value:.4f}"

        lines = [f"History({len(self)} epochs)", "epoch  train_loss  val_loss  val_miou  val_acc  lr        seconds"]
        for r in self._records:
            lines.append(f"{r.epoch:5d}  {fmt(r.train_loss):>10}  {fmt(r.val_loss):>8}  {fmt(r.val_miou):>8}  "
                         f"{fmt(r.val_pixel_accuracy):>7}  {r.lr:<8.2e}  {r.seconds:7.2f}")
        return "\n".join(lines)
