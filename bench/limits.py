"""Rate limits for bench servers: the benches measure the server, not the limiter refusing the load."""

UNLIMITED = {
    "RATE_LIMIT_GATEKEEPER_PER_MINUTE": "100000000",
    "RATE_LIMIT_CHALLENGES_PER_MINUTE": "100000000",
    "RATE_LIMIT_WEBHOOKS_PER_MINUTE": "100000000",
}
