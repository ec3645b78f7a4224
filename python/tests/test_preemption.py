"""SIGTERM during fit (python/serverless_tf/worker/preemption.py), one worker: no peers, no
coordination service. The two-worker path runs for real in test/integration/api/resume.test.ts."""
import os
import signal

from serverless_tf.protocol.exits import EXIT_PREEMPTED
from serverless_tf.worker.preemption import Preemption


class _Recorded:
    def __init__(self):
        self.step = None

    def __call__(self):
        return self.step


def _preemption(recorded):
    left = []
    p = Preemption(1, 0, recorded, leave=left.append)
    return p, left


def test_without_sigterm_no_step_is_saved_and_the_handler_is_given_back():
    before = signal.getsignal(signal.SIGTERM)
    p, left = _preemption(_Recorded())
    p.start()
    try:
        assert signal.getsignal(signal.SIGTERM) != before
        assert [p.after_step(s) for s in range(1, 50)] == [None] * 49
    finally:
        p.stop()
    assert signal.getsignal(signal.SIGTERM) == before
    assert left == []


def test_sigterm_saves_at_the_next_step_and_leaves_once_the_checkpoint_is_recorded():
    recorded = _Recorded()
    p, left = _preemption(recorded)
    p.start()
    try:
        assert p.after_step(7) is None
        os.kill(os.getpid(), signal.SIGTERM)  # the process survives: the handler only takes note
        assert p.noticed.is_set()
        assert p.after_step(8) is None  # announces step 9
        assert p.save_at == 9
        assert p.after_step(9) == "save"
        recorded.step = 9
        p.after_save(9)
    finally:
        p.stop()
    assert left == [EXIT_PREEMPTED]


def test_a_peer_that_was_not_noticed_saves_at_the_announced_step_and_trains_on():
    p, left = _preemption(_Recorded())
    p.save_at = 12  # as its watcher sets it from the noticed worker's announcement
    assert [p.after_step(s) for s in (11, 12, 13)] == [None, "save", None]
    p.after_save(12)
    assert left == []
