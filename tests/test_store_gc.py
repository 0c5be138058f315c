"""tune_gc sets the collector up for a large, long-lived alert store."""

from __future__ import annotations

import gc

from daemon.store import GC_THRESHOLDS, tune_gc


def test_tune_gc_raises_thresholds_and_freezes_startup_objects() -> None:
    """After tune_gc the thresholds are GC_THRESHOLDS and existing objects are frozen."""
    before = gc.get_threshold()
    try:
        tune_gc()
        assert gc.get_threshold() == GC_THRESHOLDS
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
