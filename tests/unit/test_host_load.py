"""The gate's view of the host during its load: our CPU and everyone else's, from /proc."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from loadtests import host_load
from loadtests.host_load import CpuSample


def _burn(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def test_the_shares_are_cores_worth_over_the_interval() -> None:
    load = host_load.between(CpuSample(10.0, 100.0, 5.0), CpuSample(12.0, 103.0, 6.0))
    assert load is not None
    assert (load.seconds, load.busy_cores, load.gate_cores) == (2.0, 1.5, 0.5)
    assert load.other_cores == 1.0 and load.busy
    assert "other processes used 1.00 of" in load.describe()
    assert host_load.between(None, CpuSample(1.0, 1.0, 1.0)) is None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads Linux's /proc")
def test_our_own_work_is_ours_and_another_process_is_other() -> None:
    before = host_load.sample(None)
    _burn(0.6)
    ours = host_load.between(before, host_load.sample(None))
    assert ours is not None and ours.gate_cores > 0.4, ours

    # A process not of the service's session, not waited for: someone else's.
    other = subprocess.Popen(
        [sys.executable, "-c", "import time\nend = time.time() + 3\nwhile time.time() < end: pass"]
    )
    try:
        time.sleep(0.5)  # its start (imports) over
        before = host_load.sample(None)
        time.sleep(1.0)
        theirs = host_load.between(before, host_load.sample(None))
    finally:
        other.kill()
        other.wait()
    assert theirs is not None and theirs.busy and theirs.other_cores > 0.5, theirs
