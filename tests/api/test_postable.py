"""The pure body decoder: date-times, URIs and Go's JSON error texts (spec §1.1)."""

import pytest

from daemon.api.postable import BodyError, is_request_uri, parse_alerts, parse_datetime
from tests.api.conftest import NOW, S


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("2026-01-01T00:00:00Z", NOW),
        ("2026-01-01T00:00:00.5Z", NOW + S // 2),
        ("2026-01-01T01:00:00+01:00", NOW),
        ("2026-01-01T01:00:00.000+0100", NOW),
        ("2026-01-01T00:00:00", NOW),
        ("2026-01-01T00:00Z", NOW),
        ("2026-01-01T00:00", NOW),
        ("2026-01-01 00:00:00", NOW),
        ("2025-12-31T23:00:00-01:00", NOW),
        ("", 0),
    ],
)
def test_datetime_layouts(text: str, ns: int) -> None:
    """strfmt.DateTime's layouts parse (zone-less ones as UTC; empty is the Unix epoch)."""
    assert parse_datetime(text) == ns


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("nope", 'parsing time "nope" as "2006-01-02 15:04:05": cannot parse "nope" as "2006"'),
        (
            "2020-01-01",
            'parsing time "2020-01-01" as "2006-01-02 15:04:05": cannot parse "" as "15"',
        ),
        ("2020-13-01 00:00:00", 'parsing time "2020-13-01 00:00:00": month out of range'),
        ("2020-02-30 00:00:00", 'parsing time "2020-02-30 00:00:00": day out of range'),
        ("2020-01-01 00:00:00x", 'parsing time "2020-01-01 00:00:00x": extra text: "x"'),
        (
            "2020/01/01",
            'parsing time "2020/01/01" as "2006-01-02 15:04:05": cannot parse "/01/01" as "-"',
        ),
        (
            "2026-01-01T00:00:00+0100",
            'parsing time "2026-01-01T00:00:00+0100" as "2006-01-02 15:04:05": cannot parse "T00:00:00+0100" as " "',
        ),
    ],
)
def test_datetime_errors_read_like_go(text: str, message: str) -> None:
    """Unparsable times report Go's error for strfmt's last layout."""
    with pytest.raises(ValueError) as info:
        parse_datetime(text)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("uri", "ok"),
    [
        ("http://g/x?a=1&b=2", True),
        ("https://user:pw@host:9090/graph#frag", True),
        ("mailto:x", True),
        ("/x#y", True),
        ("http://[::1]:80/", True),
        ("not a url", False),
        ("x", False),
        ("http://a b/", False),
        ("http://x:abc/", False),
        ("http://x/%zz", False),
        ("1http://x", False),
        (":x", False),
        ("http://x/\n", False),
    ],
)
def test_uri_format(uri: str, ok: bool) -> None:
    """generatorURL follows Go's url.ParseRequestURI."""
    assert is_request_uri(uri) is ok


def test_not_an_object_item_names_the_go_struct() -> None:
    """A non-object item reports the generated anonymous struct, as 0.25 does."""
    with pytest.raises(BodyError) as info:
        parse_alerts(b"[1]")
    assert info.value.message.startswith(
        'parsing alerts body from "" failed, because json: cannot unmarshal number into Go '
        'value of type struct { Annotations models.LabelSet "json:\\"annotations,omitempty\\""'
    )


def test_decode_errors_beat_earlier_schema_errors() -> None:
    """A type error in a later item wins over a missing label in an earlier one (400 > 422)."""
    with pytest.raises(BodyError) as info:
        parse_alerts(b'[{}, {"labels": {"a": true}}]')
    assert (info.value.status, info.value.code) == (400, 400)
    assert info.value.message.endswith(
        "cannot unmarshal bool into Go struct field Alert.labels of type string"
    )


def test_null_label_values_read_as_empty() -> None:
    """JSON null label values decode to empty strings (later dropped as empty labels)."""
    (raw,) = parse_alerts(b'[{"labels": {"a": null, "b": "c"}}]')
    assert raw[0] == {"a": "", "b": "c"}


def test_time_strings_are_parsed_once_per_body() -> None:
    """Repeated identical times in one body give identical values (parsed via the cache)."""
    body = (
        b"["
        + b",".join(b'{"labels":{"i":"%d"},"endsAt":"2026-01-01T00:00:00Z"}' % i for i in range(3))
        + b"]"
    )
    assert {raw[3] for raw in parse_alerts(body)} == {NOW}
