"""Checkpoints: atomic writes, and reads that never run code from the file.

Taught in ``notebooks/06_end_to_end.ipynb`` (save a trained model, reload it, refuse a checkpoint of another
architecture); :func:`segtutor.train.fit` saves one after every epoch and resumes from it.

- :func:`save_checkpoint` writes the model's name, ``config`` and ``state_dict``, the optimizer state and
  plain extra values to a temporary file, flushes it and renames it over the target: a crash while saving
  leaves the previous checkpoint intact.
- :func:`load_checkpoint` reads with ``torch.load(weights_only=True)``, so a file holding other Python objects
  is refused without being executed, and refuses weights whose recorded ``config`` differs from the model's.

``segtutor.train`` re-exports :func:`save_checkpoint`, :func:`load_checkpoint` and :class:`CheckpointError`
(the public contract); this module does not import :mod:`segtutor.train`.
"""
from __future__ import annotations

import os
import pickle
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ._validation import model_config, model_name
from .history import History

__all__ = ["CHECKPOINT_FORMAT", "CHECKPOINT_VERSION", "CheckpointError", "save_checkpoint", "load_checkpoint",
           "read_checkpoint", "apply_checkpoint"]

#: The ``format`` tag of a checkpoint written by :func:`save_checkpoint`.
CHECKPOINT_FORMAT = "segtutor-checkpoint"
CHECKPOINT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used: not a checkpoint, unsafe to load, or for another model."""


_PLAIN_SCALARS = (type(None), bool, int, float, str)  # exact types: subclasses (np.float64, TorchVersion) are refused


def _check_plain(value: Any, where: str) -> None:
    """Checkpoints hold only what ``torch.load(weights_only=True)`` can read back: plain containers,
    numbers, strings and tensors."""
    if type(value) in _PLAIN_SCALARS or isinstance(value, (torch.Tensor, torch.Size, torch.dtype)):
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, (str, int)):
                raise TypeError(f"{where} has a key of type {type(key).__name__}; checkpoint dict keys must be str or int")
            _check_plain(item, f"{where}[{key!r}]")
        return
    if type(value) in (list, tuple):
        for i, item in enumerate(value):
            _check_plain(item, f"{where}[{i}]")
        return
    hint = " (use .tolist() or torch.from_numpy)" if isinstance(value, (np.ndarray, np.generic)) else ""
    raise TypeError(f"{where} is a {type(value).__name__}: a checkpoint holds only dicts, lists, tuples, numbers, "
                    f"strings and tensors, so that load_checkpoint can refuse to run code (weights_only=True){hint}")


def save_checkpoint(path: str | os.PathLike, model: nn.Module, optimizer: torch.optim.Optimizer | None = None, *,
                    epoch: int | None = None, history: History | None = None, **extra: Any) -> Path:
    """Write the model (its name, ``config`` and ``state_dict``), the optimizer state, ``epoch``, ``history``
    and any plain ``extra`` values to ``path``, atomically.

    The file is written to a temporary file in the same directory, flushed to disk, then renamed over
    ``path`` (``os.replace``): a crash while saving leaves the previous checkpoint intact, never a half file.
    Returns the path.
    """
    path = Path(path)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "model": {"name": model_name(model), "class": type(model).__name__, "config": model_config(model)},
        "state_dict": model.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "epoch": epoch,
        "history": history.to_dict() if isinstance(history, History) else history,
        "extra": extra,
        "torch_version": str(torch.__version__),
    }
    _check_plain(payload, "checkpoint")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    try:  # make the rename itself durable (POSIX; not possible on Windows)
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return path
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)
    return path


def read_checkpoint(path: str | os.PathLike) -> dict:
    """The checkpoint dict at ``path``, read with ``weights_only=True``; :class:`CheckpointError` if it is not one."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {str(path)!r}: the file does not exist")
    if path.is_dir():
        raise IsADirectoryError(f"{str(path)!r} is a directory, not a checkpoint file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "global" in str(exc).lower():  # a class or function to import: what pickled code execution needs
            raise CheckpointError(
                f"refused to load {str(path)!r}: it holds Python objects other than tensors and plain containers, "
                "and unpickling those can run arbitrary code. segtutor loads with torch.load(weights_only=True); "
                "only checkpoints written by save_checkpoint are accepted") from exc
        raise CheckpointError(f"{str(path)!r} is not a segtutor checkpoint (torch.load could not read it: "
                              f"{type(exc).__name__}: {exc})") from exc
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, AttributeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{str(path)!r} is not a segtutor checkpoint (torch.load could not read it: "
                              f"{type(exc).__name__}: {exc})") from exc
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        what = f"a {type(payload).__name__}" + (f" with keys {sorted(map(str, payload))[:8]}" if isinstance(payload, dict) else "")
        raise CheckpointError(f"{str(path)!r} is not a segtutor checkpoint: it holds {what}, not the dict written by "
                              "segtutor.train.save_checkpoint (a bare state_dict loads with model.load_state_dict)")
    return payload


def _describe(name: str, config: Mapping | None) -> str:
    if not config:
        return name
    args = ", ".join(f"{k}={v!r}" for k, v in config.items() if k != "name")
    return f"{name}({args})"


def apply_checkpoint(payload: dict, path: str | os.PathLike, model: nn.Module,
                      optimizer: torch.optim.Optimizer | None) -> None:
    """Load a checkpoint dict read from ``path`` into ``model`` (and ``optimizer``) after checking its architecture."""
    saved = payload.get("model") or {}
    saved_name, saved_config = str(saved.get("name")), saved.get("config")
    name, config = model_name(model), model_config(model)
    if saved_name != name or (saved_config is not None and config is not None and dict(saved_config) != config):
        raise CheckpointError(f"checkpoint {str(path)!r} holds a {_describe(saved_name, saved_config)} model, but the "
                              f"model given is a {_describe(name, config)}; build the same architecture "
                              f"(segtutor.models.build_model) or load the checkpoint that matches this model")
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as exc:
        raise CheckpointError(f"checkpoint {str(path)!r} ({_describe(saved_name, saved_config)}) does not fit the model "
                              f"given ({_describe(name, config)}): {exc}") from exc
    if optimizer is not None and payload.get("optimizer") is not None:
        optimizer.load_state_dict(payload["optimizer"])


def load_checkpoint(path: str | os.PathLike, model: nn.Module, optimizer: torch.optim.Optimizer | None = None) -> dict:
    """Load a checkpoint written by :func:`save_checkpoint` into ``model`` (and ``optimizer``), in place.

    Returns the whole checkpoint dict (``epoch``, ``history`` as a plain dict — ``History.from_dict`` rebuilds it —,
    ``extra``, …). Reading uses ``torch.load(weights_only=True)``: a file holding any other Python object is
    refused without being executed. Raises :class:`FileNotFoundError` for a missing file and
    :class:`CheckpointError` for a file that is not a checkpoint or was written for another architecture.
    """
    payload = read_checkpoint(path)
    apply_checkpoint(payload, path, model, optimizer)
    return payload
