"""Start-up objects are kept out of the cyclic GC's full passes, and still freed by
reference counting when dropped."""

from __future__ import annotations

import gc
import weakref

from dockyard.app.memory import freeze_startup_objects


class _Thing:
    pass


def test_start_up_objects_are_frozen_yet_freed_when_dropped() -> None:
    thing = _Thing()
    gone = weakref.ref(thing)
    try:
        freeze_startup_objects()
        assert gc.get_freeze_count() > 0
        assert all(obj is not thing for obj in gc.get_objects())  # off the GC's lists
        del thing
        assert gone() is None
    finally:
        gc.unfreeze()
