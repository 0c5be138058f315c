"""The daemon's command line accepts Alertmanager 0.25's flags."""

import pytest

from daemon.cli import parse_args
from daemon.clock import NS_PER_SECOND as S
from daemon.options import Options


def test_defaults_are_alertmanagers() -> None:
    """With no flags, every option has Alertmanager's default."""
    opts = parse_args([])
    assert opts == Options()
    assert opts.config_file == "alertmanager.yml"
    assert opts.web_listen_addresses == (":9093",)
    assert opts.cluster_listen_address == "0.0.0.0:9094"
    assert opts.data_retention == 120 * 3600 * S
    assert opts.cluster_settle_timeout == 60 * S


def test_kingpin_spellings_parse() -> None:
    """Go-style durations, repeated peers and --flag value forms all parse."""
    opts = parse_args(
        [
            "--config.file",
            "/etc/am.yml",
            "--cluster.peer=a:9094",
            "--cluster.peer",
            "b:9094",
            "--cluster.reconnect-timeout=6h0m0s",
            "--cluster.gossip-interval=200ms",
            "--no-web.systemd-socket",
            "--log.format=json",
            "--cluster.listen-address=",
        ]
    )
    assert opts.config_file == "/etc/am.yml"
    assert opts.cluster_peers == ("a:9094", "b:9094")
    assert opts.cluster_reconnect_timeout == 6 * 3600 * S
    assert opts.cluster_gossip_interval == S // 5
    assert opts.log_format == "json"
    assert opts.cluster_listen_address == ""


def test_bad_duration_is_rejected(capsys: pytest.CaptureFixture[str]) -> None:
    """A malformed duration flag exits with a usage error naming the value."""
    with pytest.raises(SystemExit) as exc:
        parse_args(["--data.retention=5x"])
    assert exc.value.code == 2
    assert "5x" in capsys.readouterr().err


def test_sender_process_takes_auto_or_off(capsys: pytest.CaptureFixture[str]) -> None:
    """``--notify.sender-process``: auto by default, off on request, anything else a
    usage error naming the flag and the choices (start-up stops before anything runs)."""
    assert parse_args([]).notify_sender_process == "auto"
    assert parse_args(["--notify.sender-process=off"]).notify_sender_process == "off"
    for bad in ("sometimes", "", "OFF", "x" * 10_000):
        with pytest.raises(SystemExit) as exc:
            parse_args([f"--notify.sender-process={bad}"])
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert "--notify.sender-process" in err and "'auto', 'off'" in err
