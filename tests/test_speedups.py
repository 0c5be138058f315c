"""The optional C speedups give exactly the pure Python results."""

from __future__ import annotations

import gc
import importlib
import sys
import types
import weakref
from pathlib import Path
from types import ModuleType

import pytest
import xxhash
from hypothesis import given
from hypothesis import strategies as st

import daemon
from daemon import alert
from daemon.alert import (
    Alert,
    _fingerprint_python,
    _labels_hash_bytes_python,
    _posted_labels_python,
    fingerprint,
    fingerprint_reference,
)
from daemon.api import postable
from daemon.api.postable import _str_dict_interned_python
from daemon.nflog import state as nflog_state
from daemon.nflog.codec import _packed, _packed_python
from daemon.nflog.state import _alert_hash_python, alert_hash
from daemon.notify import gojson
from daemon.notify.gojson import _join_python, _plain_string_map_python, escaped_string_map
from daemon.silence.state import Silences

labels_st = st.dictionaries(st.text(max_size=12), st.text(max_size=20), max_size=8)

#: Any character, lone surrogates included, weighted towards the ones Go's JSON escapes
#: (controls, quote, backslash, HTML, U+2028/9) and the edges of each str width.
_chars = st.one_of(
    st.characters(exclude_categories=()),
    st.sampled_from(
        list('"\\<>&\x00\x1f\x7f\x80\xff\u0100\u2028\u2029\ud800\udc80\udcff\udfff\ue000\U00010000')
    ),
    st.sampled_from(list("ab_=")),
)
any_text = st.text(alphabet=_chars, max_size=10)
any_map = st.dictionaries(any_text, any_text, max_size=6)
#: Texts that never need escaping, in every str width (ASCII, Latin-1, BMP, astral).
plain_text = st.text(
    alphabet=st.characters(
        exclude_categories=("Cs",), exclude_characters='"\\<>&\u2028\u2029'
    ).filter(lambda c: c >= " "),
    max_size=10,
)
plain_map = st.dictionaries(plain_text, plain_text, max_size=6)


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
    assert postable._str_dict_interned is speedups.str_dict_interned
    assert alert._labels_hash_bytes_fast is speedups.labels_hash_bytes
    assert nflog_state._hash_bytes is speedups.labels_hash_bytes
    assert gojson.plain_string_map is speedups.go_json_map
    assert gojson.join is speedups.json_join


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
    st.dictionaries(
        st.text(max_size=3), st.one_of(st.text(max_size=3), st.none(), st.integers()), max_size=5
    )
)
def test_c_str_dict_interned_matches_python(d: dict[str, object]) -> None:
    """str_dict_interned is None exactly when some value is not a str, like the Python
    fallback; otherwise a new dict of the same items, in order, every key interned."""
    got = _speedups().str_dict_interned(d)
    want = _str_dict_interned_python(d)
    if want is None:
        assert got is None
        return
    assert got is not None and got is not d
    assert list(got.items()) == list(want.items()) == list(d.items())
    assert all(k is sys.intern(k) for k in got)


def test_c_str_dict_interned_shares_keys_across_documents() -> None:
    """Keys decoded in separate documents become one object (the point of interning)."""
    import json

    first = _speedups().str_dict_interned(json.loads('{"alertname_x": "a"}'))
    second = _speedups().str_dict_interned(json.loads('{"alertname_x": "b"}'))
    assert first is not None and second is not None
    (k1,), (k2,) = first, second
    assert k1 is k2
    with pytest.raises(TypeError):
        _speedups().str_dict_interned([])  # type: ignore[arg-type]


@given(any_map)
def test_c_labels_hash_bytes_matches_python(labels: dict[str, str]) -> None:
    """C labels_hash_bytes gives the pure Python bytes, or raises the same
    UnicodeEncodeError (same string, position and reason) on a lone surrogate."""
    try:
        expected: bytes | UnicodeEncodeError = _labels_hash_bytes_python(labels)
    except UnicodeEncodeError as error:
        expected = error
    if isinstance(expected, bytes):
        assert _speedups().labels_hash_bytes(labels) == expected
        assert alert.labels_hash_bytes(labels) == expected
    else:
        with pytest.raises(UnicodeEncodeError) as raised:
            _speedups().labels_hash_bytes(labels)
        assert raised.value.args == expected.args


def test_c_labels_hash_bytes_layout_and_bad_input() -> None:
    """Sorted names, 0xFF after every name and value, UTF-8 of every width; non-dicts
    and non-str entries are TypeErrors, as in fingerprint."""
    speedups = _speedups()
    assert speedups.labels_hash_bytes({}) == b""
    got = speedups.labels_hash_bytes({"b": "é☃\U0001f600", "a": ""})
    assert got == b"a\xff\xffb\xff" + "é☃\U0001f600".encode() + b"\xff"
    with pytest.raises(TypeError):
        speedups.labels_hash_bytes([("a", "b")])
    with pytest.raises(TypeError):
        speedups.labels_hash_bytes({"a": 1})
    with pytest.raises(TypeError):
        speedups.labels_hash_bytes({1: "a"})


@given(any_map)
def test_alert_hash_keeps_the_join_and_encode_results(labels: dict[str, str]) -> None:
    """alert_hash over the C bytes equals the pure Python join-and-encode for every
    input, surrogates included (U+DC80..U+DCFF hash as before; others raise as before)."""
    try:
        expected: int | UnicodeEncodeError = _alert_hash_python(labels)
    except UnicodeEncodeError as error:
        expected = error
    if isinstance(expected, int):
        assert alert_hash(labels) == expected
        # A Mapping that is not a dict hashes the same.
        assert alert_hash(types.MappingProxyType(labels)) == expected
    else:
        with pytest.raises(UnicodeEncodeError) as raised:
            alert_hash(labels)
        assert raised.value.args == expected.args


def test_alert_hash_of_a_reserved_surrogate() -> None:
    """A label holding U+DC80 hashes as the byte 0x80, as the surrogateescape join did."""
    _speedups()
    labels = {"a": "\udc80"}
    assert alert_hash(labels) == xxhash.xxh64_intdigest(b"a\xff\x80\xff", 0)


@given(any_map)
def test_c_go_json_map_matches_python(d: dict[str, str]) -> None:
    """C go_json_map gives exactly the pure Python fallback's answer: the Go JSON text,
    or None when some key or value needs escaping."""
    assert _speedups().go_json_map(d) == _plain_string_map_python(d)


@given(plain_map)
def test_c_go_json_map_writes_every_width(d: dict[str, str]) -> None:
    """Maps with nothing to escape, in every str width, are written by C exactly as
    gojson escapes them string by string (equality also proves the str is canonical)."""
    got = _speedups().go_json_map(d)
    expected = escaped_string_map(d)
    assert got == expected
    # ASCII and Latin-1 strs share a width and compare equal either way; the flag
    # must still be right (isascii, and encode's fast path, read it).
    assert got is not None and got.isascii() == expected.isascii()


pieces_st = st.lists(
    st.one_of(
        any_text,
        plain_text,
        any_map,
        plain_map,
        st.integers(min_value=0, max_value=2**64 - 1),
    ),
    max_size=8,
).map(tuple)


@given(pieces_st)
def test_c_json_join_matches_python(pieces: tuple[str | dict[str, str] | int, ...]) -> None:
    """C json_join writes exactly what the pure Python fallback writes (raw text, maps as
    go_json_map, 16-hex fingerprints), in the widest input's str width, or None exactly
    when a map needs escaping."""
    got = _speedups().json_join(pieces)
    expected = _join_python(pieces)
    assert got == expected
    if expected is not None:
        assert got is not None and got.isascii() == expected.isascii()


@given(pieces_st, st.booleans())
def test_write_is_each_piece_escaped_as_go_does(
    pieces: tuple[str | dict[str, str] | int, ...], proxied: bool
) -> None:
    """gojson.write gives every piece's exact text: maps as escaped_string_map writes
    them whether or not one needs escaping, and whether they are dicts or other
    mappings (which the C join refuses)."""
    given_pieces = tuple(
        types.MappingProxyType(p) if proxied and isinstance(p, dict) else p for p in pieces
    )
    expected = "".join(
        p if isinstance(p, str) else f"{p:016x}" if isinstance(p, int) else escaped_string_map(p)
        for p in pieces
    )
    assert gojson.write(given_pieces) == expected


@pytest.mark.parametrize("join", ["c", "python"])
def test_json_join_bad_input(join: str) -> None:
    """Wrong pieces raise, in C as in Python, instead of writing a wrong text."""
    f = _speedups().json_join if join == "c" else _join_python
    assert f(("a", {"k": "v"}, 255)) == 'a{"k":"v"}00000000000000ff'
    assert f(()) == ""
    with pytest.raises(OverflowError):
        f((-1,))
    with pytest.raises(OverflowError):
        f((2**64,))
    with pytest.raises(TypeError):
        f((1.5,))
    with pytest.raises(TypeError):
        f(({"a": 1},))  # type: ignore[dict-item]
    with pytest.raises(TypeError):
        f((b"x",))  # type: ignore[arg-type]
    if join == "c":
        with pytest.raises(TypeError):
            f(["a"])  # type: ignore[arg-type]


def test_c_go_json_map_escape_set_is_gojsons() -> None:
    """For every BMP character and a few astral ones, C refuses a map holding it (as
    key or as value) exactly when gojson would escape it."""
    speedups = _speedups()
    for code in [*range(0x10000), 0x10000, 0x1F600, 0x10FFFF]:
        c = chr(code)
        plain = gojson.string(c) == f'"{c}"'
        for d in ({"k": c}, {c: "v"}, {"a": "b", "k": "x" + c + "é"}):
            assert (speedups.go_json_map(d) is not None) is plain, hex(code)


@given(any_map)
def test_python_plain_string_map_matches_gojson(d: dict[str, str]) -> None:
    """The pure Python fallback is None exactly when escaping would change a string,
    and otherwise the text gojson writes."""
    needs_escape = any(gojson.string(s) != f'"{s}"' for s in [*d, *d.values()])
    got = _plain_string_map_python(d)
    assert got == (None if needs_escape else escaped_string_map(d))


@given(any_map)
def test_string_map_equals_escaped_string_map(d: dict[str, str]) -> None:
    """gojson.string_map, fast path and all, writes what escaping every string gives."""
    assert gojson.string_map(d) == escaped_string_map(d)


#: Past the 16 entries C sorts on the stack: the list.sort path.
large_map = st.dictionaries(any_text, any_text, min_size=17, max_size=40)
large_plain_map = st.dictionaries(plain_text, plain_text, min_size=17, max_size=40)


@given(large_map, large_plain_map)
def test_c_functions_on_large_dicts(d: dict[str, str], plain: dict[str, str]) -> None:
    """Dicts too large for the in-place sort give the same results through list.sort
    (fingerprint included, which sorts the same way)."""
    speedups = _speedups()
    assert speedups.go_json_map(d) == _plain_string_map_python(d)
    assert speedups.go_json_map(plain) == escaped_string_map(plain)
    assert speedups.labels_hash_bytes(plain) == _labels_hash_bytes_python(plain)
    assert speedups.fingerprint(plain) == fingerprint_reference(plain)


class _Name(str):
    """A str subclass (no overrides): C cannot sort it in place, so it takes list.sort."""


@given(plain_map)
def test_c_functions_on_str_subclass_keys(d: dict[str, str]) -> None:
    """Keys and values of a str subclass are sorted and written like the str they hold."""
    speedups = _speedups()
    sub = {_Name(k): v for k, v in d.items()}
    assert speedups.go_json_map(sub) == escaped_string_map(d)
    assert speedups.labels_hash_bytes(sub) == _labels_hash_bytes_python(d)
    assert speedups.fingerprint(sub) == fingerprint_reference(d)
    # str subclass values with exact str keys stay on the in-place path: read alike.
    sub_values = {k: _Name(v) for k, v in d.items()}
    assert speedups.go_json_map(sub_values) == escaped_string_map(d)
    assert speedups.labels_hash_bytes(sub_values) == _labels_hash_bytes_python(d)


@pytest.mark.parametrize(
    "bad",
    [
        {"a": None},
        {1: "a"},
        {"a": "b", 2: "c"},
        {"<": 1},
        {_Name("a"): 1},
        {**{f"k{i}": "v" for i in range(20)}, "z": 1},
    ],
)
def test_go_json_map_rejects_non_str_like_the_exact_path(bad: dict[object, object]) -> None:
    """A non-str key or value is a TypeError in C, in the fallback and in the exact
    path, so callers see the same error whichever runs."""
    speedups = _speedups()
    with pytest.raises(TypeError):
        speedups.go_json_map(bad)
    with pytest.raises(TypeError):
        _plain_string_map_python(bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        escaped_string_map(bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        speedups.go_json_map([("a", "b")])
    with pytest.raises(TypeError):
        speedups.labels_hash_bytes(bad)


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


@given(st.integers(min_value=-(2**70), max_value=2**70))
def test_c_timestamp_equals_the_python_one(ns: int) -> None:
    """encode_timestamp's one C call (both fields set) writes the bytes of the field by
    field Python encoding, for any Unix ns, before the epoch and past uint64 included."""
    from daemon.gocompat import pbtimestamp

    _speedups()
    fast = pbtimestamp.encode_timestamp(ns)
    saved = pbtimestamp._pack_uvarints
    pbtimestamp._pack_uvarints = None
    try:
        assert fast == pbtimestamp.encode_timestamp(ns)
    finally:
        pbtimestamp._pack_uvarints = saved
    assert pbtimestamp.decode_timestamp(fast) == ns or not -(2**63) * 10**9 <= ns < 2**63 * 10**9


def test_nflog_entries_and_history_records_are_not_tracked() -> None:
    """The nflog's entries (kept for the retention) and a flush's history record with
    its alerts (kept until the writer has them) are values only: out of the collector's
    walk, as alerts are."""
    from daemon.history.record import from_attempt
    from daemon.nflog.codec import decode_mesh_entry, encode_mesh_entry
    from daemon.nflog.state import Nflog, ReceiverKey
    from daemon.notify.attempt import Attempt, Outcome
    from daemon.notify.context import NotifyContext

    _speedups()
    entry = Nflog().log(ReceiverKey("r", "webhook", 0), '{}:{a="b"}', [1, 2], [3], now=10)
    assert entry is not None and not gc.is_tracked(entry)
    # Entries from a snapshot or a peer too.
    assert not gc.is_tracked(decode_mesh_entry(encode_mesh_entry(entry)))
    ctx = NotifyContext("{}:{}", {"a": "b"}, "r", 3600, "{}", 10)
    a = Alert({"alertname": "x"}, {}, 1, 2)
    record = from_attempt(Attempt(ctx, "webhook", 0, [a], 10, 11, None, Outcome.SENT))
    assert not gc.is_tracked(record)
    assert [gc.is_tracked(h) for h in record.alerts] == [False]
    assert record.alerts[0].labels is a.labels


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
    assert module.labels_hash_bytes({"a": "b"}) == b"a\xffb\xff"


def _load_without_extension(monkeypatch: pytest.MonkeyPatch, module: ModuleType) -> ModuleType:
    """A fresh copy of ``module`` imported while daemon._speedups cannot be imported."""
    import importlib.util

    monkeypatch.setitem(sys.modules, "daemon._speedups", None)  # import fails
    spec = importlib.util.spec_from_file_location(f"{module.__name__}_without_c", module.__file__)
    assert spec is not None and spec.loader is not None
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    return loaded


def test_gojson_works_without_the_extension(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the C build gojson writes plain maps with the Python fallback, same text."""
    module = _load_without_extension(monkeypatch, gojson)
    assert module.plain_string_map is module._plain_string_map_python
    assert module.string_map({"b": "é", "a": "1"}) == '{"a":"1","b":"é"}'
    assert module.string_map({"a": "<"}) == '{"a":"\\u003c"}'


def test_nflog_hash_works_without_the_extension(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the C build alert_hash is the join-and-encode, with the same hashes."""
    module = _load_without_extension(monkeypatch, nflog_state)
    assert module.alert_hash is module._alert_hash_python
    labels = {"b": "☃", "a": "1"}
    assert module.alert_hash(labels) == xxhash.xxh64_intdigest(
        b"a\xff1\xffb\xff\xe2\x98\x83\xff", 0
    )


@given(st.lists(st.integers(min_value=0, max_value=2**64 - 1), max_size=12))
def test_c_pack_uvarints_matches_python(values: list[int]) -> None:
    """The C packed varints are the pure Python ones, for any uint64 values."""
    speedups = _speedups()
    assert speedups.pack_uvarints(tuple(values)) == _packed_python(tuple(values))
    assert speedups.pack_uvarints(values) == _packed_python(tuple(values))
    assert _packed(tuple(values)) == _packed_python(tuple(values))


def test_c_pack_uvarints_leaves_the_rest_to_python() -> None:
    """Values outside uint64 give None (the Python path's rules then apply: a negative
    one as int64, ValueError past 64 bits); non-ints and other containers a TypeError."""
    speedups = _speedups()
    assert speedups.pack_uvarints((1, -1)) is None
    assert speedups.pack_uvarints((2**64,)) is None
    assert _packed((-1,)) == b"\xff" * 9 + b"\x01"
    with pytest.raises(ValueError, match="out of range"):
        _packed((2**64,))
    with pytest.raises(TypeError):
        speedups.pack_uvarints((1.5,))
    with pytest.raises(TypeError):
        speedups.pack_uvarints({1, 2})  # type: ignore[arg-type]


def test_c_json_join_holds_each_map_it_sorted_while_python_code_runs() -> None:
    """A later map's str subclass keys run Python code while json_join sorts them; code
    that empties an earlier map (already sorted, to be written after) freed the strings
    json_join had borrowed from it. It holds them now and writes the map as given.
    Run in a child: the old code crashed the interpreter."""
    _speedups()
    import subprocess
    import textwrap

    script = textwrap.dedent(
        """
        from daemon._speedups import json_join
        from daemon.notify.gojson import _join_python

        first = {"k%d" % i: ("v%d" % i) * 50 for i in range(3)}
        # Equal copies: holding the same objects here would keep them alive.
        as_given = {"".join(k): "".join(v) for k, v in first.items()}
        reused = []

        class Emptying(str):
            def __lt__(self, other):
                if first:
                    first.clear()
                    # New strings of the same sizes take the freed memory, so reading
                    # it shows as other text rather than by chance as the old one.
                    reused.extend("%c" % (ord("a") + i % 26) * 100 for i in range(3000))
                    reused.extend("j%d" % (i % 10) for i in range(3000))
                return str.__lt__(self, other)

            __hash__ = str.__hash__

        got = json_join((first, {Emptying("a"): "x", Emptying("b"): "y"}))
        print(got == _join_python((as_given, {"a": "x", "b": "y"})))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True"
