"""Config of the channels Alertmanager lacks (KubeSphere's) and our chat-integration options."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import yaml

from daemon.config.errors import ConfigError
from daemon.config.load import load_config_file, load_config_text
from daemon.config.model import HTTPConfig, IntegrationConfig
from daemon.ctl import check_config

HEAD = "route:\n  receiver: a\nreceivers:\n- name: a\n"


def _only(text: str) -> IntegrationConfig:
    configs = load_config_text(HEAD + text).receiver("a").other_configs
    assert len(configs) == 1
    return configs[0]


def test_dingtalk_entry_becomes_integration_config_with_defaults() -> None:
    """A dingtalk entry gets its defaults, the secret in clear and an HTTPConfig."""
    conf = _only(
        "  dingtalk_configs:\n"
        "  - webhook_url: https://oapi.dingtalk.com/robot/send?access_token=t\n"
        "    secret: SEC1\n"
        "    at_mobiles: ['138']\n"
    )
    assert conf.type == "dingtalk" and conf.send_resolved is True
    f = conf.fields
    assert f["webhook_url"] == "https://oapi.dingtalk.com/robot/send?access_token=t"
    assert f["secret"] == "SEC1"
    assert f["at_mobiles"] == ["138"] and f["at_user_ids"] == [] and f["at_all"] is False
    assert f["message_type"] == "text"
    assert f["message"] == '{{ template "dingtalk.default.message" . }}'
    assert f["split_long_messages"] is True
    assert isinstance(f["http_config"], HTTPConfig)


@pytest.mark.parametrize(
    ("key", "entry", "checks"),
    [
        ("feishu_configs", "webhook_url: https://f/x", {"keywords": [], "secret": ""}),
        (
            "wecom_configs",
            "{webhook_url: 'https://w/x', message_type: markdown}",
            {"message_type": "markdown", "mentioned_list": []},
        ),
        (
            "sms_configs",
            "{url: 'http://sms/send', method: GET}",
            {"method": "GET", "send_resolved": False, "split_long_messages": False},
        ),
    ],
)
def test_other_extra_types_decode(key: str, entry: str, checks: dict[str, object]) -> None:
    """feishu, wecom and sms entries decode with their own defaults."""
    conf = _only(f"  {key}:\n  - {entry}\n")
    assert conf.type == key.removesuffix("_configs")
    for name, value in checks.items():
        assert conf.fields[name] == value
    assert conf.send_resolved == conf.fields["send_resolved"]


def test_extra_entry_inherits_global_http_config() -> None:
    """An entry without http_config gets the global one, as Alertmanager's types do."""
    text = "global:\n  http_config:\n    proxy_url: http://proxy:3128\n" + HEAD
    config = load_config_text(text + "  wecom_configs:\n  - webhook_url: https://w/x\n")
    http = config.receiver("a").other_configs[0].fields["http_config"]
    assert http.raw["proxy_url"] == "http://proxy:3128"


def test_extra_entry_own_http_config_wins() -> None:
    """An entry's own http_config is used instead of the global one."""
    conf = _only(
        "  feishu_configs:\n  - webhook_url: https://f/x\n"
        "    http_config:\n      follow_redirects: false\n"
    )
    assert conf.fields["http_config"].follow_redirects is False


@pytest.mark.parametrize(
    ("entry", "message", "line", "key"),
    [
        (
            "  dingtalk_configs:\n  - secret: s\n",
            "one of webhook_url or webhook_url_file must be configured in dingtalk_config",
            6,
            "receivers[0].dingtalk_configs[0].webhook_url",
        ),
        (
            "  wecom_configs:\n  - webhook_url: https://w/x\n    message_type: card\n",
            'wecom_configs: unknown message_type "card" (must be text or markdown)',
            7,
            "receivers[0].wecom_configs[0].message_type",
        ),
        (
            "  sms_configs:\n  - method: GET\n",
            "missing url in sms_config",
            6,
            "receivers[0].sms_configs[0].url",
        ),
        (
            "  sms_configs:\n  - url: http://s\n    method: TRACE\n",
            'sms_configs: unsupported method "TRACE"',
            7,
            "receivers[0].sms_configs[0].method",
        ),
        (
            "  feishu_configs:\n  - webhook_url: https://f/x\n    bogus: 1\n",
            "yaml: unmarshal errors:\n  line 7: field bogus not found in type config.plain",
            7,
            "receivers[0].feishu_configs[0].bogus",
        ),
        (
            "  feishu_configs:\n  - webhook_url: https://f/x\n    keywords: word\n",
            "yaml: unmarshal errors:\n  line 7: cannot unmarshal !!str `word` into []string",
            7,
            "receivers[0].feishu_configs[0].keywords",
        ),
        (
            "  dingtalk_configs:\n  - webhook_url: https://d/x\n    max_message_bytes: -1\n",
            "yaml: unmarshal errors:\n  line 7: cannot unmarshal !!int `-1` into uint",
            7,
            "receivers[0].dingtalk_configs[0].max_message_bytes",
        ),
        (
            "  wecom_configs:\n  - null\n",
            "empty (null) entry in wecom_configs",
            6,
            "receivers[0].wecom_configs[0]",
        ),
    ],
)
def test_extra_entry_errors_name_file_line_and_key(
    entry: str, message: str, line: int, key: str
) -> None:
    """A bad extra entry fails with its message, the file, the line and the dotted key."""
    with pytest.raises(ConfigError) as info:
        load_config_text(HEAD + entry, filename="am.yml")
    err = info.value
    assert (err.message, err.file, err.line, err.key) == (message, "am.yml", line, key)


def test_original_hides_extra_secrets() -> None:
    """config.original shows secrets, webhook URLs and sms headers as <secret>."""
    config = load_config_text(
        HEAD + "  dingtalk_configs:\n  - webhook_url: https://d/x?access_token=TOKEN1\n"
        "    secret: SECRET2\n"
        "  sms_configs:\n  - url: http://sms\n    headers: {X-Key: HEADER3}\n"
    )
    original = config.original
    for secret in ("TOKEN1", "SECRET2", "HEADER3"):
        assert secret not in original
    parsed = yaml.safe_load(original)
    ding = parsed["receivers"][0]["dingtalk_configs"][0]
    assert ding["webhook_url"] == "<secret>" and ding["secret"] == "<secret>"
    assert ding["message_type"] == "text" and ding["split_long_messages"] is True
    assert ding["http_config"] == {"follow_redirects": True, "enable_http2": True}
    assert parsed["receivers"][0]["sms_configs"][0]["headers"] == {"X-Key": "<secret>"}
    # The re-serialised form loads again (the API's config round-trips).
    load_config_text(original)


def test_chat_options_are_settable() -> None:
    """split_long_messages and telegram's message_thread_id reach the integration fields."""
    config = load_config_text(
        HEAD + "  slack_configs:\n  - api_url: http://slack\n    split_long_messages: false\n"
        "  telegram_configs:\n  - bot_token: t\n    chat_id: 1\n    message_thread_id: 42\n"
        "  discord_configs:\n  - webhook_url: http://discord\n"
        "  webex_configs:\n  - room_id: r\n    http_config: {authorization: {credentials: c}}\n"
        "    split_long_messages: false\n"
        "  msteams_configs:\n  - webhook_url: http://teams\n"
    )
    by_type = {c.type: c.fields for c in config.receiver("a").other_configs}
    assert by_type["slack"]["split_long_messages"] is False
    assert by_type["telegram"]["message_thread_id"] == 42
    assert by_type["telegram"]["split_long_messages"] is True
    assert by_type["discord"]["split_long_messages"] is True
    assert by_type["webex"]["split_long_messages"] is False
    assert by_type["msteams"]["split_long_messages"] is True
    parsed = yaml.safe_load(config.original)["receivers"][0]
    assert parsed["telegram_configs"][0]["message_thread_id"] == 42
    assert parsed["slack_configs"][0]["split_long_messages"] is False
    # Unset, the options stay out of the re-serialised form, as in Alertmanager's.
    assert "split_long_messages" not in parsed["discord_configs"][0]


def test_split_long_messages_must_be_bool() -> None:
    """A non-bool split_long_messages is a type error at its line."""
    with pytest.raises(ConfigError) as info:
        load_config_text(
            HEAD + "  discord_configs:\n  - webhook_url: http://d\n    split_long_messages: 3\n"
        )
    assert info.value.line == 7
    assert "cannot unmarshal !!int `3` into bool" in info.value.message


def test_check_config_accepts_extra_types(tmp_path: Path) -> None:
    """tocsinctl check-config accepts a file with the extra types (amtool does not)."""
    path = tmp_path / "am.yml"
    path.write_text(HEAD + "  feishu_configs:\n  - webhook_url: https://f/x\n")
    out = io.StringIO()
    assert check_config([str(path)], out) == 0
    assert "SUCCESS" in out.getvalue()
    assert load_config_file(str(path)).receiver("a").other_configs[0].type == "feishu"
