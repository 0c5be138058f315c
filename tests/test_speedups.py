"""The optional C speedups give exactly the pure Python results."""

from __future__ import annotations

import gc
import importlib
import sys
import weakref
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import given
from hypothesis import strategies as st

import daemon
from daemon import alert
from daemon.alert import (
    Alert,
    _fingerprint_python,
    _posted_labels_python,
    fingerprint,
    fingerprint_reference,
)
from daemon.api import postable
from daemon.api.postable import _str_values_python
from daemon.silence.state import Silences

labels_st = st.dictionaries(st.text(max_size=12), st.text(max_size=20), max_size=8)


def _speedups() -> ModuleType:
    """The built extension; skip only where it was never built (no compiler)."""
    built = list(Path(daemon.__file__).parent.glob("_speedups*.so"))
    if not built:
        pytest.skip("daemon/_speedups was not built")
    return importlib.import_module("daemon._speedups")


def test_alert_module_uses_the_extension_when_built() -> None:
    """A built extension is what posting and the Alert class hash with."""
    speedups = _speedups()
    assert alert._fingerprint_fast is speedups.fingerprint
    assert alert._posted_labels is speedups.posted_labels
    assert postable._str_values is speedups.str_values


@given(labels_st)
def test_c_fingerprint_matches_reference(labels: dict[str, str]) -> None:
    """C FNV-1a 64 equals the plain byte loop for any labels, non-ASCII included."""
    assert _speedups().fingerprint(labels) == fingerprint_reference(labels)


@given(labels_st)
def test_python_fallback_matches_reference(labels: dict[str, str]) -> None:
    """The unrolled pure Python fallback equals the plain byte loop."""
    assert _fingerprint_python(labels) == fingerprint_reference(labels)


def test_non_ascii_fingerprint_matches_alertmanager() -> None:
    """A non-ASCII value hashes as its UTF-8 bytes: the value Alertmanager 0.25 printed."""
    assert f"{fingerprint({'alertname': 'x', 'team': '☃ snow'}):016x}" == "23187af20d3c247b"


def test_c_fingerprint_rejects_bad_input() -> None:
    """Non-dict labels, non-str values and lone surrogates raise instead of hashing garbage."""
    speedups = _speedups()
    with pytest.raises(TypeError):
        speedups.fingerprint([("a", "b")])
    with pytest.raises(TypeError):
        speedups.fingerprint({"a": 1})
    with pytest.raises(UnicodeEncodeError):
        speedups.fingerprint({"a": "\ud800x"})


@given(labels_st)
def test_c_posted_labels_interns_values_and_fingerprints(labels: dict[str, str]) -> None:
    """posted_labels gives the reference fingerprint and leaves interned, equal values."""
    speedups = _speedups()
    # Fresh (non-interned) copies of the values, as the JSON decoder makes them.
    fresh = {k: "".join(list(v)) for k, v in labels.items()}
    assert speedups.posted_labels(fresh) == fingerprint_reference(labels)
    assert fresh == labels
    assert all(v is sys.intern(v) for v in fresh.values())


@given(labels_st)
def test_python_posted_labels_matches_c(labels: dict[str, str]) -> None:
    """The pure Python fallback of posted_labels gives the same fingerprint and values."""
    fresh = dict(labels)
    assert _posted_labels_python(fresh) == fingerprint_reference(labels)
    assert fresh == labels
    assert all(v is sys.intern(v) for v in fresh.values())


@given(
    st.dictionaries(st.text(max_size=3), st.one_of(st.text(max_size=3), st.none(), st.integers()))
)
def test_c_str_values_matches_python(d: dict[str, object]) -> None:
    """str_values is True exactly when every value is a str, like the Python fallback."""
    assert _speedups().str_values(d) is _str_values_python(d)


def test_c_untrack_takes_objects_out_of_the_collector() -> None:
    """untrack returns its argument, no longer tracked; non-GC objects pass through."""
    speedups = _speedups()
    assert alert.untrack is speedups.untrack
    box = [1]
    assert gc.is_tracked(box)
    assert speedups.untrack(box) is box
    assert not gc.is_tracked(box)
    assert speedups.untrack(box) is box  # twice is harmless
    assert speedups.untrack("text") == "text"


def test_python_untrack_fallback_is_a_no_op() -> None:
    """Without the C build untrack changes nothing, so everything still works, just
    with the collector walking alerts as before."""
    box = [1]
    assert alert._untrack_python(box) is box
    assert gc.is_tracked(box)


def test_alerts_are_not_tracked() -> None:
    """Every Alert (new, copied or merged) is out of the collector's walk, so a full
    collection does not grow with the store."""
    _speedups()
    a = Alert({"alertname": "x"}, {"s": "y"}, 1, 2)
    assert not gc.is_tracked(a)
    assert not gc.is_tracked(a.copy(ends_at=3))
    assert not gc.is_tracked(alert.merge(a, Alert({"alertname": "x"}, {}, 1, 5), 1))
    tracked_before = len(gc.get_objects())
    many = [Alert({"alertname": "x", "i": str(i)}, {}, 1, 2) for i in range(10_000)]
    assert len(gc.get_objects()) < tracked_before + 100
    assert len(many) == 10_000


class _Annotations(dict[str, str]):
    """A dict that can be weakly referenced, to see when the alert holding it is freed."""


def test_untracked_alerts_are_freed_by_refcount() -> None:
    """An untracked alert is released as soon as its last reference goes, no collection
    needed."""
    _speedups()
    annotations = _Annotations(summary="s")
    gone = weakref.ref(annotations)
    a = Alert({"alertname": "y"}, annotations, 1, 2)
    del annotations
    assert gone() is not None
    del a
    assert gone() is None


def test_silence_marks_are_not_tracked() -> None:
    """The per-alert silence marks (one per listed or notified alert) stay out of the
    collector's walk too."""
    _speedups()
    silences = Silences(retention=3600 * 10**9)
    labels = {"alertname": "marks"}
    silences.mutes(labels, fingerprint(labels), 10**18)
    assert not [o for o in gc.get_objects() if type(o).__name__ == "_Marks"]


def test_alert_module_works_without_the_extension(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the C build, daemon.alert falls back to pure Python: alerts stay tracked
    by the collector, and everything else is the same."""
    import importlib.util

    monkeypatch.setitem(sys.modules, "daemon._speedups", None)  # import fails
    spec = importlib.util.spec_from_file_location("alert_without_c", alert.__file__)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.untrack is module._untrack_python
    made = module.Alert({"alertname": "x"}, {}, 1, 2)
    assert gc.is_tracked(made)
    assert made.fingerprint == fingerprint_reference({"alertname": "x"})
