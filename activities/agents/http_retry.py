"""Retry and backoff for model HTTP calls, shared by every HTTP provider.

Transient failures (429, 408, 409, 5xx, connection errors, timeouts) are retried here with capped
exponential backoff and jitter, honouring the server's Retry-After. Failures that retrying cannot fix
(bad key, bad request, unknown model) raise a non-retryable ProviderError at once. The whole call has
one deadline: a backoff that would outlive it is not slept; the error goes up with `retry_after_s` so
the Temporal activity retry can take over, instead of a worker slot sleeping.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from pydantic import BaseModel, Field
from temporalio.exceptions import ApplicationError

from activities.agents.base import ProviderError

Sleep = Callable[[float], Awaitable[None]]

RETRYABLE_STATUS = frozenset({408, 409, 429})
_NON_RETRYABLE_TYPES: dict[int, str] = {
    400: "bad_request",
    401: "authentication_error",
    403: "permission_denied",
    404: "not_found",
    413: "request_too_large",
    422: "unprocessable_entity",
}
_MAX_DETAIL = 300


class RetryPolicy(BaseModel):
    max_retries: int = Field(default=3, ge=0)
    deadline_s: float = Field(default=120.0, gt=0, description="Overall deadline of the call, backoff included.")
    base_delay_s: float = Field(default=0.5, ge=0)
    max_delay_s: float = Field(default=30.0, ge=0, description="Cap on one backoff; a longer Retry-After goes up.")


class CallContext(BaseModel):
    """What an error message needs to say where it happened and what to do; never the key itself."""

    model_name: str
    provider: str
    url: str
    api_key_env: str | None = None


async def send_with_retry(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    json_body: Mapping[str, Any],
    headers: Mapping[str, str],
    policy: RetryPolicy,
    context: CallContext,
    secrets: tuple[str, ...] = (),
    sleep: Sleep = asyncio.sleep,
    rng: random.Random | None = None,
) -> httpx.Response:
    """Send until a 2xx answer, a non-retryable error, exhausted retries, or the deadline.

    `secrets` are scrubbed from every error message (a server may echo a bad key back).
    """
    rng = rng or random.Random()
    started = time.monotonic()
    deadline = started + policy.deadline_s
    attempt = 0
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _deadline_error(context, policy, secrets)
        try:
            # asyncio.timeout bounds what httpx's per-phase timeouts do not: a body trickled slowly.
            async with asyncio.timeout(remaining):
                response = await client.request(
                    method, url, json=dict(json_body), headers=dict(headers), timeout=httpx.Timeout(remaining)
                )
                await response.aread()
        except (TimeoutError, httpx.TimeoutException) as err:
            failure = ProviderError(
                _scrub(f"model {context.model_name!r}: no answer from {context.url} within the deadline "
                       f"({policy.deadline_s:g}s, attempt {attempt + 1}): {type(err).__name__}", secrets),
                retryable=True, error_type="timeout",
            )
            retry_after: float | None = None
        except httpx.TransportError as err:
            failure = ProviderError(
                _scrub(f"model {context.model_name!r}: cannot reach {context.url}: {type(err).__name__}: {err}. "
                       "Check base_url and that the server is running.", secrets),
                retryable=True, error_type="connection_error",
            )
            retry_after = None
        else:
            if response.is_success:
                return response
            failure = classify(response, context, secrets)
            if not failure.retryable:
                raise failure
            retry_after = failure.retry_after_s

        if time.monotonic() >= deadline:
            raise failure
        if attempt >= policy.max_retries:
            raise ProviderError(
                f"{failure} (gave up after {attempt + 1} attempts)",
                retryable=True, retry_after_s=retry_after, error_type=failure.error_type,
            ) from failure
        delay = backoff_delay(attempt, policy, rng) if retry_after is None else retry_after
        if delay > policy.max_delay_s or time.monotonic() + delay >= deadline:
            # Waiting here would pass the cap or the deadline: hand the wait to Temporal's retry.
            raise ProviderError(
                f"{failure} (not waiting {delay:.1f}s in-process: past the backoff cap or the call deadline)",
                retryable=True, retry_after_s=delay, error_type=failure.error_type,
            ) from failure
        await sleep(delay)
        attempt += 1


@asynccontextmanager
async def client_scope(client: httpx.AsyncClient | None) -> AsyncIterator[httpx.AsyncClient]:
    """The injected client (pooled by its owner), or one made for this call and closed after it."""
    if client is not None:
        yield client
        return
    async with httpx.AsyncClient() as owned:
        yield owned


def api_key_for(context: CallContext, env: Mapping[str, str]) -> str | None:
    """The key named by the entry's `api_key_env`, read on the worker that makes the call."""
    if context.api_key_env is None:
        return None
    key = env.get(context.api_key_env)
    if not key:
        raise ProviderError(
            f"model {context.model_name!r}: env var {context.api_key_env} is not set on this worker; "
            "export it where the worker runs (the key is never read from spec2ship.yaml)",
            retryable=False, error_type="authentication_error",
        )
    return key


def backoff_delay(attempt: int, policy: RetryPolicy, rng: random.Random) -> float:
    """Exponential backoff with jitter in [half, full] of the step, so clients do not retry in lockstep."""
    step = min(policy.max_delay_s, policy.base_delay_s * (2**attempt))
    return step * (0.5 + rng.random() / 2)


def classify(response: httpx.Response, context: CallContext, secrets: tuple[str, ...] = ()) -> ProviderError:
    """Turn a non-2xx answer into a ProviderError that says what happened and what to do."""
    status = response.status_code
    detail = _scrub(error_detail(response), secrets)
    where = f"model {context.model_name!r} ({context.provider}, {context.url})"
    if status in (401, 403):
        hint = (f"check env var {context.api_key_env}" if context.api_key_env
                else "no api_key_env is configured for this model in spec2ship.yaml")
        verb = "authentication failed" if status == 401 else "permission denied"
        return ProviderError(f"{verb} for {where}: HTTP {status}: {detail}; {hint}",
                             retryable=False, error_type=_NON_RETRYABLE_TYPES[status])
    if status == 404:
        return ProviderError(f"not found for {where}: HTTP 404: {detail}; check base_url and the model id",
                             retryable=False, error_type="not_found")
    if status in RETRYABLE_STATUS or status >= 500:
        kind = "rate_limited" if status == 429 else ("server_error" if status >= 500 else f"http_{status}")
        return ProviderError(f"{where} answered HTTP {status}: {detail}", retryable=True,
                             retry_after_s=parse_retry_after(response.headers), error_type=kind)
    kind = _NON_RETRYABLE_TYPES.get(status, f"http_{status}")
    return ProviderError(f"request rejected by {where}: HTTP {status}: {detail}; retrying will not help",
                         retryable=False, error_type=kind)


def parse_retry_after(headers: Mapping[str, str], now: datetime | None = None) -> float | None:
    """Seconds to wait from `retry-after-ms`, or `Retry-After` as seconds or an HTTP date."""
    lowered = {k.lower(): v for k, v in headers.items()}
    millis = lowered.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = lowered.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def error_detail(response: httpx.Response) -> str:
    """The server's own error message (OpenAI and Anthropic shapes), else a short body excerpt."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return response.text[:_MAX_DETAIL].strip() or response.reason_phrase
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            kind = error.get("type") or error.get("code")
            return f"{error['message']}" + (f" ({kind})" if kind else "")
        if isinstance(error, str):
            return error[:_MAX_DETAIL]
        if body.get("message"):
            return str(body["message"])[:_MAX_DETAIL]
    return json.dumps(body)[:_MAX_DETAIL]


def body_error(response: httpx.Response, model_name: str, shape: str, hint: str, err: Exception) -> ProviderError:
    """A 2xx answer the provider cannot read: JSON cut short or malformed (a server or proxy fault: the same
    bytes would come back, so it is not retried), or not JSON of `shape` at all (`hint`: usually base_url)."""
    where = f"model {model_name!r}: {response.request.url} answered {response.status_code}"
    if isinstance(err, json.JSONDecodeError) and response.text.lstrip().startswith(("{", "[")):
        return ProviderError(
            f"{where} with JSON that does not parse, cut short or malformed ({str(err)[:200]}, after "
            f"{len(response.content)} bytes); see the model server's or its proxy's logs",
            retryable=False, error_type="invalid_response")
    return ProviderError(f"{where} with a body that is not {shape} ({str(err)[:200]}); {hint}",
                         retryable=False, error_type="invalid_response")


def as_application_error(error: ProviderError) -> ApplicationError:
    """The Temporal shape of a ProviderError: non-retryable stays so, and Retry-After sets the next delay."""
    delay = timedelta(seconds=error.retry_after_s) if error.retry_after_s is not None else None
    return ApplicationError(
        str(error), type=error.error_type, non_retryable=not error.retryable, next_retry_delay=delay
    )


def _deadline_error(context: CallContext, policy: RetryPolicy, secrets: tuple[str, ...]) -> ProviderError:
    return ProviderError(
        _scrub(f"model {context.model_name!r}: call to {context.url} passed its deadline of {policy.deadline_s:g}s",
               secrets),
        retryable=True, error_type="timeout",
    )


def _scrub(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text
