"""``common_entries``: the entries every map shares (commonLabels, commonAnnotations)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from daemon.template.data import common_entries

_maps = st.lists(
    st.dictionaries(st.sampled_from("abcd"), st.sampled_from(["x", "y", ""]), max_size=4),
    max_size=5,
)


@given(_maps)
def test_common_entries_are_the_shared_items_in_the_first_maps_order(
    maps: list[dict[str, str]],
) -> None:
    """Exactly the (name, value) pairs in every map, in the first map's order."""
    got = common_entries(maps)
    if not maps:
        assert got == {}
        return
    shared = set(maps[0].items()).intersection(*(m.items() for m in maps[1:]))
    assert set(got.items()) == shared
    assert list(got) == [k for k in maps[0] if (k, maps[0][k]) in shared]


def test_a_name_missing_from_one_map_is_not_common() -> None:
    assert common_entries([{"a": "1", "b": "2"}, {"a": "1"}, {"a": "1", "b": "2"}]) == {"a": "1"}
    assert common_entries([{"a": ""}, {}]) == {}
