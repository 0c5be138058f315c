"""A FakeBackend with a silence store, and an API client over the silence routes."""

from __future__ import annotations

import itertools

import attrs
import pytest

from daemon.api.app import default_api_routes
from daemon.api.silences import silence_routes
from daemon.clock import FixedClock
from daemon.silence.state import Silences
from daemon.store import AlertStore
from tests.api.conftest import NOW, Api, FakeBackend, config


@attrs.define
class SilenceFakeBackend(FakeBackend):
    """FakeBackend plus the ``silences`` property of SilenceBackend."""

    silences: Silences = attrs.field(factory=Silences)


@pytest.fixture
def sbackend() -> SilenceFakeBackend:
    clock = FixedClock(NOW)
    ids = itertools.count(1)
    silences = Silences(new_id=lambda: f"00000000-0000-4000-8000-{next(ids):012d}")
    return SilenceFakeBackend(config("default"), AlertStore(clock), clock, silences=silences)


@pytest.fixture
def sapi(sbackend: SilenceFakeBackend) -> Api:
    return Api(sbackend, api_routes={**default_api_routes(), **silence_routes()})
