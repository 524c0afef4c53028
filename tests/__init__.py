"""The test suite; mirrors src/thitogene_kedro."""

import os

# Two test workers on two cores, and the runs they start as subprocesses: one compute thread each
# (torch, BLAS), not two each fighting for the same cores. Set here, before conftest imports torch or numpy.
for _threads in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_threads, "1")
