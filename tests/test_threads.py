"""In-process callers keep their torch thread count. precompute-flow's writer thread runs one
torch thread; when it was the first to touch torch's thread pool (nothing parallel had run in
the process yet), the whole process was left with 1 thread, so later float sums, hence trained
weights, differed from those of a fresh `etc train` process. Nothing here may touch torch's
threads before the fixture runs."""

import subprocess
import sys

import torch

from tests.test_train import setup  # noqa: F401,F811  (the fixture: flow precomputed, a teacher trained)


def test_flow_precompute_and_training_leave_the_torch_thread_count(setup):  # noqa: F811
    fresh = subprocess.run([sys.executable, "-c", "import torch; print(torch.get_num_threads())"],
                           capture_output=True, text=True, check=True)
    torch.nn.functional.conv2d(torch.ones(1, 8, 32, 32), torch.ones(8, 8, 3, 3))  # a parallel region
    assert torch.get_num_threads() == int(fresh.stdout)
