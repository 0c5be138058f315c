"""The SNS integration: SigV4 signing, Publish parameters, truncation, errors."""

from __future__ import annotations

import pathlib
import urllib.parse

import httpx
import pytest
import trio

from daemon.gocompat.timestamp import parse_rfc3339
from daemon.notify.receivers import sns
from tests.integration.processes import Recorded
from tests.notify.receivers.conftest import (
    DEDUP,
    NOW,
    Kind,
    ctx,
    failing,
    failure_of,
    firing,
    real_templates,
    recorder,
    side_by_side,
)

SNS = Kind("sns", sns.build)

KEYS = "sigv4: {region: us-east-1, access_key: AKID, secret_key: SECRET}"


def test_sign_v4_matches_aws_documented_example() -> None:
    """The signer reproduces the signature of AWS's published IAM ListUsers example."""
    headers = sign_example()
    assert headers["Authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, "
        "SignedHeaders=content-type;host;x-amz-date, "
        "Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
    )
    assert headers["X-Amz-Date"] == "20150830T123600Z"


def sign_example() -> dict[str, str]:
    return sns.sign_v4(
        "GET",
        "https://iam.amazonaws.com/?Action=ListUsers&Version=2010-05-08",
        {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
        b"",
        sns.Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
        "us-east-1",
        "iam",
        parse_rfc3339("2015-08-30T12:36:00Z"),
    )


def test_session_token_is_signed() -> None:
    """Temporary credentials add a signed X-Amz-Security-Token header."""
    headers = sns.sign_v4(
        "POST",
        "https://sns.eu-west-1.amazonaws.com/",
        {},
        b"x",
        sns.Credentials("A", "S", "TOKEN"),
        "eu-west-1",
        "sns",
        NOW,
    )
    assert headers["X-Amz-Security-Token"] == "TOKEN"
    assert "SignedHeaders=host;x-amz-date;x-amz-security-token," in headers["Authorization"]


def form(request: httpx.Request) -> list[tuple[str, str]]:
    return urllib.parse.parse_qsl(request.content.decode(), keep_blank_values=True)


async def test_publish_request_is_exact() -> None:
    """A topic publish posts sorted form parameters, attributes by name, signed for sns."""
    seen = await SNS.sent(
        f"{{topic_arn: 'arn:aws:sns:us-east-1:1:t', {KEYS}, subject: s, message: 'a b&c',"
        " attributes: {zeta: z, alpha: '{{ a }}'}}"
    )
    (request,) = seen
    assert str(request.url) == "https://sns.us-east-1.amazonaws.com/"
    assert request.headers["Content-Type"] == sns.CONTENT_TYPE
    assert request.content == (
        b"Action=Publish&Message=a+b%26c"
        b"&MessageAttributes.entry.1.Name=alpha&MessageAttributes.entry.1.Value.DataType=String"
        b"&MessageAttributes.entry.1.Value.StringValue=%3Ca%3E"
        b"&MessageAttributes.entry.2.Name=zeta&MessageAttributes.entry.2.Value.DataType=String"
        b"&MessageAttributes.entry.2.Value.StringValue=z"
        b"&Subject=s&TopicArn=arn%3Aaws%3Asns%3Aus-east-1%3A1%3At&Version=2010-03-31"
    )
    assert request.headers["X-Amz-Date"] == "20261123T193100Z"
    expected = sns.sign_v4(
        "POST",
        str(request.url),
        {"Content-Type": sns.CONTENT_TYPE, "Content-Length": str(len(request.content))},
        request.content,
        sns.Credentials("AKID", "SECRET"),
        "us-east-1",
        "sns",
        NOW,
    )
    assert request.headers["Authorization"] == expected["Authorization"]
    assert request.headers["Authorization"].startswith(
        "AWS4-HMAC-SHA256 Credential=AKID/20261123/us-east-1/sns/aws4_request, "
        "SignedHeaders=content-length;content-type;host;x-amz-date, Signature="
    )


async def test_fifo_topic_gets_dedup_and_group_ids() -> None:
    """A .fifo topic adds MessageDeduplicationId and MessageGroupId (group key hash)."""
    seen = await SNS.sent(f"{{topic_arn: 'arn:aws:sns:us-east-1:1:t.fifo', {KEYS}}}")
    got = dict(form(seen[0]))
    assert got["MessageDeduplicationId"] == DEDUP
    assert got["MessageGroupId"] == DEDUP


async def test_sms_message_truncated_to_1600_bytes() -> None:
    """A phone publish cuts the message to 1600 bytes and flags it truncated."""
    seen = await SNS.sent(f"{{phone_number: '+15555550100', {KEYS}, message: '" + "x" * 2000 + "'}")
    got = form(seen[0])
    assert dict(got)["Message"] == "x" * 1600
    assert ("MessageAttributes.entry.1.Name", "truncated") in got
    assert ("MessageAttributes.entry.1.Value.StringValue", "true") in got
    assert dict(got)["PhoneNumber"] == "+15555550100"


async def test_api_url_and_environment_credentials() -> None:
    """api_url overrides the endpoint and env variables supply keys and session token."""
    seen, handler = recorder()
    integ = SNS.integration(
        "{target_arn: arn:t, api_url: 'sns.local:8080', sigv4: {region: eu-west-1}}", handler
    )
    integ.environ = {
        "AWS_ACCESS_KEY_ID": "ENVKEY",
        "AWS_SECRET_ACCESS_KEY": "s",
        "AWS_SESSION_TOKEN": "tt",
    }
    await integ.notify(ctx(), [firing()])
    assert str(seen[0].url) == "https://sns.local:8080/"
    assert (
        "Credential=ENVKEY/20261123/eu-west-1/sns/aws4_request" in seen[0].headers["Authorization"]
    )
    assert seen[0].headers["X-Amz-Security-Token"] == "tt"


async def test_aws_error_message_and_classification() -> None:
    """AWS's XML error message becomes the details; 4xx is permanent, 5xx retries."""
    body = b"<ErrorResponse><Error><Type>Sender</Type><Code>InvalidParameter</Code><Message>Invalid parameter: TopicArn</Message></Error></ErrorResponse>"
    _, handler = recorder([400], body)
    err = await SNS.failure(f"{{topic_arn: t, {KEYS}}}", handler)
    assert (str(err), err.retryable) == (
        "unexpected status code 400: Invalid parameter: TopicArn",
        False,
    )
    _, handler = recorder([503], body)
    assert (await SNS.failure(f"{{topic_arn: t, {KEYS}}}", handler)).retryable


async def test_unsupported_and_missing_settings() -> None:
    """role_arn fails permanently; missing region or credentials retry, as upstream."""
    _, handler = recorder()
    assert not (
        await SNS.failure("{topic_arn: t, sigv4: {region: r, role_arn: arn:role}}", handler)
    ).retryable
    integ = SNS.integration("{topic_arn: t}", handler)
    integ.environ = {}
    err = await failure_of(integ, [firing()])
    assert err.retryable and "region not configured" in str(err)
    integ = SNS.integration("{topic_arn: t, sigv4: {region: r}}", handler)
    integ.environ = {}
    assert (await failure_of(integ, [firing()])).retryable


async def test_transport_error_retryable() -> None:
    """Connection failures retry."""
    assert (
        await SNS.failure(f"{{topic_arn: t, {KEYS}}}", failing(httpx.ConnectError("x")))
    ).retryable


async def test_default_templates() -> None:
    """Built-in templates give the default subject and message."""
    seen = await SNS.sent(f"{{topic_arn: t, {KEYS}}}", templater=real_templates())
    got = dict(form(seen[0]))
    assert got["Subject"] == "[FIRING:1] Q "
    assert "Alerts Firing:\nLabels:\n - alertname = Q\n" in got["Message"]


@pytest.mark.parametrize("limit", [1600])
def test_encode_form_sorts_and_escapes(limit: int) -> None:
    """Form encoding sorts keys and escapes like Go's QueryEscape."""
    assert sns.encode_form([("b", "x y"), ("a", "~*")]) == b"a=~%2A&b=x+y"
    assert limit == sns.MAX_SMS_BYTES


def publish_ok(request: Recorded) -> tuple[int, bytes]:
    """SNS's success reply, so the AWS SDK does not retry."""
    return 200, (
        b'<PublishResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><PublishResult>'
        b"<MessageId>1</MessageId></PublishResult><ResponseMetadata><RequestId>r</RequestId>"
        b"</ResponseMetadata></PublishResponse>"
    )


@pytest.mark.alertmanager
@pytest.mark.parametrize(
    ("target", "path"),
    [
        ("topic_arn: 'arn:aws:sns:us-east-1:123:alerts.fifo'", "/"),
        ("phone_number: '+15555550100'", ""),
        ("topic_arn: 'arn:aws:sns:us-east-1:123:alerts'", "/sns/path"),
        ("topic_arn: 'arn:aws:sns:us-east-1:123:alerts'", "/sns/path/"),
    ],
)
async def test_same_publish_as_alertmanager(
    target: str, path: str, tmp_path: pathlib.Path, nursery: trio.Nursery
) -> None:
    """Alertmanager 0.25 (aws-sdk-go) and tocsin send the same signed Publish to one path."""
    mine_all, theirs_all = await side_by_side(
        tmp_path,
        nursery,
        lambda url: (
            f"  sns_configs:\n  - {target}\n    api_url: {url}{path}\n"
            + "    sigv4: {region: us-east-1, access_key: AKID, secret_key: SECRET}\n"
            + "    attributes: {b: '{{ .Status }}', a: x}\n"
        ),
        respond=publish_ok,
    )
    (mine,) = mine_all
    theirs = theirs_all[0]
    assert (mine.method, mine.target) == (theirs.method, theirs.target)
    assert mine.body.decode() == theirs.body.decode()
    assert mine.headers["content-type"] == theirs.headers["content-type"]

    def scope(headers: dict[str, str]) -> str:
        return headers["authorization"].split(" Signature=")[0]

    assert scope(mine.headers).replace("20261123", "DATE") == scope(theirs.headers).replace(
        theirs.headers["x-amz-date"][:8], "DATE"
    )
    # Our signer, given Alertmanager's request and its X-Amz-Date, reproduces its signature.
    stamp = theirs.headers["x-amz-date"]
    signed_at = parse_rfc3339(
        f"{stamp[:4]}-{stamp[4:6]}-{stamp[6:8]}T{stamp[9:11]}:{stamp[11:13]}:{stamp[13:15]}Z"
    )
    again = sns.sign_v4(
        "POST",
        f"http://{theirs.headers['host']}{theirs.target}",
        {
            "Content-Type": theirs.headers["content-type"],
            "Content-Length": theirs.headers["content-length"],
        },
        theirs.body,
        sns.Credentials("AKID", "SECRET"),
        "us-east-1",
        "sns",
        signed_at,
    )
    assert again["Authorization"] == theirs.headers["authorization"]
