#!/usr/bin/env bash
# Install PyTorch into an interpreter without pulling CUDA wheels onto a CPU-only machine.
#
#   tools/install_torch.sh PYTHON [VERSION]
#
# SEGTUTOR_TORCH=auto|cpu|cuda|default chooses the build (auto: cuda when `nvidia-smi -L` finds a GPU,
# the platform default on macOS, cpu otherwise).
#   cuda / default: `pip install torch==VERSION` from PyPI (CUDA build on Linux, MPS-capable on macOS).
#   cpu: `torch==VERSION+cpu`, the CPU-only build: first from what pip already sees (a local wheel through
#        find-links, a local index), else from PyTorch's CPU index. The `+cpu` label means pip can never
#        settle on a CUDA build here, whichever index answers.
set -euo pipefail
PY=${1:?usage: install_torch.sh PYTHON [VERSION]}
VERSION=${2:-2.13.0}
SPEC="torch${VERSION:+==$VERSION}"

if "$PY" -c "import torch" 2>/dev/null; then
    echo "install_torch: $("$PY" -c 'import torch; print("torch", torch.__version__)') already installed"
    exit 0
fi

variant=${SEGTUTOR_TORCH:-auto}
if [ "$variant" = auto ]; then
    if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
        variant=cuda
    elif [ "$(uname -s)" = Darwin ]; then
        variant=default
    else
        variant=cpu
    fi
fi
echo "install_torch: installing $SPEC ($variant build)"
case "$variant" in
    cuda|default)
        "$PY" -m pip install "$SPEC" ;;
    cpu)
        if [ -z "$VERSION" ]; then
            echo "install_torch: the cpu build needs a VERSION" >&2; exit 2
        fi
        if "$PY" -m pip install "torch==$VERSION+cpu"; then
            exit 0
        fi
        "$PY" -m pip install "torch==$VERSION+cpu" --extra-index-url https://download.pytorch.org/whl/cpu ;;
    *)
        echo "install_torch: SEGTUTOR_TORCH must be auto, cpu, cuda or default, not '$variant'" >&2
        exit 2 ;;
esac
