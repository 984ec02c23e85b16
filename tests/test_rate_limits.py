"""Rate limits (SPEC §13): 429 E9003 with Retry-After and X-RateLimit-*, per IP or per user; /health never."""

from __future__ import annotations

import pytest

from core.ratelimit import SlidingWindowLimiter, WorkersBindingLimiter


@pytest.fixture
def real_limits(env_vars):
    env_vars.update(
        RATE_LIMIT_GATEKEEPER_PER_MINUTE="60",
        RATE_LIMIT_CHALLENGES_PER_MINUTE="30",
        RATE_LIMIT_WEBHOOKS_PER_MINUTE="10",
    )


async def test_gatekeeper_is_60_per_minute_per_ip(real_limits, client, clock):
    body = {"wallet_address": "0x" + "ab" * 20, "chain_id": "eip155:1"}
    statuses = [(await client.post("/gatekeeper/v2/wallet/challenge", json=body)).status for _ in range(60)]
    assert statuses == [201] * 60
    limited = await client.post("/gatekeeper/v2/wallet/challenge", json=body)
    assert (limited.status, limited.error_code) == (429, "E9003")
    assert limited.headers["x-ratelimit-limit"] == "60"
    assert limited.headers["x-ratelimit-remaining"] == "0"
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    client.client_ip = "198.51.100.99"  # another caller is unaffected
    assert (await client.post("/gatekeeper/v2/wallet/challenge", json=body)).status == 201
    client.client_ip = "203.0.113.7"
    clock.advance(60)
    assert (await client.post("/gatekeeper/v2/wallet/challenge", json=body)).status == 201


async def test_challenges_are_30_per_minute_per_user(real_limits, client, make_user):
    _, first = await make_user()
    _, second = await make_user()
    responses = [await client.get("/challenges", token=first) for _ in range(30)]
    assert [r.headers["x-ratelimit-remaining"] for r in responses[-2:]] == ["1", "0"]
    assert (await client.get("/challenges", token=first)).error_code == "E9003"
    assert (await client.get("/challenges", token=second)).status == 200  # keyed by user, not IP


async def test_health_is_never_limited(real_limits, client):
    statuses = {(await client.get("/health")).status for _ in range(200)}
    assert statuses == {200}
    assert "x-ratelimit-limit" not in (await client.get("/health")).headers


async def test_sliding_window_is_exact():
    limiter = SlidingWindowLimiter()
    assert [(await limiter.hit("g", "k", 3, t)).allowed for t in (0, 10, 20, 30)] == [True, True, True, False]
    assert (await limiter.hit("g", "k", 3, 60.5)).allowed  # the hit at t=0 left the window
    assert not (await limiter.hit("g", "k", 3, 61)).allowed


async def test_workers_binding_is_used_when_declared():
    class Binding:
        def __init__(self) -> None:
            self.keys: list[str] = []

        async def limit(self, key: str) -> dict:
            self.keys.append(key)
            return {"success": len(self.keys) <= 1}

    class Env:
        RATE_LIMIT_GATEKEEPER = Binding()

    limiter = WorkersBindingLimiter(Env(), SlidingWindowLimiter())
    assert (await limiter.hit("gatekeeper", "ip:1", 60, 0)).allowed
    assert not (await limiter.hit("gatekeeper", "ip:1", 60, 1)).allowed
    assert Env.RATE_LIMIT_GATEKEEPER.keys == ["ip:1", "ip:1"]
    # A group without a binding falls back to the exact local limiter.
    assert (await limiter.hit("webhooks", "user:u", 1, 0)).allowed
    assert not (await limiter.hit("webhooks", "user:u", 1, 1)).allowed
