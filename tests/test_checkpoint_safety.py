"""Checkpoints under faults (issue 12, items 2 and 7): killed saves, full disks, damaged and foreign files.

Oracles: the directory listing after real SIGKILLs of a process in the middle of saving, the bytes of the last
good file, and torch.load of it. The kill tests run one subprocess each (a few seconds in all).
"""
import pathlib
import os
import signal
import subprocess
import sys
import textwrap
import time
import traceback
from pathlib import Path

import pytest
import torch

from segtutor import checkpoint as ckpt
from segtutor.data import SyntheticShapes
from segtutor.models import build_model
from segtutor.train import CheckpointError, fit, load_checkpoint, save_checkpoint

ROOT = Path(__file__).resolve().parents[1]


def tiny(seed=0):
    torch.manual_seed(seed)
    return build_model("fcn8s", 4, width=4)


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def full_text(exc: BaseException) -> str:
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


# ------------------------------------------------------------------------------------------ item 2

def test_save_removes_only_stale_temporaries_of_its_own_path(tmp_path):
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, tiny(1), epoch=1)
    good = path.read_bytes()
    host = ckpt._HOST
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        stale = tmp_path / f"ckpt.pt.tmp-{host}-{dead_pid()}-0123abcd"              # a killed writer
        live = tmp_path / f"ckpt.pt.tmp-{host}-{sleeper.pid}-89abcdef"             # a writer still running
        remote = tmp_path / f"ckpt.pt.tmp-otherhost{host}-{dead_pid()}-00000000"   # written on another machine
        other_path = tmp_path / f"other.pt.tmp-{host}-{dead_pid()}-0123abcd"        # another checkpoint's
        lookalike = tmp_path / f"ckpt.pt.tmp-{host}-{dead_pid()}-0123abcd.keep"     # not the exact pattern
        user_file = tmp_path / "ckpt.pt.tmpnotes"                                   # mkstemp-like, not ours
        for f in (stale, live, remote, other_path, lookalike, user_file):
            f.write_bytes(b"x" * 1000)
        assert ckpt.remove_stale_temporaries(path) == [stale]
        assert path.read_bytes() == good                     # the last good file is never touched
        stale.write_bytes(b"x")
        save_checkpoint(path, tiny(2), epoch=2)
        left = sorted(p.name for p in tmp_path.iterdir())
        assert left == sorted(p.name for p in (path, live, remote, other_path, lookalike, user_file))
        assert load_checkpoint(path, tiny(3))["epoch"] == 2
    finally:
        sleeper.kill()
        sleeper.wait()


KILL_LOOP = textwrap.dedent("""
    import os, signal, sys, time, random
    import torch
    from segtutor.checkpoint import save_checkpoint
    from segtutor.models import build_model
    path, kills = sys.argv[1], int(sys.argv[2])
    torch.manual_seed(0)
    model = build_model("unet", 4, width=16)            # a few MB: a save takes a noticeable time
    save_checkpoint(path, model, epoch=0)
    random.seed(0)
    for i in range(kills):
        pid = os.fork()
        if pid == 0:                                     # the child saves in a loop until it is killed
            n = 1
            while True:
                save_checkpoint(path, model, epoch=n)
                n += 1
        time.sleep(0.05 + 0.2 * random.random())
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    print("done")
""")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_sigkill_during_saves_keeps_the_file_and_the_next_save_cleans_up(tmp_path):
    path = tmp_path / "ckpt.pt"
    kills = 6
    out = subprocess.run([sys.executable, "-c", KILL_LOOP, str(path), str(kills)], cwd=ROOT, capture_output=True,
                         text=True, timeout=240, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0 and "done" in out.stdout, out.stderr
    names = [p.name for p in tmp_path.iterdir()]
    leaked = [n for n in names if n != "ckpt.pt"]
    assert all(ckpt._temp_pattern(path).fullmatch(n) for n in leaked), names
    assert len(leaked) <= 1, names            # each save removed what the previous kill leaked
    epoch = load_checkpoint(path, build_model("unet", 4, width=16))["epoch"]    # intact after every kill
    assert isinstance(epoch, int)
    save_checkpoint(path, tiny(), epoch=99)
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]                 # every leaked temporary removed
    assert load_checkpoint(path, tiny())["epoch"] == 99


KILL_FIT = textwrap.dedent("""
    import os, sys, time
    import torch
    from segtutor.data import SyntheticShapes
    from segtutor.models import build_model
    from segtutor.train import fit

    class Slow(torch.utils.data.Dataset):               # fast until epoch 1 is saved, then crawls: killed in epoch 2
        def __init__(self, base):
            self.base = base
        def __len__(self):
            return len(self.base)
        def __getitem__(self, i):
            if os.path.exists(sys.argv[1]):
                time.sleep(1.0)
            return self.base[i]

    torch.manual_seed(5)
    model = build_model("fcn8s", 4, width=4)
    fit(model, Slow(SyntheticShapes(8, 32, 4, seed=0)), SyntheticShapes(4, 32, 4, seed=1), epochs=3, batch_size=4,
        progress=False, device="cpu", checkpoint=sys.argv[1])
""")


def test_fit_killed_by_sigkill_resumes_exactly(tmp_path):
    train_set, val_set = SyntheticShapes(8, 32, 4, seed=0), SyntheticShapes(4, 32, 4, seed=1)
    torch.manual_seed(5)
    reference_model = build_model("fcn8s", 4, width=4)
    reference = fit(reference_model, train_set, val_set, epochs=3, batch_size=4, progress=False, device="cpu")
    path = tmp_path / "run.pt"
    proc = subprocess.Popen([sys.executable, "-c", KILL_FIT, str(path)], cwd=ROOT,
                            env={**os.environ, "OMP_NUM_THREADS": "1"}, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 180
        while not path.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert path.exists(), proc.stderr.read() if proc.poll() is not None else "no checkpoint in time"
        time.sleep(0.3)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
        proc.stderr.close()
    assert load_checkpoint(path, build_model("fcn8s", 4, width=4))["epoch"] == 1
    torch.manual_seed(123)                                  # other initial weights: replaced by the checkpoint's
    resumed_model = build_model("fcn8s", 4, width=4)
    resumed = fit(resumed_model, train_set, val_set, epochs=3, batch_size=4, progress=False, device="cpu",
                  checkpoint=path)
    assert resumed.to_dict() | {"seconds": None} == reference.to_dict() | {"seconds": None}
    ref_state, state = reference_model.state_dict(), resumed_model.state_dict()
    assert all(torch.equal(ref_state[k], state[k]) for k in ref_state)


# ------------------------------------------------------------------------------------------ item 7

def test_full_disk_says_so_removes_the_temporary_and_keeps_the_last_file(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, tiny(1), epoch=1)
    good = path.read_bytes()

    def disk_full(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04" + b"\0" * 4096)
        raise RuntimeError("[enforce fail at inline_container.cc:664] . unexpected pos 4160 vs 4096")

    monkeypatch.setattr(ckpt.torch, "save", disk_full)
    with pytest.raises(OSError, match=r"could not write the checkpoint .*ckpt\.pt.*disk may be full") as info:
        save_checkpoint(path, tiny(2), epoch=2)
    assert "previous checkpoint there is unchanged" in str(info.value)
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"] and path.read_bytes() == good
    fresh = tmp_path / "sub" / "new.pt"
    monkeypatch.setattr(ckpt.torch, "save", disk_full)
    with pytest.raises(OSError, match="no checkpoint was written"):
        save_checkpoint(fresh, tiny(2))
    assert list(fresh.parent.iterdir()) == []


def test_refused_checkpoint_never_suggests_an_unsafe_load(tmp_path):
    unsafe = tmp_path / "objects.pt"
    torch.save({"format": "segtutor-checkpoint", "state_dict": {}, "x": pathlib.PurePosixPath("x")}, unsafe)
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"PK\x03\x04 not really a zip")
    truncated = tmp_path / "truncated.pt"
    save_checkpoint(truncated, tiny())
    truncated.write_bytes(truncated.read_bytes()[:2000])
    for path, phrase in ((unsafe, "refused to load"), (corrupt, "may be corrupt"), (truncated, "may be corrupt")):
        with pytest.raises(CheckpointError, match=phrase) as info:
            load_checkpoint(path, tiny())
        text = full_text(info.value)
        assert "weights_only=False" not in text and "set to `False`" not in text, text
        assert "add_safe_globals" not in text and "allowlist" not in text, text
        assert "save_checkpoint" in str(info.value)


def test_checkpoint_without_state_dict_is_a_clear_error(tmp_path):
    path = tmp_path / "no_weights.pt"
    torch.save({"format": "segtutor-checkpoint", "version": 1, "model": {"name": "fcn8s"}}, path)
    with pytest.raises(CheckpointError, match="no 'state_dict' entry.*dict of tensors"):
        load_checkpoint(path, tiny())
    torch.save({"format": "segtutor-checkpoint", "state_dict": [1, 2]}, path)
    with pytest.raises(CheckpointError, match="'state_dict' of type list"):
        load_checkpoint(path, tiny())
