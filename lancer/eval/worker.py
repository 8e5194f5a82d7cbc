"""The child process of one local attempt: ``python -m lancer.eval.worker`` (job JSON on stdin).

It runs ``run_attempt`` and writes the row as one JSON line on its stdout; anything else
that would reach stdout goes to stderr instead, so the row is the only thing there.

Signals: the first SIGINT or SIGTERM ends the run as ``interrupted`` (outputs written,
sandbox removed); later ones are ignored, so cleanup is never cut short. The process asks
Linux to send it SIGTERM when its parent (the eval) dies, so a ``kill -9`` of the eval leaves
no attempt running on.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import sys
from pathlib import Path
from types import FrameType

from lancer.eval.attempt import AttemptJob, run_attempt
from lancer.eval.store import WORKER_PID_FILE

PR_SET_PDEATHSIG = 1


def main() -> int:
    job = AttemptJob.from_dict(json.loads(sys.stdin.read()))
    run_dir = Path(job.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / WORKER_PID_FILE).write_text(str(os.getpid()))  # a resumed eval stops a stray one
    row_out = os.dup(1)
    os.dup2(2, 1)  # stray prints go to the log, not into the row
    _die_with_parent(int(os.environ.get("LANCER_EVAL_PARENT", "0")))
    signal.signal(signal.SIGINT, _interrupt_once)
    signal.signal(signal.SIGTERM, _interrupt_once)
    row = run_attempt(job)
    data = (json.dumps(row) + "\n").encode()
    try:
        while data:
            data = data[os.write(row_out, data) :]
    except BrokenPipeError:  # the eval is gone (killed); its resume runs this attempt again
        return 1
    return 0


def _die_with_parent(parent: int) -> None:
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: an orphan runs to its own end
        return
    if parent and os.getppid() != parent:  # the parent died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


def _interrupt_once(signum: int, frame: FrameType | None) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
