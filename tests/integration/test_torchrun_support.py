"""The tests' torchrun helper on a hung launch: a failure with each process's stacks, nothing left running."""

import psutil
import pytest
from torchrun_support import torchrun

HANG = """\
import time

import torch.distributed as dist

dist.init_process_group("gloo")
if dist.get_rank() == 0:
    dist.barrier()  # rank 1 never joins
else:
    time.sleep(600)
"""


def test_a_hung_launch_fails_with_the_stacks_of_torchrun_and_both_ranks(tmp_path):
    script = tmp_path / "hang.py"
    script.write_text(HANG)
    with pytest.raises(pytest.fail.Exception) as failed:
        torchrun(script, timeout=20)
    message = str(failed.value)
    assert message.startswith("torchrun hung for 20 s")
    assert message.count(f'File "{script}"') == 2  # one stack per rank
    assert "torch/distributed/run.py" in message  # and torchrun's own
    left = [p for p in psutil.process_iter(["cmdline"]) if str(script) in (p.info["cmdline"] or [])]
    assert not left, f"still running: {left}"
