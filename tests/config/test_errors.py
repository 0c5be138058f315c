"""Invalid configs: Alertmanager's exact messages (spec §9.6) plus our file, line and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.config.errors import ConfigError
from daemon.config.load import load_config_file, load_config_text

BAD = Path(__file__).parent / "corpus" / "bad"

# corpus file → (message, line, key). Every row of spec §9.6 is here, and two orderings of
# yaml.v2's errors; messages were recorded from amtool 0.25 (test_amtool_compat re-checks
# them against the binary).
SPEC_ROWS: dict[str, tuple[str, int | None, str | None]] = {
    "empty": ("no route provided in config", None, None),
    "no_route": ("no routes provided", 1, None),
    "root_no_receiver": ("root route must specify a default receiver", 1, "route"),
    "root_matchers": ("root route must not have any matchers", 1, "route"),
    "root_continue": ("cannot have continue in root route", 3, "route.continue"),
    "root_mute": (
        "root route must not have any mute time intervals",
        3,
        "route.mute_time_intervals",
    ),
    "root_active": (
        "root route must not have any active time intervals",
        3,
        "route.active_time_intervals",
    ),
    "unknown_receiver": ('undefined receiver "b" used in route', 4, "route.routes[0].receiver"),
    "duplicate_receiver": ('notification config name "a" is not unique', 5, "receivers[1].name"),
    "receiver_no_name": ("missing name in receiver", 5, "receivers[1]"),
    "unknown_key_top": (
        "yaml: unmarshal errors:\n  line 5: field foo not found in type config.plain",
        5,
        "foo",
    ),
    "bad_yaml": ("yaml: line 2: did not find expected key", 3, None),
    "group_by_wildcard_mix": (
        "cannot have wildcard group_by (`...`) and other other labels at the same time",
        3,
        "route.group_by",
    ),
    "group_by_duplicate": ('duplicated label "a" in group_by', 3, "route.group_by"),
    "group_by_bad_name": ('invalid label name "a-b" in group_by list', 3, "route.group_by"),
    "group_interval_zero": ("group_interval cannot be zero", 3, "route.group_interval"),
    "repeat_interval_zero": (
        "repeat_interval cannot be zero",
        4,
        "route.routes[0].repeat_interval",
    ),
    "bad_duration": ('not a valid duration string: "5x"', 3, "route.group_wait"),
    "bad_matcher": ("bad matcher format: foo", 4, "route.routes[0].matchers"),
    "bad_match_re": (
        "error parsing regexp: missing closing ): `^(?:(())$`",
        4,
        "route.routes[0].match_re.a",
    ),
    "bad_match_key": ('invalid label name "foo-bar"', 4, "route.routes[0].match"),
    "webhook_no_url": ("missing URL in webhook config", 6, "receivers[0].webhook_configs[0]"),
    "webhook_ftp": (
        'unsupported scheme "ftp" for URL',
        6,
        "receivers[0].webhook_configs[0].url",
    ),
    "webhook_no_host": ("missing host for URL", 6, "receivers[0].webhook_configs[0].url"),
    "email_no_to": ("missing to address in email config", 6, "receivers[0].email_configs[0]"),
    "email_no_smarthost": ("no global SMTP smarthost set", 6, "receivers[0].email_configs[0]"),
    "email_no_from": ("no global SMTP from set", 8, "receivers[0].email_configs[0]"),
    "slack_no_url": (
        "no global Slack API URL set either inline or in a file",
        6,
        "receivers[0].slack_configs[0]",
    ),
    "pagerduty_no_key": (
        "missing service or routing key in PagerDuty config",
        6,
        "receivers[0].pagerduty_configs[0]",
    ),
    "opsgenie_no_key": (
        "no global OpsGenie API Key set either inline or in a file",
        6,
        "receivers[0].opsgenie_configs[0]",
    ),
    "undefined_interval": (
        'undefined time interval "nope" used in route',
        4,
        "route.routes[0].mute_time_intervals",
    ),
    "duplicate_interval": ('time interval "x" is not unique', 8, "time_intervals[1].name"),
    "interval_no_name": ("missing name in time interval", 6, "time_intervals[0]"),
    "bad_weekday": (
        "funday is not a valid weekday",
        8,
        "time_intervals[0].time_intervals[0].weekdays[0]",
    ),
    "times_reversed": (
        "start time cannot be equal or greater than end time",
        8,
        "time_intervals[0].time_intervals[0].times[0]",
    ),
    "times_25": (
        "couldn't parse timestamp 25:00, invalid format",
        8,
        "time_intervals[0].time_intervals[0].times[0]",
    ),
    "dom_negative_start": (
        "end day must be negative if start day is negative",
        8,
        "time_intervals[0].time_intervals[0].days_of_month[0]",
    ),
    "dom_zero": (
        "0 is not a valid day of the month: out of range",
        8,
        "time_intervals[0].time_intervals[0].days_of_month[0]",
    ),
    "bad_location": (
        "unknown time zone Mars/Olympus",
        8,
        "time_intervals[0].time_intervals[0].location",
    ),
    # Several type problems are reported together, the first one's place kept.
    "unknown_keys_many": (
        "yaml: unmarshal errors:\n"
        "  line 3: field foo not found in type config.plain\n"
        "  line 5: field bar not found in type config.plain\n"
        "  line 8: field baz not found in type config.plain",
        3,
        "route.foo",
    ),
    # As in yaml.v2, a failing check aborts at once even after unknown keys were seen.
    "validation_beats_type_error": ("missing name in receiver", 5, "receivers[0]"),
}


def text_error(text: str, filename: str = "<config>") -> ConfigError:
    """The error loading config ``text`` raises."""
    with pytest.raises(ConfigError) as info:
        load_config_text(text, filename)
    return info.value


def file_error(path: str) -> ConfigError:
    """The error loading the config file at ``path`` raises."""
    with pytest.raises(ConfigError) as info:
        load_config_file(path)
    return info.value


@pytest.mark.parametrize("name", sorted(SPEC_ROWS))
def test_spec_rows(name: str) -> None:
    """Each recorded invalid config fails with Alertmanager's message at the right place."""
    message, line, key = SPEC_ROWS[name]
    path = str(BAD / f"{name}.yml")
    err = file_error(path)
    assert (err.message, err.line, err.key, err.file) == (message, line, key, path)


@pytest.mark.parametrize("path", sorted(BAD.glob("*.yml")), ids=lambda p: p.stem)
def test_every_bad_corpus_file_fails(path: Path) -> None:
    """Every file in the bad corpus is rejected with a non-empty message."""
    assert file_error(str(path)).message


@pytest.mark.parametrize(
    ("section", "text", "go_type"),
    [
        ("top level", "route: {receiver: a}\nreceivers: [{name: a}]\nfoo: 1\n", "config.plain"),
        ("route", "route: {receiver: a, foo: 1}\nreceivers: [{name: a}]\n", "config.plain"),
        ("receiver", "route: {receiver: a}\nreceivers: [{name: a, foo: 1}]\n", "config.plain"),
        (
            "webhook_config",
            "route: {receiver: a}\nreceivers: [{name: a, webhook_configs: [{url: 'http://x/', foo: 1}]}]\n",
            "config.plain",
        ),
        (
            "global",
            "global: {foo: 1}\nroute: {receiver: a}\nreceivers: [{name: a}]\n",
            "config.plain",
        ),
        (
            "authorization",
            "route: {receiver: a}\nreceivers: [{name: a, webhook_configs: [{url: 'http://x/', http_config: {authorization: {foo: 1}}}]}]\n",
            "config.Authorization",
        ),
        (
            "time interval",
            "route: {receiver: a}\nreceivers: [{name: a}]\ntime_intervals: [{name: t, time_intervals: [{foo: 1}]}]\n",
            "timeinterval.TimeInterval",
        ),
    ],
)
def test_unknown_keys_name_the_go_type(section: str, text: str, go_type: str) -> None:
    """Unknown keys are rejected with yaml.v2's message naming the Go type."""
    assert text_error(text).message == (
        f"yaml: unmarshal errors:\n  line {text[: text.index('foo')].count(chr(10)) + 1}: "
        f"field foo not found in type {go_type}"
    ), section


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "route:\n  receiver: a\n  continue: 'true'\n",
            "line 3: cannot unmarshal !!str `true` into bool",
        ),
        ("route: [a]\n", "line 1: cannot unmarshal !!seq into config.plain"),
        (
            "route:\n  group_by: averyveryverylongname\n",
            "line 2: cannot unmarshal !!str `averyve...` into []string",
        ),
        (
            "route:\n  receiver: a\n  receiver: b\n",
            "line 3: field receiver already set in type config.plain",
        ),
    ],
)
def test_type_errors(text: str, message: str) -> None:
    """Wrong value types read like yaml.v2's unmarshal errors."""
    assert text_error(text).message == "yaml: unmarshal errors:\n  " + message


def test_str_names_file_line_and_key() -> None:
    """str(err) is 'file:line: key: message', leaving out unknown parts."""
    err = text_error("route:\n  receiver: a\n  group_wait: 5x\nreceivers: [{name: a}]\n", "am.yml")
    assert str(err) == 'am.yml:3: route.group_wait: not a valid duration string: "5x"'
    assert str(ConfigError("m")) == "m"
    assert str(ConfigError("m", file="f")) == "f: m"
    assert str(ConfigError("m", line=2, key="k")) == "2: k: m"


def test_missing_file() -> None:
    """A file that cannot be read fails with Go's open error text."""
    assert (
        file_error("/nonexistent/am.yml").message
        == "open /nonexistent/am.yml: no such file or directory"
    )


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("route:\n  receiver: a\nreceivers:\n- name: a\n-\n", "receivers[1]"),
        ("route:\n  receiver: a\n  routes:\n  -\nreceivers:\n- name: a\n", "route.routes[0]"),
        (
            "route:\n  receiver: a\nreceivers:\n- name: a\n  webhook_configs: [null]\n",
            "receivers[0].webhook_configs[0]",
        ),
        ("route:\n  receiver: a\nreceivers:\n- name: a\ninhibit_rules: [~]\n", "inhibit_rules[0]"),
    ],
)
def test_null_list_entries_are_rejected(text: str, key: str) -> None:
    """Null receivers, routes, integrations and inhibit rules (which crash Alertmanager) fail cleanly."""
    err = text_error(text)
    assert err.key == key
    assert err.message.startswith("empty (null) entry in ")
