import os
import signal
import time

import pytest

from ansible_collections.keel.ops.plugins.module_utils._redis import restore as redis_restore


def test_a_signal_while_the_server_is_down_raises_once_and_handlers_come_back():
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(redis_restore.Interrupted, match="interrupted by SIGTERM"):
        with redis_restore._signals_interrupt():  # pylint: disable=protected-access
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
    with redis_restore._signals_interrupt():  # pylint: disable=protected-access
        with pytest.raises(redis_restore.Interrupted):
            os.kill(os.getpid(), signal.SIGHUP)
            time.sleep(5)
        os.kill(os.getpid(), signal.SIGTERM)  # the next one is ignored: the server is being started again
        time.sleep(0.05)
    assert signal.getsignal(signal.SIGTERM) is before
