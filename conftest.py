"""Repository-wide pytest setup: the test suite (unit tests and `--nbval` notebooks) runs at the `ci` budget.

Plain `pytest --nbval` from the repository root works without installing the package: the repository
root is put on PYTHONPATH for this process and for the notebook kernels it starts.
"""
import os
import sys

ROOT = os.path.dirname(os.path.abspath(__file__))

os.environ.setdefault("SEGTUTOR_BUDGET", "ci")
# At the ci budget, one torch thread for the tests and the notebook kernels (they inherit the environment): its
# steps are too small to gain from a second thread, and on a busy machine two threads waiting for each other at
# every op made training steps 10-190x slower (benchmarks/RESULTS.md, "Quality per budget (CPU)").
if os.environ["SEGTUTOR_BUDGET"].strip().lower() == "ci":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
_paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
if ROOT not in _paths:
    os.environ["PYTHONPATH"] = os.pathsep.join([ROOT, *_paths])

# nbval waits only 5 s (hard-coded) for a cell's remaining output after the kernel replies; on a busy 2-core
# machine a training cell's progress-bar traffic can take longer to drain, failing a cell that ran fine.
try:
    from nbval import plugin as _nbval_plugin
except ImportError:  # plain pytest without nbval
    pass
else:
    _nbval_cell_init = _nbval_plugin.IPyNbCell.__init__

    def _patient_cell_init(self, *args, **kwargs):
        _nbval_cell_init(self, *args, **kwargs)
        self.output_timeout = 60

    _nbval_plugin.IPyNbCell.__init__ = _patient_cell_init
