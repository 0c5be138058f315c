"""NM's ten channel types as Alertmanager (and tocsin) integrations.

Pure. Each ``map_<type>`` takes one channel block of a ``Receiver`` CR, the ``Config``
CR spec block chosen for it (or None), and the credential reader, and returns the
``<type>_configs`` entries plus the problems of the block (what it drops and why).

The mapping, and why each is faithful:

========== ===================================================================
email      ``email_configs``, one per recipient: NM sends one message per address,
           so recipients do not see each other.
slack      ``slack_configs`` to ``chat.postMessage`` with the bot token as bearer,
           one per channel: what NM calls.
webhook    ``webhook_configs`` with the same URL, auth and proxy. The body is
           Alertmanager's webhook payload, not NM's own JSON: reported.
wechat     app messages: ``wechat_configs`` (users, parties and tags joined by
           ``|`` as NM does); group bot: tocsin's ``wecom_configs``.
dingtalk   chatbot: tocsin's ``dingtalk_configs`` (same signing, keywords, @s);
           conversation (app chat ids): reported, no integration sends those.
feishu     chatbot: tocsin's ``feishu_configs``; users/departments (app API):
           reported.
sms        AWS provider: ``sns_configs``, one per phone number; Aliyun, Tencent and
           Huawei: reported.
pushover   ``pushover_configs``, one per profile (devices: reported, 0.25 has none).
telegram   ``telegram_configs``, one per numeric chat id; ``@channel`` names and
           mentions: reported.
discord    ``discord_configs``; mentions and the ``content`` style: reported.
========== ===================================================================

Every integration gets ``send_resolved: true``: NM notifies whatever Alertmanager
sends it, resolved alerts included. NM's templates (``template``, ``tmplText``...)
use NM's own data model and are reported, not carried: tocsin's defaults are used.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import attrs

from daemon.ctl.nm_crds import Secrets, Unmappable

CHANNELS = (
    "email",
    "slack",
    "webhook",
    "wechat",
    "dingtalk",
    "feishu",
    "sms",
    "pushover",
    "telegram",
    "discord",
)

#: Channels whose Receiver blocks need a Config CR block of the same type.
NEEDS_CONFIG = frozenset({"email", "slack", "pushover", "telegram", "sms"})

SLACK_POST_MESSAGE = "https://slack.com/api/chat.postMessage"

#: Receiver fields about NM's own template engine; carried over as nothing.
_TEMPLATE_FIELDS = ("template", "subjectTemplate", "titleTemplate", "tmplText")


@attrs.define
class Mapped:
    """What one channel block became."""

    #: ``(<type>_configs key, entry)`` in order.
    configs: list[tuple[str, dict[str, Any]]] = attrs.Factory(list)
    #: Reasons something of the block was dropped (the caller adds kind and name).
    dropped: list[str] = attrs.Factory(list)


def _strings(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []


def _tls(tls: Any, where: str, out: Mapped) -> dict[str, Any] | None:
    if not isinstance(tls, dict):
        return None
    conf: dict[str, Any] = {}
    if tls.get("serverName"):
        conf["server_name"] = str(tls["serverName"])
    if tls.get("insecureSkipVerify"):
        conf["insecure_skip_verify"] = True
    for key in ("rootCA", "clientCertificate"):
        if tls.get(key):
            out.dropped.append(
                f"{where}.{key}: an Alertmanager 0.25 config takes certificates only as "
                "files, which a tenant config may not read"
            )
    return conf or None


def _http_config(http: Any, secrets: Secrets, where: str, out: Mapped) -> dict[str, Any] | None:
    if not isinstance(http, dict):
        return None
    conf: dict[str, Any] = {}
    basic = http.get("basicAuth")
    if isinstance(basic, dict):
        auth: dict[str, Any] = {"username": str(basic.get("username", ""))}
        if basic.get("password") is not None:
            auth["password"] = secrets.credential(basic["password"], f"{where}.basicAuth.password")
        conf["basic_auth"] = auth
    if http.get("bearerToken") is not None:
        token = secrets.credential(http["bearerToken"], f"{where}.bearerToken")
        conf["authorization"] = {"type": "Bearer", "credentials": token}
    if http.get("proxyUrl"):
        conf["proxy_url"] = str(http["proxyUrl"])
    tls = _tls(http.get("tlsConfig"), f"{where}.tlsConfig", out)
    if tls:
        conf["tls_config"] = tls
    return conf or None


def map_email(block: Mapping[str, Any], config: Any, secrets: Secrets) -> Mapped:
    out = Mapped()
    host = config.get("smartHost") or {}
    base: dict[str, Any] = {
        "send_resolved": True,
        "from": str(config.get("from", "")),
        "smarthost": f"{host.get('host', '')}:{host.get('port', '')}",
        # NM asks for STARTTLS only when told to; Alertmanager's default is to insist.
        "require_tls": bool(config.get("requireTLS")),
    }
    if config.get("hello"):
        base["hello"] = str(config["hello"])
    if config.get("authUsername"):
        base["auth_username"] = str(config["authUsername"])
    if config.get("authIdentify"):
        base["auth_identity"] = str(config["authIdentify"])
    if config.get("authPassword") is not None:
        base["auth_password"] = secrets.credential(config["authPassword"], "email.authPassword")
    if config.get("authSecret") is not None:
        base["auth_secret"] = secrets.credential(config["authSecret"], "email.authSecret")
    tls = _tls(config.get("tls"), "email.tls", out)
    if tls:
        base["tls_config"] = tls
    if block.get("tmplType") == "text":
        out.dropped.append("email.tmplType text: sent as Alertmanager's default HTML")
    for to in _strings(block.get("to")):
        out.configs.append(("email_configs", {"to": to, **base}))
    return out


def map_slack(block: Mapping[str, Any], config: Any, secrets: Secrets) -> Mapped:
    out = Mapped()
    token = secrets.credential(config.get("slackTokenSecret"), "slack.slackTokenSecret")
    for channel in _strings(block.get("channels")):
        out.configs.append(
            (
                "slack_configs",
                {
                    "send_resolved": True,
                    "api_url": SLACK_POST_MESSAGE,
                    "channel": channel,
                    "http_config": {"authorization": {"type": "Bearer", "credentials": token}},
                },
            )
        )
    return out


def map_webhook(block: Mapping[str, Any], config: Any, secrets: Secrets) -> Mapped:
    out = Mapped()
    url = block.get("url")
    service = block.get("service")
    if not url and isinstance(service, dict):
        # NM's service reference: scheme://name.namespace[:port][path].
        url = (
            f"{service.get('scheme') or 'http'}://{service.get('name')}.{service.get('namespace')}"
        )
        if service.get("port"):
            url += f":{service['port']}"
        url += str(service.get("path") or "")
    if not url:
        raise Unmappable("webhook has neither url nor service")
    entry: dict[str, Any] = {"send_resolved": True, "url": str(url)}
    http = _http_config(block.get("httpConfig"), secrets, "webhook.httpConfig", out)
    if http:
        entry["http_config"] = http
    out.configs.append(("webhook_configs", entry))
    out.dropped.append(
        "webhook: the body is Alertmanager's webhook payload (version 4), not NM's own "
        "JSON; a consumer of NM's format must be adapted"
    )
    return out


def map_wechat(block: Mapping[str, Any], config: Any, secrets: Secrets) -> Mapped:
    out = Mapped()
    markdown = block.get("tmplType") == "markdown"
    targets = {
        "to_user": "|".join(_strings(block.get("toUser"))),
        "to_party": "|".join(_strings(block.get("toParty"))),
        "to_tag": "|".join(_strings(block.get("toTag"))),
    }
    if any(targets.values()) and not config:
        out.dropped.append("wechat.toUser/toParty/toTag: no Config with a wechat block applies")
    elif any(targets.values()):
        entry: dict[str, Any] = {
            "send_resolved": True,
            "api_secret": secrets.credential(
                config.get("wechatApiSecret"), "wechat.wechatApiSecret"
            ),
            "corp_id": str(config.get("wechatApiCorpId", "")),
            "agent_id": str(config.get("wechatApiAgentId", "")),
            **{k: v for k, v in targets.items() if v},
        }
        if config.get("wechatApiUrl"):
            entry["api_url"] = str(config["wechatApiUrl"])
        if markdown:
            entry["message_type"] = "markdown"
        out.configs.append(("wechat_configs", entry))
    bot = block.get("chatbot")
    if isinstance(bot, dict):
        wecom: dict[str, Any] = {
            "send_resolved": True,
            "webhook_url": secrets.credential(bot.get("webhook"), "wechat.chatbot.webhook"),
            "message_type": "markdown" if markdown else "text",
        }
        if _strings(bot.get("atUsers")):
            wecom["mentioned_list"] = _strings(bot.get("atUsers"))
        if _strings(bot.get("atMobiles")):
            wecom["mentioned_mobile_list"] = _strings(bot.get("atMobiles"))
        out.configs.append(("wecom_configs", wecom))
    return out


def _chatbot_secret(bot: Mapping[str, Any], secrets: Secrets, where: str) -> str:
    if bot.get("secret") is None:
        return ""
    return secrets.credential(bot["secret"], f"{where}.chatbot.secret")


def map_dingtalk(block: Mapping[str, Any], config: Any, secrets: Secrets) -> Mapped:
    out = Mapped()
    bot = block.get("chatbot")
    if isinstance(bot, dict):
        entry: dict[str, Any] = {
            "send_resolved": True,
            "webhook_url": secrets.credential(bot.get("webhook"), "dingtalk.chatbot.webhook"),
            "message_type": "markdown" if block.get("tmplType") == "markdown" else "text",
        }
        secret = _chatbot_secret(bot, secrets, "dingtalk")
        if secret:
            entry["secret"] = secret
        for nm_key, key in (
            ("keywords", "keywords"),
            ("atMobiles", "at_mobiles"),
            ("atUsers", "at_user_ids"),
        ):
            if _strings(bot.get(nm_key)):
                entry[key] = _strings(bot.get(nm_key))
        if bot.get("atAll"):
            entry["at_all"] = True
        out.configs.append(("dingtalk_configs", entry))
    if isinstance(block.get("conversation"), dict):
        out.dropped.append(
            "dingtalk.conversation: DingTalk app chats (chatids) have no integration; "
            "use a chatbot webhook"
        )
    return out


def map_feishu(block: Mapping[str, Any], config: Any, secrets: Secrets) -> Mapped:
    out = Mapped()
    bot = block.get("chatbot")
    if isinstance(bot, dict):
        entry: dict[str, Any] = {
            "send_resolved": True,
            "webhook_url": secrets.credential(bot.get("webhook"), "feishu.chatbot.webhook"),
        }
        secret = _chatbot_secret(bot, secrets, "feishu")
        if secret:
            entry["secret"] = secret
        if _strings(bot.get("keywords")):
            entry["keywords"] = _strings(bot.get("keywords"))
        out.configs.append(("feishu_configs", entry))
    if _strings(block.get("user")) or _strings(block.get("department")):
        out.dropped.append(
            "feishu.user/department: Feishu app messages have no integration; use a chatbot webhook"
        )
    return out


def map_sms(block: Mapping[str, Any], config: Any, secrets: Secrets) -> Mapped:
    out = Mapped()
    providers = config.get("providers") or {}
    name = config.get("defaultProvider") or (next(iter(providers)) if len(providers) == 1 else "")
    if name != "aws":
        raise Unmappable(
            f"sms: provider {name or '(none chosen)'!r} has no integration; only AWS (SNS) maps"
        )
    aws = providers.get("aws") or {}
    sigv4: dict[str, Any] = {
        "access_key": secrets.credential(aws.get("accessKeyId"), "sms.providers.aws.accessKeyId"),
        "secret_key": secrets.credential(
            aws.get("secretAccessKey"), "sms.providers.aws.secretAccessKey"
        ),
    }
    if aws.get("region"):
        sigv4["region"] = str(aws["region"])
    for number in _strings(block.get("phoneNumbers")):
        out.configs.append(
            ("sns_configs", {"send_resolved": True, "phone_number": number, "sigv4": sigv4})
        )
    return out


def map_pushover(block: Mapping[str, Any], config: Any, secrets: Secrets) -> Mapped:
    out = Mapped()
    token = secrets.credential(config.get("pushoverTokenSecret"), "pushover.pushoverTokenSecret")
    for i, profile in enumerate(block.get("profiles") or []):
        if not isinstance(profile, dict) or not profile.get("userKey"):
            out.dropped.append(f"pushover.profiles[{i}]: no userKey")
            continue
        entry: dict[str, Any] = {
            "send_resolved": True,
            "user_key": str(profile["userKey"]),
            "token": token,
        }
        if profile.get("sound"):
            entry["sound"] = str(profile["sound"])
        if _strings(profile.get("devices")):
            out.dropped.append(
                f"pushover.profiles[{i}].devices: Alertmanager 0.25 has no device field; "
                "every device of the user is notified"
            )
        out.configs.append(("pushover_configs", entry))
    return out


def map_telegram(block: Mapping[str, Any], config: Any, secrets: Secrets) -> Mapped:
    out = Mapped()
    token = secrets.credential(config.get("telegramTokenSecret"), "telegram.telegramTokenSecret")
    for channel in _strings(block.get("channels")):
        try:
            chat_id = int(channel)
        except ValueError:
            out.dropped.append(
                f"telegram.channels {channel!r}: Alertmanager takes numeric chat ids only"
            )
            continue
        out.configs.append(
            ("telegram_configs", {"send_resolved": True, "bot_token": token, "chat_id": chat_id})
        )
    if _strings(block.get("mentionedUsers")):
        out.dropped.append("telegram.mentionedUsers: mentions are not appended")
    return out


def map_discord(block: Mapping[str, Any], config: Any, secrets: Secrets) -> Mapped:
    out = Mapped()
    url = secrets.credential(block.get("webhook"), "discord.webhook")
    out.configs.append(("discord_configs", {"send_resolved": True, "webhook_url": url}))
    if _strings(block.get("mentionedUsers")) or _strings(block.get("mentionedRoles")):
        out.dropped.append("discord.mentionedUsers/mentionedRoles: mentions are not appended")
    if block.get("type") == "content":
        out.dropped.append("discord.type content: Alertmanager sends an embed")
    return out


MAPPERS: dict[str, Callable[[Mapping[str, Any], Any, Secrets], Mapped]] = {
    "email": map_email,
    "slack": map_slack,
    "webhook": map_webhook,
    "wechat": map_wechat,
    "dingtalk": map_dingtalk,
    "feishu": map_feishu,
    "sms": map_sms,
    "pushover": map_pushover,
    "telegram": map_telegram,
    "discord": map_discord,
}


def map_channel(
    channel: str, block: Mapping[str, Any], config: Mapping[str, Any] | None, secrets: Secrets
) -> Mapped:
    """One channel block; raises :class:`Unmappable` if nothing of it can be carried over."""
    if channel in NEEDS_CONFIG and config is None:
        raise Unmappable(f"{channel}: no Config with a {channel} block applies to this receiver")
    out = MAPPERS[channel](block, config if config is not None else {}, secrets)
    for key in _TEMPLATE_FIELDS:
        if block.get(key):
            out.dropped.append(
                f"{channel}.{key}: NM templates use NM's data model; tocsin's default "
                "template is used"
            )
    if not out.configs:
        raise Unmappable("; ".join(out.dropped) or f"{channel}: no recipients")
    return out


__all__ = ["CHANNELS", "MAPPERS", "Mapped", "map_channel"]
