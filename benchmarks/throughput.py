"""Training throughput and peak memory of every course model, measured through ``segtutor.train.fit`` itself.

What is timed: ``fit(model, data, epochs=2, batch_size=B, progress=False)`` on an in-memory
``TensorDataset`` of ``steps × B`` SyntheticShapes images (rendered beforehand, so drawing shapes is not
timed). Epoch 1 is the warm-up (allocator, kernel choice); the figure is epoch 2's images / second from
``History.seconds``, i.e. the whole loop a student runs: batching, the copy to the device, forward,
cross-entropy, backward and the AdamW + one-cycle step. Sizes come from a budget (``segtutor.runtime.budget``):
image side, batch size and model width; ``--budget cpu`` by default on the CPU, ``gpu`` on CUDA.

FLOPs: ``torch.utils.flop_counter.FlopCounterMode`` counts one fp32 training step (forward + backward of a
batch, convolutions and matrix products; elementwise work is not counted), reported per image. The achieved
rate is FLOPs per step × steps / second; on CUDA the model FLOP utilisation (MFU) divides it by
``--peak-flops`` (default 989e12: the dense bf16 tensor-core peak of an H100/H200 SXM from NVIDIA's
datasheet, without sparsity; pass your GPU's own figure). MFU is given for each configuration against
that one bf16 peak, so the fp32 rows read low by construction.

Memory:
  CPU   peak resident memory (``resource.getrusage(RUSAGE_SELF).ru_maxrss``) of a fresh subprocess per model,
        minus its value after the model and data were built and a two-image warm-up ``fit`` ran (which loads
        the kernels and lazy imports): the extra memory training at the budget's batch size takes
        (activations, gradients, optimiser state, allocator caches). tracemalloc would miss torch's allocations.
  CUDA  ``torch.cuda.max_memory_allocated`` over the timed epochs (reset before), for each configuration:
        fp32 (``amp=False, channels_last=False``), AMP (``amp=True``: bf16 autocast where supported) and
        AMP + channels_last, with throughput and memory as ratios to fp32 measured in the same run.

Usage:
  python benchmarks/throughput.py                    # CPU, budget cpu, all models (about 2-4 min on 2 cores)
  python benchmarks/throughput.py --device cuda      # GPU table (budget gpu), fp32 vs AMP vs AMP+channels_last
  options: --models unet fcn8s  --budget ci|cpu|gpu  --steps N  --peak-flops F  --json out.json
Prints a markdown table (machine, versions, command first) and then the same results as JSON.
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import resource
import subprocess
import sys
from typing import Any

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from benchmarks.machine import machine  # noqa: E402
from segtutor import runtime, train  # noqa: E402
from segtutor.data import SyntheticShapes  # noqa: E402
from segtutor.models import MODEL_NAMES, build_model  # noqa: E402

NUM_CLASSES = 4
H100_BF16_DENSE = 989e12


def _maxrss_bytes() -> int:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if sys.platform == "darwin" else rss * 1024  # Linux reports KiB, macOS bytes


@functools.lru_cache(maxsize=2)
def _dataset(budget: runtime.Budget, steps: int) -> torch.utils.data.TensorDataset:
    images, masks = SyntheticShapes(steps * budget.batch_size, budget.image_size, NUM_CLASSES, seed=0).tensors()
    return torch.utils.data.TensorDataset(images, masks)


def _model(name: str, budget: runtime.Budget) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(name, NUM_CLASSES, width=budget.width)


def train_step_flops(name: str, budget: runtime.Budget, device: str = "cpu") -> int:
    """FLOPs of one fp32 training step (forward + backward) on a batch of ``budget.batch_size`` images."""
    from torch.utils.flop_counter import FlopCounterMode

    model = _model(name, budget).to(device)
    x = torch.rand(budget.batch_size, 3, budget.image_size, budget.image_size, device=device)
    y = torch.randint(0, NUM_CLASSES, (budget.batch_size, budget.image_size, budget.image_size), device=device)
    with FlopCounterMode(display=False) as counter:
        torch.nn.functional.cross_entropy(model(x), y).backward()
    return int(counter.get_total_flops())


def measure(name: str, budget: runtime.Budget, steps: int, device: str, amp: bool, channels_last: bool) -> dict:
    """Images per second of fit's second epoch, and peak memory (see the module docstring)."""
    data = _dataset(budget, steps)
    # Warm-up on two 32-px images: loads kernels and lazy imports, so the RSS baseline below already includes
    # them and the increase measures what the real batch size costs.
    warm = torch.utils.data.TensorDataset(data.tensors[0][:2, :, :32, :32], data.tensors[1][:2, :32, :32])
    train.fit(_model(name, budget), warm, epochs=1, batch_size=2, device=device, amp=amp,
              channels_last=channels_last, progress=False)
    model = _model(name, budget)
    params = sum(p.numel() for p in model.parameters())
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    else:
        before = _maxrss_bytes()
    history = train.fit(model, data, epochs=2, batch_size=budget.batch_size, device=device, amp=amp,
                        channels_last=channels_last, progress=False, seed=0)
    if device == "cuda":
        peak = torch.cuda.max_memory_allocated() - before
    else:
        peak = _maxrss_bytes() - before
    return {"model": name, "params": params, "images_per_s": len(data) / history[-1].seconds,
            "step_s": history[-1].seconds / steps, "peak_mem_bytes": int(peak),
            "final_train_loss": history[-1].train_loss}


def _worker(args: argparse.Namespace) -> None:
    budget = runtime.budget(args.budget)
    result = measure(args.worker, budget, args.steps, "cpu", amp=False, channels_last=False)
    result["flops_per_step"] = train_step_flops(args.worker, budget)
    print("RESULT " + json.dumps(result))


def run_cpu(models: list[str], budget: runtime.Budget, steps: int) -> list[dict]:
    rows = []
    for name in models:
        out = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", name, "--budget", budget.name,
                              "--steps", str(steps)], capture_output=True, text=True, check=False)
        line = next((l for l in out.stdout.splitlines() if l.startswith("RESULT ")), None)
        if out.returncode != 0 or line is None:
            raise RuntimeError(f"worker for {name} failed (exit {out.returncode}):\n{out.stdout}\n{out.stderr}")
        row = json.loads(line[len("RESULT "):])
        row["gflops_per_s"] = row["flops_per_step"] / row["step_s"] / 1e9
        rows.append(row)
        print(f"  {name}: {row['images_per_s']:.1f} img/s", file=sys.stderr)
    return rows


def run_cuda(models: list[str], budget: runtime.Budget, steps: int, peak_flops: float) -> list[dict]:
    configs = {"fp32": (False, False), "amp": (True, False), "amp_cl": (True, True)}
    rows = []
    for name in models:
        flops = train_step_flops(name, budget, "cuda")
        row: dict[str, Any] = {"model": name, "flops_per_step": flops}
        for key, (amp, cl) in configs.items():
            result = measure(name, budget, steps, "cuda", amp=amp, channels_last=cl)
            row["params"] = result["params"]
            row[key] = {"images_per_s": result["images_per_s"], "step_s": result["step_s"],
                        "peak_mem_bytes": result["peak_mem_bytes"], "final_train_loss": result["final_train_loss"],
                        "mfu": flops / result["step_s"] / peak_flops}
            torch.cuda.empty_cache()
        rows.append(row)
        print(f"  {name}: fp32 {row['fp32']['images_per_s']:.0f}, amp {row['amp']['images_per_s']:.0f}, "
              f"amp+cl {row['amp_cl']['images_per_s']:.0f} img/s", file=sys.stderr)
    return rows


def markdown(device: str, info: dict, budget: runtime.Budget, steps: int, rows: list[dict], command: str,
             peak_flops: float) -> str:
    mib = 2 ** 20
    lines = [f"Measured {info['date']} with `{command}`.",
             f"Machine: {info['cpu']}, {info['cores']} cores (torch threads {info['torch_threads']})"
             + (f", GPU {info['gpu']} (CUDA {info['cuda']})" if device == "cuda" else "")
             + f"; Python {info['python']}, torch {info['torch']}; load average {info['load_average'][0]} before, "
             f"{info['load_average'][1]} after.",
             f"Budget `{budget.name}`: {budget.image_size}×{budget.image_size} px, batch {budget.batch_size}, "
             f"width {budget.width}, {NUM_CLASSES} classes; {steps} batches per epoch, epoch 2 timed.", ""]
    if device == "cpu":
        lines += ["| model | params | train images/s | step (ms) | GFLOP / image (train) | GFLOP/s | peak RSS increase (MiB) |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for r in rows:
            lines.append(f"| {r['model']} | {r['params']:,} | {r['images_per_s']:.1f} | {1e3 * r['step_s']:.0f} | "
                         f"{r['flops_per_step'] / budget.batch_size / 1e9:.3f} | {r['gflops_per_s']:.1f} | "
                         f"{r['peak_mem_bytes'] / mib:.0f} |")
    else:
        lines += [f"MFU against {peak_flops / 1e12:.0f} TFLOP/s (dense bf16 peak) for every column.", "",
                  "| model | params | GFLOP / image (train) | fp32 images/s | AMP ×fp32 | AMP+channels_last ×fp32 "
                  "| fp32 peak MiB | AMP mem ×fp32 | AMP+CL mem ×fp32 | MFU fp32 | MFU AMP+CL |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in rows:
            f32, amp, cl = r["fp32"], r["amp"], r["amp_cl"]
            lines.append(f"| {r['model']} | {r['params']:,} | {r['flops_per_step'] / budget.batch_size / 1e9:.3f} | "
                         f"{f32['images_per_s']:.0f} | {amp['images_per_s'] / f32['images_per_s']:.2f} | "
                         f"{cl['images_per_s'] / f32['images_per_s']:.2f} | {f32['peak_mem_bytes'] / mib:.0f} | "
                         f"{amp['peak_mem_bytes'] / f32['peak_mem_bytes']:.2f} | "
                         f"{cl['peak_mem_bytes'] / f32['peak_mem_bytes']:.2f} | {100 * f32['mfu']:.2f}% | "
                         f"{100 * cl['mfu']:.2f}% |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--budget", choices=tuple(runtime.BUDGETS), default=None,
                        help="sizes to use (default: cpu on the CPU, gpu on CUDA)")
    parser.add_argument("--models", nargs="+", default=list(MODEL_NAMES), choices=MODEL_NAMES)
    parser.add_argument("--steps", type=int, default=None, help="batches per epoch (default 8 on CPU, 40 on CUDA)")
    parser.add_argument("--peak-flops", type=float, default=H100_BF16_DENSE,
                        help="the GPU's peak dense bf16 FLOP/s for MFU (default 989e12, H100/H200 SXM)")
    parser.add_argument("--json", default=None, help="also write the JSON results to this file")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.budget is None:
        args.budget = "gpu" if args.device == "cuda" else "cpu"
    if args.steps is None:
        args.steps = 40 if args.device == "cuda" else 8
    if args.worker:
        _worker(args)
        return
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda: no CUDA GPU is available here")
    budget = runtime.budget(args.budget)
    load_before = os.getloadavg()[0]
    command = "python benchmarks/throughput.py " + " ".join(sys.argv[1:] if argv is None else argv)
    rows = (run_cuda(args.models, budget, args.steps, args.peak_flops) if args.device == "cuda"
            else run_cpu(args.models, budget, args.steps))
    info = machine(args.device)
    # other processes competing for the cores show here: 1-minute load average before and after the run
    info["load_average"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    print(markdown(args.device, info, budget, args.steps, rows, command.strip(), args.peak_flops))
    payload = {"machine": info, "device": args.device, "budget": budget.as_dict(), "steps": args.steps,
               "command": command.strip(), "peak_flops": args.peak_flops, "results": rows}
    print()
    print(json.dumps(payload, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(payload, f, indent=1)


if __name__ == "__main__":
    main()
