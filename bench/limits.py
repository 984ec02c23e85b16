"""Rate limits for bench servers: the benches measure the server, not the limiter refusing the load."""

UNLIMITED = {
    "RATE_LIMIT_GATEKEEPER": "100000000",
    "RATE_LIMIT_CHALLENGES": "100000000",
    "RATE_LIMIT_WEBHOOKS": "100000000",
}
