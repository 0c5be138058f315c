"""The index of live silences that :meth:`daemon.silence.state.Silences.mutes` consults.

Pure: no I/O, no trio, no clock. The store decides which silences are live (active at its
horizon) and adds and removes them here; this module only answers "which of them could
match these labels", a superset the store then checks matcher by matcher.

Theory. A silence matches an alert only if every matcher matches, a missing label
reading as ``""``. Call a matcher a *key* when it is positive (``=`` or ``=~``) and
cannot match ``""``: an alert matched by the silence must then carry that label with a
value the key matches. A silence's key names form its *group* (a set of label names).
For a label pair ``(name, value)`` the *hits* are the silences with a key on ``name``
matching ``value``:

* ``=`` keys and regexes that spell out a small finite set of strings (``web|db``) sit
  in a dict under each ``(name, value)`` they match: a lookup;
* other regex keys (one per distinct pattern, shared by the silences using it) are
  checked per value in chunks of up to :data:`CHUNK`, each one RE2 set (``RE2::Set``):
  one DFA pass names exactly the keys the value matches, so a value costs one RE2 call
  per chunk whether it matches none or many (label values new to the cache, such as a
  new ``instance`` per alert, are the common case). Where RE2 refuses a set, a chunk
  falls back to one alternation of its keys (``^(?:(?:p1)|(?:p2)|…)$``), then
  alternations of :data:`PART` of them, then the keys of a matching part. Before the
  set, a bisect over its keys' possible-match ranges (RE2's) answers a value no key
  could match (``host-…`` against ``db-.*`` keys) without calling RE2; the C loop
  behind :meth:`MuteIndex.candidates` runs that bisect itself for a value no literal key
  names, so such a value (a new ``instance`` per alert) costs no Python call and no
  cache entry. Other answers are cached per label value until a key on that name
  changes, and values matching the same regex keys share one answer (all ``Bench…``
  values of ``alertname=~"Bench.*"``).

The candidates for a label set are, for each group whose names the labels all carry
with non-empty values and all hit, the intersection of that group's hits of those
names (each cached beside the hits, so a name none of the group's keys match costs one
lookup and another group's wide key is paid for once per answer), plus the few silences
without any key (only negative matchers, or matchers that also match ``""``), which are
always candidates. The work per alert depends on its labels, the groups and the silences
that do match a key, not on how many silences there are.

Invariants: every added silence is in exactly one group or in ``_keyless``; each of its
keys is in ``_eq`` or in the one chunk of its name holding its pattern; ``_hits[name]``
and ``_shared[name]`` only hold answers computed since the last change of a key on
``name``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from daemon.gocompat import regexp as goregex
from daemon.matcher import Matcher, MatchType
from daemon.silence.model import Silence

_mute_candidates: Callable[..., set[str]] | None
try:
    from daemon._speedups import mute_candidates as _mute_candidates
except ImportError:  # pragma: no cover - depends on the build
    _mute_candidates = None

#: Regex keys per chunk (one RE2 set): rebuilding one after a write costs about 1 ms (RE2's
#: compile). 512 saved only 6% of the lookups' CPU in issue 15's workload (two chunks of
#: ``instance`` keys become one) for twice the rebuild after each write.
CHUNK = 256
#: Keys per second-level alternation inside a chunk.
PART = 32
#: Cached hits per label name; the cache starts over beyond this (label values such as
#: ``instance`` may be unique per alert, and then caching them buys nothing).
HITS_PER_NAME = 16_384


def regex_literals(pattern: str) -> frozenset[str] | None:
    """The finite set of values ``pattern`` matches (anchored), when small and without ``""``.

    It comes from Go's syntax checker, which parses the pattern as the matcher does;
    wider patterns (``.*`` etc.) are regex keys.
    """
    values = goregex.anchored_literals(pattern)
    # An empty value would also match alerts without the label: not a key.
    if values is None or "" in values:
        return None
    return values


def _keys(s: Silence) -> tuple[list[tuple[str, frozenset[str]]], list[Matcher]]:
    """The silence's keys: (name, literal values) pairs and regex matchers."""
    literal: list[tuple[str, frozenset[str]]] = []
    regex: list[Matcher] = []
    for m in s.matchers:
        if m.type is MatchType.EQUAL:
            if m.value:
                literal.append((m.name, frozenset((m.value,))))
        elif m.type is MatchType.REGEXP:
            values = regex_literals(m.value)
            if values is not None:
                literal.append((m.name, values))
            elif not m.matches(""):
                regex.append(m)
    return literal, regex


def _combine(patterns: list[str]) -> goregex.GoRegexp | None:
    """One alternation matching exactly what one of ``patterns`` matches (anchored), or
    None when it cannot be built faithfully (then the patterns match one by one).

    A pattern that only balances inside Alertmanager's own wrapper (``a)|(b``) would
    change meaning inside ours, so it keeps the union from being built.
    """
    if len(patterns) < 2:
        return None
    try:
        for p in patterns:
            goregex.check(p)
    except goregex.GoRegexError:
        return None
    return goregex.anchored_union(patterns)


def _settable(pattern: str) -> bool:
    """Whether ``pattern`` may join an :class:`~daemon.gocompat.regexp.AnchoredSet`."""
    if "\\Q" in pattern:
        return False
    try:
        goregex.check(pattern)
    except goregex.GoRegexError:
        return False
    return True


#: A label value's hits and, per group asked so far, those hits within the group.
_Entry = tuple[frozenset[str], dict[frozenset[str], frozenset[str]]]
#: The entry of every value that hits nothing.
_MISS: _Entry = (frozenset(), {})


class _Chunk:
    """Up to :data:`CHUNK` distinct regex keys of one label name. Silences with the same
    pattern share one key.

    The keys sit in one RE2 set, so a value costs one DFA pass naming exactly the keys
    it matches, however many there are (a label value new to the cache is the common
    case: ``instance`` values). Keys a set cannot hold faithfully (``a)|(b``, ``\\Q``)
    are matched one by one beside it. When RE2 refuses the set (its memory budget),
    or ``use_set`` is off, the chunk falls back to one alternation of them all and one
    per :data:`PART`, so a value matching one key costs a few RE2 calls, not one per key.
    """

    __slots__ = ("combined", "dirty", "loose", "members", "parts", "set", "set_keys", "use_set")

    def __init__(self, use_set: bool) -> None:
        #: pattern -> (its matcher, the IDs of the silences keyed on it)
        self.members: dict[str, tuple[Matcher, set[str]]] = {}
        self.use_set = use_set
        self.set: goregex.AnchoredSet | None = None
        #: The set's member patterns by index, then the keys matched one by one.
        self.set_keys: list[str] = []
        self.loose: list[Matcher] = []
        self.combined: goregex.GoRegexp | None = None
        self.parts: list[tuple[goregex.GoRegexp | None, list[Matcher]]] = []
        self.dirty = True

    def rebuild(self) -> None:
        patterns = sorted(self.members)
        self.set, self.set_keys, self.loose = None, [], []
        self.combined, self.parts = None, []
        self.dirty = False
        if self.use_set:
            keys = [p for p in patterns if _settable(p)]
            self.set = goregex.anchored_set(keys)
            if self.set is not None:
                self.set_keys = keys
                loose = set(patterns).difference(keys)
                self.loose = [self.members[p][0] for p in sorted(loose)]
                return
        self.combined = _combine(patterns)
        for i in range(0, len(patterns), PART):
            part = patterns[i : i + PART]
            self.parts.append((_combine(part), [self.members[p][0] for p in part]))

    def matched(self, value: str, out: list[str]) -> None:
        """Append the keys (patterns) of this chunk that match ``value`` to ``out``."""
        if self.dirty:
            self.rebuild()
        if self.set is not None:
            found = self.set.matches(value)
            if found:
                keys = self.set_keys
                out.extend(sorted([keys[i] for i in found]))
            if self.loose:
                out.extend([m.value for m in self.loose if m.matches(value)])
            return
        if self.combined is not None and not self.combined.search(value):
            return
        for combined, matchers in self.parts:
            if combined is not None and not combined.search(value):
                continue
            out.extend([m.value for m in matchers if m.matches(value)])


def _filter_of(chunks: list[_Chunk]) -> goregex.RangeFilter | None:
    """One range filter over every key of ``chunks`` (rebuilt first where stale), or
    None when some key has no range to offer."""
    ranges: list[tuple[bytes, bytes]] = []
    for chunk in chunks:
        if chunk.dirty:
            chunk.rebuild()
        if chunk.set is None or chunk.loose:
            return None
        ranges.extend(chunk.set.filter.ranges)
    return goregex.RangeFilter(ranges)


class MuteIndex:
    """Live silences by their keys; :meth:`candidates` is a superset of the matches."""

    __slots__ = (
        "_chunk_of",
        "_chunks",
        "_eq",
        "_filters",
        "_group_of",
        "_groups",
        "_hits",
        "_keyless",
        "_literal_keys",
        "_quick",
        "_regex_keys",
        "_shared",
        "_use_set",
    )

    def __init__(self, *, use_set: bool = True) -> None:
        """``use_set=False`` keeps regex keys out of RE2 sets (the fallback path), so
        tests can check that path against the set's."""
        self._use_set = use_set
        self._eq: dict[tuple[str, str], set[str]] = {}
        self._chunks: dict[str, list[_Chunk]] = {}
        #: (name, pattern) -> the chunk holding that regex key.
        self._chunk_of: dict[tuple[str, str], _Chunk] = {}
        self._groups: dict[frozenset[str], set[str]] = {}
        self._group_of: dict[str, frozenset[str]] = {}
        self._keyless: set[str] = set()
        #: name -> value -> (hits, hits per group asked so far)
        self._hits: dict[str, dict[str, _Entry]] = {}
        #: name -> the regex keys a value matched -> their entry, shared by every value
        #: matching just those keys (``alertname=~"Bench.*"``: one entry, so one
        #: per-group intersection, for all the Bench alerts). Dropped with ``_hits[name]``.
        self._shared: dict[str, dict[tuple[str, ...], _Entry]] = {}
        self._literal_keys: dict[str, list[tuple[str, frozenset[str]]]] = {}
        self._regex_keys: dict[str, list[Matcher]] = {}
        #: name -> one range filter over every regex key on it (all its chunks), or None
        #: when some key has no range (a chunk without a set, or a key matched one by
        #: one). Dropped with ``_hits[name]``.
        self._filters: dict[str, goregex.RangeFilter | None] = {}
        #: name -> what the C loop needs to answer a value hitting nothing without
        #: :meth:`_lookup`: () when the name has no regex keys, else the bounds of its
        #: range filter; absent when neither is known (no filter yet, or a key without
        #: a range). Dropped with ``_hits[name]``.
        self._quick: dict[str, tuple[()] | tuple[list[bytes], list[bytes]]] = {}

    def __len__(self) -> int:
        return len(self._group_of) + len(self._keyless)

    def __contains__(self, sid: object) -> bool:
        return sid in self._group_of or sid in self._keyless

    def add(self, s: Silence) -> None:
        """Index ``s`` (a silence already indexed under its ID must be removed first)."""
        sid = s.id
        literal, regex = _keys(s)
        names = frozenset([n for n, _ in literal] + [m.name for m in regex])
        if not names:
            self._keyless.add(sid)
            return
        self._group_of[sid] = names
        self._groups.setdefault(names, set()).add(sid)
        self._literal_keys[sid] = literal
        self._regex_keys[sid] = regex
        for name, values in literal:
            for value in values:
                self._eq.setdefault((name, value), set()).add(sid)
            self._forget(name)
        for m in regex:
            name = m.name
            chunk = self._chunk_of.get((name, m.value))
            if chunk is None:
                chunks = self._chunks.setdefault(name, [])
                if not chunks or len(chunks[-1].members) >= CHUNK:
                    chunks.append(_Chunk(self._use_set))
                chunk = self._chunk_of[(name, m.value)] = chunks[-1]
                chunk.members[m.value] = (m, set())
                chunk.dirty = True
            chunk.members[m.value][1].add(sid)
            self._forget(name)

    def remove(self, sid: str) -> None:
        """Forget ``sid``; a no-op for an ID not indexed."""
        if sid in self._keyless:
            self._keyless.discard(sid)
            return
        names = self._group_of.pop(sid, None)
        if names is None:
            return
        group = self._groups[names]
        group.discard(sid)
        if not group:
            del self._groups[names]
        # Two keys of one silence may name the same pair (``a="x"``, ``a=~"x|y"``).
        pairs = {(name, v) for name, values in self._literal_keys.pop(sid) for v in values}
        for pair in pairs:
            bucket = self._eq.get(pair)
            if bucket is not None:
                bucket.discard(sid)
                if not bucket:
                    del self._eq[pair]
            self._forget(pair[0])
        for name, pattern in {(m.name, m.value) for m in self._regex_keys.pop(sid)}:
            chunk = self._chunk_of[(name, pattern)]
            sids = chunk.members[pattern][1]
            sids.discard(sid)
            self._forget(name)
            if sids:
                continue
            del chunk.members[pattern]
            del self._chunk_of[(name, pattern)]
            chunk.dirty = True
            if not chunk.members:
                chunks = self._chunks[name]
                chunks.remove(chunk)
                if not chunks:
                    del self._chunks[name]

    def warm_step(self) -> bool:
        """Rebuild one chunk a change left stale (its RE2 set compiles in ~4 ms for 256
        keys), or once none is, one name's range filter, so that the next look-up, on a
        flush's way, does not; whether there was one."""
        for chunks in self._chunks.values():
            for chunk in chunks:
                if chunk.dirty:
                    chunk.rebuild()
                    return True
        for name, chunks in self._chunks.items():
            if name not in self._filters:
                self._filter(name, chunks)
                return True
        return False

    def hits(self, name: str, value: str) -> frozenset[str]:
        """IDs of the indexed silences with a key on ``name`` that matches ``value``."""
        cache = self._hits.get(name)
        found = cache.get(value) if cache is not None else None
        return (found if found is not None else self._lookup(name, value))[0]

    def _forget(self, name: str) -> None:
        """Drop the cached answers for ``name`` (a key on it changed)."""
        self._hits.pop(name, None)
        self._shared.pop(name, None)
        self._filters.pop(name, None)
        self._quick.pop(name, None)

    def _filter(self, name: str, chunks: list[_Chunk]) -> goregex.RangeFilter | None:
        """Build and keep ``name``'s range filter (None: some key has no range)."""
        found = self._filters[name] = _filter_of(chunks)
        if found is not None:
            self._quick[name] = found.bounds()
        return found

    def _lookup(self, name: str, value: str) -> _Entry:
        """Compute and cache the hits of ``(name, value)``, with an empty per-group cache."""
        cache = self._hits.get(name)
        if cache is None:
            cache = self._hits[name] = {}
        if len(cache) >= HITS_PER_NAME:
            cache.clear()
            self._shared.pop(name, None)
        eq = self._eq.get((name, value))
        keys: list[str] = []
        chunks = self._chunks.get(name)
        if chunks:
            # One bisect over all the name's keys first: a value none can match (a new
            # ``instance`` per alert against ``db-.*`` keys) then costs the same however
            # many chunks there are, instead of a call and a bisect per chunk.
            if name in self._filters:
                found = self._filters[name]
            else:
                found = self._filter(name, chunks)
            if found is None or not found.excludes(value):
                for chunk in chunks:
                    chunk.matched(value, keys)
        else:
            self._quick[name] = ()
        if eq is None and not keys:
            # Most values hit nothing (a new ``instance`` per alert): they share one
            # entry, whose per-group dict is never written since an empty hit ends the
            # group.
            entry = cache[value] = _MISS
            return entry
        shared = None
        if eq is None:
            shared = self._shared.setdefault(name, {})
            entry = shared.get(tuple(keys))  # type: ignore[assignment]
            if entry is not None:
                cache[value] = entry
                return entry
        out: set[str] = set(eq) if eq is not None else set()
        chunk_of = self._chunk_of
        for key in keys:
            out.update(chunk_of[(name, key)].members[key][1])
        entry = cache[value] = (frozenset(out), {})
        if shared is not None:
            shared[tuple(keys)] = entry
        return entry

    def candidates(self, labels: Mapping[str, str]) -> set[str]:
        """Every indexed silence that may match ``labels`` (and maybe a few that do not).

        Each group's hits of a name are kept beside the name's hits: a wide key of another
        group sharing the name (``alertname=~"Bench.*"``) is then paid for once per value,
        not once per alert. This runs per alert: the loop is C's when built
        (:func:`daemon._speedups.mute_candidates`), :meth:`candidates_python` otherwise.
        """
        if _mute_candidates is not None and type(labels) is dict:
            return _mute_candidates(
                self._keyless,
                self._groups,
                self._hits,
                labels,
                self._lookup,
                self._eq,
                self._quick,
            )
        return self.candidates_python(labels)

    def candidates_many(self, labelsets: Sequence[Mapping[str, str]]) -> list[set[str]]:
        """:meth:`candidates` of each label set, without a method call per set (a
        flush asks for each alert of its group)."""
        find = _mute_candidates
        if find is None:
            return [self.candidates_python(labels) for labels in labelsets]
        keyless, groups, hits = self._keyless, self._groups, self._hits
        lookup, eq, quick = self._lookup, self._eq, self._quick
        return [
            find(keyless, groups, hits, labels, lookup, eq, quick)
            if type(labels) is dict
            else self.candidates_python(labels)
            for labels in labelsets
        ]

    def candidates_python(self, labels: Mapping[str, str]) -> set[str]:
        """:meth:`candidates` in Python: the definition the C loop is tested against.
        Inlined (no call per group and name)."""
        out = set(self._keyless)
        caches = self._hits
        for names, members in self._groups.items():
            # First every name's hits: a name without any rules the group out before an
            # intersection is built for another (``alertname=~"Bench.*"`` hits 250
            # silences of a group whose ``instance`` keys match nothing).
            entries: list[_Entry] = []
            for name in names:
                value = labels.get(name)
                # Keys never match "", so an absent or empty label rules the group out.
                if not value:
                    break
                cache = caches.get(name)
                entry = cache.get(value) if cache is not None else None
                if entry is None:
                    entry = self._lookup(name, value)
                if not entry[0]:
                    break
                entries.append(entry)
            else:
                sets: list[frozenset[str]] = []
                for hits, per_group in entries:
                    found = per_group.get(names)
                    if found is None:
                        found = per_group[names] = hits.intersection(members)
                    if not found:
                        break
                    sets.append(found)
                else:
                    if sets:
                        sets.sort(key=len)
                        out.update(sets[0].intersection(*sets[1:]))
        return out


__all__ = ["CHUNK", "HITS_PER_NAME", "MuteIndex", "regex_literals"]
