"""The API's error registry (SPEC §10) and the exception handlers raise to produce it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ErrorSpec:
    """One documented error: its code, HTTP status and default message."""

    code: str
    status: int
    message: str


_SPECS: tuple[ErrorSpec, ...] = (
    ErrorSpec("E1001", 400, "Invalid wallet address"),
    ErrorSpec("E1002", 400, "Unsupported chain"),
    ErrorSpec("E1003", 404, "Wallet challenge not found"),
    ErrorSpec("E1004", 410, "Wallet challenge expired"),
    ErrorSpec("E1005", 400, "Signature invalid"),
    ErrorSpec("E1006", 400, "Signature does not match the wallet address"),
    ErrorSpec("E1007", 409, "Wallet challenge already used"),
    ErrorSpec("E1008", 400, "Malformed signature"),
    ErrorSpec("E2001", 400, "Invalid wallet address"),
    ErrorSpec("E2002", 400, "Unsupported network"),
    ErrorSpec("E2003", 400, "token_address is required for ERC20 checks"),
    ErrorSpec("E2004", 502, "Blockchain RPC unavailable"),
    ErrorSpec("E2005", 400, "Invalid threshold"),
    ErrorSpec("E2007", 400, "Invalid token"),
    ErrorSpec("E2008", 404, "Funds attestation not found"),
    ErrorSpec("E3001", 400, "Invalid challenge mode"),
    ErrorSpec("E3002", 400, "SOLO challenges cannot have a counterparty"),
    ErrorSpec("E3003", 400, "fire_config is required for FIRE challenges"),
    ErrorSpec("E3004", 400, "Invalid timeout"),
    ErrorSpec("E3010", 404, "Challenge not found"),
    ErrorSpec("E3011", 409, "Challenge cannot be accepted now"),
    ErrorSpec("E3012", 403, "Only the counterparty can do this"),
    ErrorSpec("E3013", 410, "Challenge expired"),
    ErrorSpec("E3014", 409, "Invalid state transition"),
    ErrorSpec("E3015", 409, "Challenge already accepted"),
    ErrorSpec("E3020", 409, "Challenge cannot be resolved now"),
    ErrorSpec("E3021", 400, "Invalid outcome"),
    ErrorSpec("E3022", 400, "Gatekeeper requirements missing"),
    ErrorSpec("E3023", 400, "Counterparty required"),
    ErrorSpec("E3024", 409, "accept_outcome must equal the proposed outcome"),
    ErrorSpec("E4001", 503, "Oracle unavailable"),
    ErrorSpec("E4002", 422, "Oracle answer ambiguous"),
    ErrorSpec("E4003", 400, "Invalid bond amount"),
    ErrorSpec("E4010", 400, "Timeout out of range"),
    ErrorSpec("E4020", 409, "Gatekeeper verification pending"),
    ErrorSpec("E4021", 422, "Gatekeeper verification failed"),
    ErrorSpec("E5010", 404, "Stake not found"),
    ErrorSpec("E5011", 409, "Stake already processed"),
    ErrorSpec("E5012", 402, "Insufficient stake"),
    ErrorSpec("E6001", 400, "Invalid webhook URL"),
    ErrorSpec("E6002", 404, "Webhook not found"),
    ErrorSpec("E7001", 400, "Verification code is wrong"),
    ErrorSpec("E7002", 410, "Verification code expired or used up: PATCH /me again for a new one"),
    ErrorSpec("E7003", 404, "Nothing pending to verify on this channel"),
    ErrorSpec("E7004", 409, "Another account has already verified this address"),
    ErrorSpec("E9001", 500, "Internal error"),
    ErrorSpec("E9002", 500, "Database error"),
    ErrorSpec("E9003", 429, "Rate limit exceeded"),
    ErrorSpec("E9004", 400, "Validation failed"),
    ErrorSpec("E9005", 401, "Authentication required"),
    ErrorSpec("E9006", 401, "Invalid or expired credentials"),
    ErrorSpec("E9007", 403, "Forbidden"),
    ErrorSpec("E9008", 404, "Not found"),
    ErrorSpec("E9009", 409, "Idempotency key reused with a different request"),
    ErrorSpec("E9010", 503, "Feature disabled"),
    ErrorSpec("E9011", 405, "Method not allowed"),
    ErrorSpec("E9012", 413, "Request body too large"),
    ErrorSpec("E9013", 415, "Unsupported media type: send application/json"),
    ErrorSpec("E9014", 400, "Malformed JSON body"),
)

ERRORS: dict[str, ErrorSpec] = {spec.code: spec for spec in _SPECS}


class ApiError(Exception):
    """An error the API reports to its caller with a documented code."""

    def __init__(
        self,
        code: str,
        message: str | None = None,
        details: dict[str, Any] | None = None,
        *,
        headers: dict[str, str] | None = None,
    ) -> None:
        spec = ERRORS[code]
        self.code = code
        self.status = spec.status
        self.message = message or spec.message
        self.details = details or {}
        self.headers = headers or {}
        super().__init__(f"{code}: {self.message}")

    def envelope(self) -> dict[str, Any]:
        """The JSON body of SPEC §2: {"error": {code, message, details}}."""
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}
