"""A training run idle and beside a competing CPU-bound process, as a ratio measured in one run.

    python benchmarks/contention.py                 # U-Net, cpu budget data, 2 epochs; auto threads vs fixed 2
    python benchmarks/contention.py --model fcn8s --epochs 3 --modes auto,2

For each thread mode (``auto``: fit's own choice, :func:`segtutor.runtime.choose_threads`; a number: pinned with
``SEGTUTOR_THREADS``) the same ``fit`` runs twice: on the machine as it is, then beside one busy-loop process
(a Python ``while True`` loop, the kind of load a browser tab or a second kernel puts on a laptop). Each run is a
fresh subprocess, so the thread choice starts from nothing. Reported: wall time of the ``fit`` call, the threads fit
chose, and busy / idle for each mode — the number issue 15 bounds (<= 2.5). The load average before each run is
recorded; quote idle figures only from a machine whose load was near 0 before the idle run.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
from benchmarks.machine import machine  # noqa: E402

CHILD = r"""
import json, sys, time
import torch
from segtutor import runtime
from segtutor.data import SyntheticShapes
from segtutor.models import build_model
from segtutor.train import fit
name, epochs = sys.argv[1], int(sys.argv[2])
b = runtime.budget("cpu")
train = SyntheticShapes(b.train_samples, b.image_size, 4, seed=0)
runtime.seed_everything(0)
model = build_model(name, 4, width=b.width)
chosen = {}
real = runtime.choose_threads
def spy(limit=None):
    choice = real(limit)
    chosen["threads"] = choice.threads
    return choice
runtime.choose_threads = spy
start = time.perf_counter()
fit(model, train, epochs=epochs, batch_size=b.batch_size, seed=0, progress=False, device="cpu")
print(json.dumps({"seconds": time.perf_counter() - start, "threads": chosen.get("threads", torch.get_num_threads())}))
"""


def loadavg() -> float:
    return os.getloadavg()[0]


def run(model: str, epochs: int, mode: str, busy: bool) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "SEGTUTOR_THREADS", "SEGTUTOR_BUDGET")}
    env["PYTHONPATH"] = ROOT
    if mode != "auto":
        env["SEGTUTOR_THREADS"] = mode
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
    try:
        if hog is not None:
            time.sleep(2.0)  # let the scheduler see it
        before = loadavg()
        out = subprocess.run([sys.executable, "-c", CHILD, model, str(epochs)], env=env, capture_output=True,
                             text=True, check=True)
    finally:
        if hog is not None:
            hog.kill()
            hog.wait()
    row = json.loads(out.stdout.strip().splitlines()[-1])
    row.update(mode=mode, busy=busy, load_before=round(before, 2))
    return row


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="unet")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--modes", default="auto,2", help="comma-separated: auto and/or thread counts")
    args = parser.parse_args(argv)
    rows = []
    for mode in args.modes.split(","):
        for busy in (False, True):
            row = run(args.model, args.epochs, mode, busy)
            rows.append(row)
            print(json.dumps(row), flush=True)
    info = machine()
    lines = [f"## contention: {args.model}, {args.epochs} epochs at the cpu budget ({info['date']}, {info['cpu']}, "
             f"{info['cores']} cores, torch {info['torch']})", "",
             "| threads | idle s | busy s | busy / idle | threads chosen (idle, busy) | load before (idle, busy) |",
             "|---|---:|---:|---:|---|---|"]
    for mode in args.modes.split(","):
        idle = next(r for r in rows if r["mode"] == mode and not r["busy"])
        busy = next(r for r in rows if r["mode"] == mode and r["busy"])
        lines.append(f"| {mode} | {idle['seconds']:.1f} | {busy['seconds']:.1f} | {busy['seconds'] / idle['seconds']:.2f} "
                     f"| {idle['threads']}, {busy['threads']} | {idle['load_before']}, {busy['load_before']} |")
    lines.append(f"\nCommand: `python benchmarks/contention.py {' '.join(argv or sys.argv[1:])}`")
    print("\n".join(lines), file=sys.stderr)


if __name__ == "__main__":
    main()
