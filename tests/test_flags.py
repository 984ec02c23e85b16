"""Feature flags: off by default, true/1/yes, nonsense is off, percentages are sticky per caller."""

import pytest

from accounts.credentials import resolve_principal
from api.routes import ROUTES
from core import flags
from core.app import App
from core.config import Env
from core.http import Response
from core.routing import Route
from local.asgi import AsgiAdapter
from tests.support.client import ApiClient


def test_all_flags_default_off():
    env = Env({})
    assert all(not env.flag(name, "anyone") for name in flags.ALL_FLAGS)


@pytest.mark.parametrize("value", ["true", "TRUE", "1", "yes", "Yes", " true "])
def test_on_values(value):
    assert flags.is_enabled("FF_X", value, "u1")


@pytest.mark.parametrize("value", ["false", "0", "no", "", "banana", "maybe%", "-5%", "treu", None])
def test_off_or_nonsense_values(value):
    assert not flags.is_enabled("FF_X", value, "u1")


def test_percentage_is_sticky_and_roughly_proportional():
    subjects = [f"user-{index}" for index in range(4000)]
    on = [subject for subject in subjects if flags.is_enabled("FF_X", "25%", subject)]
    assert 0.21 < len(on) / len(subjects) < 0.29
    # The same caller always gets the same answer, and a bigger rollout keeps everyone already in.
    assert on == [subject for subject in subjects if flags.is_enabled("FF_X", "25%", subject)]
    assert all(flags.is_enabled("FF_X", "50%", subject) for subject in on)


def test_percentage_bounds():
    assert flags.rollout_percent("0%") == 0
    assert flags.rollout_percent("100%") == 100
    assert flags.rollout_percent("250%") == 100
    assert not flags.is_enabled("FF_X", "0%", "u")
    assert flags.is_enabled("FF_X", "100%", "u")


async def _flagged_client(services):
    async def handler(request, ctx):
        return Response.json({"ok": True})

    app = App([*ROUTES, Route("GET", "/flagged", handler, flag=flags.GATEKEEPER_V2)], authenticate=resolve_principal)
    return ApiClient(AsgiAdapter(app, services))


async def test_disabled_feature_is_503_and_health_is_never_gated(services, env_vars):
    for name in flags.ALL_FLAGS:
        env_vars[name] = "false"
    client = await _flagged_client(services)
    response = await client.get("/flagged")
    assert response.status == 503
    assert response.error_code == "E9010"
    assert response.json()["error"]["details"] == {"flag": "FF_GATEKEEPER_V2"}
    assert (await client.get("/health")).status == 200
    env_vars["FF_GATEKEEPER_V2"] = "yes"
    assert (await client.get("/flagged")).status == 200


async def test_nonsense_flag_value_is_off_and_server_keeps_serving(services, env_vars):
    env_vars["FF_GATEKEEPER_V2"] = "definitely"
    client = await _flagged_client(services)
    assert (await client.get("/flagged")).status == 503
    assert (await client.get("/health")).status == 200


async def test_percentage_rollout_decides_per_caller_ip(services, env_vars):
    env_vars["FF_GATEKEEPER_V2"] = "50%"
    client = await _flagged_client(services)
    outcomes = {}
    for index in range(40):
        client.client_ip = f"198.51.100.{index}"
        first = (await client.get("/flagged")).status
        second = (await client.get("/flagged")).status
        assert first == second  # sticky
        outcomes[client.client_ip] = first
    assert set(outcomes.values()) == {200, 503}
