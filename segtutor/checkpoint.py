"""Checkpoints: atomic writes, and reads that never run code from the file.

Taught in ``notebooks/06_end_to_end.ipynb`` (save a trained model, reload it, refuse a checkpoint of another
architecture); :func:`segtutor.train.fit` saves one after every epoch and resumes from it.

- :func:`save_checkpoint` writes the model's name, ``config`` and ``state_dict``, the optimizer state and
  plain extra values to a temporary file, flushes it and renames it over the target: a crash while saving
  leaves the previous checkpoint intact. The temporary file is named ``<name>.tmp-<host>-<pid>-<random>``;
  a save removes the ones of the same path left by killed writers (see :func:`remove_stale_temporaries`),
  and a failed write (a full disk) removes its own and says so.
- :func:`load_checkpoint` reads with ``torch.load(weights_only=True)``, so a file holding other Python objects
  is refused without being executed, and refuses weights whose recorded ``config`` differs from the model's.

``segtutor.train`` re-exports :func:`save_checkpoint`, :func:`load_checkpoint` and :class:`CheckpointError`
(the public contract); this module does not import :mod:`segtutor.train`.
"""
from __future__ import annotations

import errno
import hashlib
import os
import pickle
import random
import re
import secrets
import socket
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ._validation import model_config, model_name
from .history import History

__all__ = ["CHECKPOINT_FORMAT", "CHECKPOINT_VERSION", "CheckpointError", "save_checkpoint", "load_checkpoint",
           "read_checkpoint", "apply_checkpoint", "check_writable", "remove_stale_temporaries"]

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


# ------------------------------------------------------------------------------- temporary files

_HOST = re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:24] or "host"
_WRITING: set[str] = set()   # temporaries this process is writing right now (other threads' saves)
_WRITING_LOCK = threading.Lock()


def _temp_name(path: Path) -> Path:
    return path.with_name(f"{path.name}.tmp-{_HOST}-{os.getpid()}-{secrets.token_hex(4)}")


def _temp_pattern(path: Path) -> re.Pattern:
    """The exact names :func:`_temp_name` gives the temporaries of ``path``: ``<name>.tmp-<host>-<pid>-<8 hex>``."""
    return re.compile(re.escape(path.name) + r"\.tmp-(?P<host>[A-Za-z0-9]+)-(?P<pid>[0-9]+)-[0-9a-f]{8}")


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    except OSError:          # cannot tell (e.g. Windows without that process): assume alive, keep the file
        return True
    return True


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Remove the temporary files a killed :func:`save_checkpoint` of ``path`` left behind; return what was removed.

    Only names of the exact form ``<name>.tmp-<host>-<pid>-<8 hex digits>`` next to ``path`` are considered, and
    of those only files written on this host by a process that no longer runs (or by this process, outside any
    save in progress). ``path`` itself, other files and other paths' temporaries are never touched; a writer on
    another host (a shared file system) is left alone, since its PID cannot be checked from here.
    """
    path = Path(path)
    pattern = _temp_pattern(path)
    removed: list[Path] = []
    try:
        names = os.listdir(path.parent)
    except OSError:
        return removed
    for name in names:
        match = pattern.fullmatch(name)
        if match is None or match["host"] != _HOST:
            continue
        candidate = path.parent / name
        pid = int(match["pid"])
        if pid == os.getpid():
            with _WRITING_LOCK:
                if str(candidate) in _WRITING:
                    continue
        elif _pid_alive(pid):
            continue
        try:
            if candidate.is_symlink() or not candidate.is_file():
                continue
            candidate.unlink()
            removed.append(candidate)
        except FileNotFoundError:
            pass
        except OSError:
            pass  # not ours to remove after all (permissions): leave it
    return removed


def check_writable(path: str | os.PathLike) -> Path:
    """Raise a clear :class:`PermissionError` unless a checkpoint can be written at ``path`` (its folder is made).

    :func:`segtutor.train.fit` calls this before the first epoch, so a read-only folder is found at once,
    not after an epoch of training. Writes and removes one empty probe file (a temporary of the saver's form).
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"checkpoint {str(path)!r} is a directory; pass a file path such as {str(path / 'ckpt.pt')!r}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        probe = _temp_name(path)
        with open(probe, "xb"):
            pass
        probe.unlink()
    except OSError as exc:
        raise PermissionError(errno.EACCES, f"cannot write the checkpoint {str(path)!r}: its folder "
                              f"{str(path.parent)!r} is not writable ({type(exc).__name__}: {exc.strerror or exc}); "
                              "pass a checkpoint path in a folder you can write to") from exc
    return path


def save_checkpoint(path: str | os.PathLike, model: nn.Module, optimizer: torch.optim.Optimizer | None = None, *,
                    epoch: int | None = None, history: History | None = None, **extra: Any) -> Path:
    """Write the model (its name, ``config`` and ``state_dict``), the optimizer state, ``epoch``, ``history``
    and any plain ``extra`` values to ``path``, atomically.

    The file is written to a temporary file in the same directory, flushed to disk, then renamed over
    ``path`` (``os.replace``): a crash while saving leaves the previous checkpoint intact, never a half file.
    Temporaries of ``path`` left by killed saves are removed first (:func:`remove_stale_temporaries`). A write
    that fails (a full disk, a read-only folder) removes its temporary file and raises :class:`OSError` naming
    ``path``; the previous checkpoint is kept. Returns the path.
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
    remove_stale_temporaries(path)
    tmp = _temp_name(path)
    with _WRITING_LOCK:
        _WRITING.add(str(tmp))
    try:
        try:
            with open(tmp, "xb") as f:
                torch.save(payload, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException as exc:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            if isinstance(exc, (OSError, RuntimeError)) and not isinstance(exc, (NotImplementedError, RecursionError)):
                kept = "the previous checkpoint there is unchanged" if path.exists() else "no checkpoint was written"
                code = getattr(exc, "errno", None) or errno.EIO
                raise OSError(code, f"could not write the checkpoint {str(path)!r} ({type(exc).__name__}: {exc}); "
                              f"the disk may be full or the folder {str(path.parent)!r} not writable. The temporary "
                              f"file was removed and {kept}; free some space or pass another checkpoint path") from exc
            raise
    finally:
        with _WRITING_LOCK:
            _WRITING.discard(str(tmp))
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


_NEXT_STEP = ("only files written by segtutor's save_checkpoint (or fit(checkpoint=...)) are accepted: load the "
              "checkpoint you saved, or retrain and save again")


def _torch_reason(exc: BaseException) -> str:
    """What torch.load found wrong, without torch's advice (which may suggest an unsafe load)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
    match = re.search(r"WeightsUnpickler error:\s*(.*)", text)
    if match:
        text = match.group(1)
    text = re.split(r"\.\s+(?:Please|Re-running|This is an internal|If you are|Check the documentation)", text)[0]
    text = text.strip().splitlines()[0].strip() if text.strip() else type(exc).__name__
    return text[:300]


def read_checkpoint(path: str | os.PathLike) -> dict:
    """The checkpoint dict at ``path``, read with ``weights_only=True``; :class:`CheckpointError` if it is not one.

    Messages say what failed and what to do; torch's own advice is not repeated (it can suggest loading
    with ``weights_only=False``, which runs any code a file holds).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {str(path)!r}: the file does not exist")
    if path.is_dir():
        raise IsADirectoryError(f"{str(path)!r} is a directory, not a checkpoint file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        reason = _torch_reason(exc)
        if "global" in str(exc).lower():  # a class or function to import: what pickled code execution needs
            error = CheckpointError(
                f"refused to load {str(path)!r}: it holds Python objects other than tensors and plain containers "
                f"({reason}), and unpickling those can run arbitrary code. segtutor loads checkpoints only in "
                f"torch's safe mode; the file is not from segtutor or was tampered with. {_NEXT_STEP}")
        else:
            error = CheckpointError(f"{str(path)!r} is not a segtutor checkpoint, or a damaged one: the safe load failed "
                                    f"({reason}); the file may be corrupt or not written by segtutor. {_NEXT_STEP}")
        raise error from None
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, AttributeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{str(path)!r} is not a segtutor checkpoint, or a damaged one: torch.load failed "
                              f"({type(exc).__name__}: {_torch_reason(exc)}); the file may be corrupt (truncated, "
                              f"a partial copy) or not written by segtutor. {_NEXT_STEP}") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        what = f"a {type(payload).__name__}" + (f" with keys {sorted(map(str, payload))[:8]}" if isinstance(payload, dict) else "")
        raise CheckpointError(f"{str(path)!r} is not a segtutor checkpoint: it holds {what}, not the dict written by "
                              "segtutor.train.save_checkpoint (a bare state_dict loads with model.load_state_dict)")
    state = payload.get("state_dict")
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        got = "no 'state_dict' entry" if "state_dict" not in payload else f"a 'state_dict' of type {type(state).__name__}"
        raise CheckpointError(f"{str(path)!r} is damaged: it has the segtutor format tag but {got}; a checkpoint holds "
                              "'state_dict', a dict of tensors (name -> weights). " + _NEXT_STEP)
    return payload


def _defaults(model: nn.Module, saved_config: Mapping) -> dict:
    """The constructor defaults of ``model``'s config keys that ``saved_config`` lacks (empty if unknown)."""
    import inspect

    try:
        parameters = inspect.signature(type(model).__init__).parameters
    except (TypeError, ValueError):
        return {}
    config = model_config(model) or {}
    return {key: parameters[key].default for key in config
            if key not in saved_config and key in parameters and parameters[key].default is not inspect.Parameter.empty}


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
    if saved_config is not None and config is not None:
        # an option added to a model after the file was written is absent from its config: the file was made with
        # that option's default (e.g. DeepLabV3Plus(decoder=True)), so the two agree if the model uses the default
        saved_config = {**_defaults(model, saved_config), **dict(saved_config)}
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


def data_fingerprint(data: "torch.utils.data.Dataset") -> str:
    """A short hash of the shapes, dtypes and bytes of ``data``'s first and last items, read under fixed seeds (so
    random transforms draw the same each time; the global generators are restored afterwards)."""
    digest = hashlib.sha256(str(len(data)).encode())
    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        with torch.random.fork_rng(devices=[]):
            for index in sorted({0, len(data) - 1}):
                random.seed(index)
                np.random.seed(index)
                torch.manual_seed(index)
                item = data[index]
                for t in item if isinstance(item, (tuple, list)) else (item,):
                    if not isinstance(t, torch.Tensor):
                        digest.update(repr(t).encode())
                        continue
                    t = t.detach().cpu().contiguous().reshape(-1)
                    digest.update(f"{tuple(t.shape)}{t.dtype}".encode())
                    digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
    return digest.hexdigest()[:16]


def resume_fit(path: str | os.PathLike, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
            scaler: Any, plan: dict) -> History:
    payload = read_checkpoint(path)
    state = (payload.get("extra") or {}).get("fit")
    if not isinstance(state, dict) or "plan" not in state:
        raise CheckpointError(f"checkpoint {str(path)!r} was not written by fit, so fit cannot resume from it; "
                              "pass another checkpoint path (or load it with load_checkpoint)")
    saved_plan = state["plan"]
    if not isinstance(saved_plan, dict) or not isinstance(state.get("scheduler"), dict) or "history" not in payload:
        raise CheckpointError(f"checkpoint {str(path)!r} is damaged: it lacks the plan, schedule or history that fit "
                              "saves; pass a new checkpoint path to start over")
    differ = {key: (saved_plan.get(key), value) for key, value in plan.items() if saved_plan.get(key) != value
              and not (key == "train_fingerprint" and key not in saved_plan)}  # checkpoints from before the fingerprint
    if "train_fingerprint" in differ:
        raise CheckpointError(f"checkpoint {str(path)!r} was trained on other data: train_data has the same length "
                              f"({plan['train_samples']}) but other items (fingerprint of its first and last items: "
                              f"checkpoint {saved_plan['train_fingerprint']} vs now {plan['train_fingerprint']}); resume "
                              "with the same dataset, or pass a new checkpoint path to start over")
    if differ:
        details = ", ".join(f"{key}: checkpoint {old!r} vs now {new!r}" for key, (old, new) in differ.items())
        raise CheckpointError(f"checkpoint {str(path)!r} belongs to a different fit ({details}); resume with the same "
                              "arguments, or pass a new checkpoint path to start over")
    apply_checkpoint(payload, path, model, optimizer)
    scheduler.load_state_dict(state["scheduler"])
    if scaler is not None and state.get("scaler") is not None:
        scaler.load_state_dict(state["scaler"])
    history = History.from_dict(payload["history"])
    if len(history) != payload.get("epoch"):
        raise CheckpointError(f"checkpoint {str(path)!r} is inconsistent: epoch={payload.get('epoch')} but its history "
                              f"has {len(history)} epochs")
    return history
