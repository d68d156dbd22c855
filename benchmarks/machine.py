"""Where a benchmark ran: one home for the machine description every script in benchmarks/ records."""
from __future__ import annotations

import datetime
import os
import platform
from typing import Any

import torch


def cpu_name() -> str:
    """The CPU model (``model name`` of /proc/cpuinfo), else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(device: str | torch.device = "cpu") -> dict[str, Any]:
    """Date, CPU model and cores, torch threads, Python and torch versions, and the GPU when ``device`` is CUDA."""
    info: dict[str, Any] = {"date": datetime.date.today().isoformat(), "cpu": cpu_name(), "cores": os.cpu_count(),
                            "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
                            "torch": torch.__version__, "platform": platform.platform()}
    if torch.device(device).type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
        info["bf16"] = torch.cuda.is_bf16_supported()
    return info
