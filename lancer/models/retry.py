"""The one retry layer for API providers (the SDKs' own retries are turned off).

Transient failures (429 rate limits, 408/409, 5xx and 529 overloaded, an error event in the
middle of a stream, timeouts, dropped connections) are retried with exponential backoff
and jitter, honouring Retry-After, within ``max_retries`` more attempts and
``retry_max_total_s`` seconds from the first. Everything else fails at once with a one-line
ModelCallError saying what to fix: a bad key, a refused request, an exhausted quota, a
request too long for the context window. Each retry becomes an event in the trajectory,
and each request (its timing) and retry a line in the run's log.

A connection refused by a server on this machine (a base URL on localhost or 127.x) is
given only a few seconds: nothing is listening there, and minutes of backoff would not
start it.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import ipaddress
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, stop_before_delay

from lancer.core.config import ModelConfig
from lancer.core.errors import ModelError
from lancer.core.logs import get_logger
from lancer.core.secrets import redact
from lancer.models.notices import notice

T = TypeVar("T")

_OVERFLOW = re.compile(
    r"context[ _](length|window|size)|maximum context|prompt is too long|too many (input )?tokens"
    r"|exceeds? the (model's )?(max|context)|reduce the length",
    re.IGNORECASE,
)
# Error types and codes that mean "try again" even inside a 200 stream.
_TRANSIENT_TYPES = {"overloaded_error", "api_error", "rate_limit_error", "timeout_error", "server_error"}
# Matched against an error's type and code only: plain rate-limit messages mention billing too.
_QUOTA = re.compile(r"quota|billing|spend_limit", re.IGNORECASE)
# A local server that refuses connections gets this long, retried this often.
_LOCAL_REFUSED_S = 3.0
_LOCAL_REFUSED_WAIT_S = 0.5

log = get_logger("models")


class ModelCallError(ModelError):
    """A model call failed for good. ``events`` are the retries made before it did."""

    def __init__(self, message: str, events: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.events = events or []


class ContextOverflowError(ModelCallError):
    """The server says the request is longer than the model's context window."""


@dataclass(frozen=True)
class SdkErrors:
    """An SDK's exception classes. openai and anthropic share their shape: the status error
    has ``status_code``, ``response.headers``, ``body`` and ``message``."""

    status: type[Exception]
    connection: type[Exception]  # timeouts are a subclass in both SDKs
    base: type[Exception]  # anything else the SDK raises, e.g. a reply it cannot parse


@dataclass(frozen=True)
class Failure:
    retryable: bool
    summary: str  # one line, e.g. "429 rate_limit_error: Rate limit reached"
    status: int | None = None
    retry_after: float | None = None
    kind: str = "transient"  # transient | auth | quota | overflow | refused | unexpected


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int
    max_total_s: float
    initial_wait_s: float
    max_wait_s: float

    @classmethod
    def from_config(cls, config: ModelConfig) -> RetryPolicy:
        return cls(config.max_retries, config.retry_max_total_s, config.retry_initial_wait_s, config.retry_max_wait_s)

    def backoff(self, attempt: int) -> float:
        """Equal jitter: half the exponential step, plus up to the other half at random."""
        step = min(self.max_wait_s, self.initial_wait_s * 2.0 ** (attempt - 1))
        return step / 2 + random.uniform(0, step / 2)


def classify(exc: BaseException, errors: SdkErrors) -> Failure | None:
    """How to treat ``exc``; None when it is not an API failure at all (a bug: let it raise)."""
    if isinstance(exc, errors.status):
        return _classify_status(exc)
    if isinstance(exc, (errors.connection, *_transport_errors())):
        return Failure(True, _one_line(f"{type(exc).__name__}: {_with_cause(exc)}"))
    if isinstance(exc, errors.base):
        return Failure(False, _one_line(f"{type(exc).__name__}: {exc}"), kind="unexpected")
    return None


def call_with_retries(
    call: Callable[[], T],
    *,
    policy: RetryPolicy,
    errors: SdkErrors,
    label: str,
    key_env: str,
    on_retry_after: Callable[[float], None] = lambda seconds: None,
) -> tuple[T, list[dict[str, Any]]]:
    """``call()``'s result and the retry events; raises ModelCallError when it fails for good.

    ``label`` names the model in messages ("openai:gpt-4o"); ``key_env`` is the variable to
    check when the key is refused; ``on_retry_after`` is told when the server asks to wait
    (so every run sharing its rate limit waits, not only this one).
    """
    events: list[dict[str, Any]] = []
    started = time.monotonic()

    def retryable(exc: BaseException) -> bool:
        failure = classify(exc, errors)
        if _refused_locally(exc) and time.monotonic() - started + _LOCAL_REFUSED_WAIT_S > _LOCAL_REFUSED_S:
            return False
        return failure is not None and failure.retryable

    def attempt() -> T:
        sent = time.monotonic()
        try:
            result = call()
        except Exception as exc:
            failure = classify(exc, errors)
            summary = failure.summary if failure else repr(exc)
            log.debug("%s: request failed after %.3f s: %s", label, time.monotonic() - sent, summary)
            raise
        log.debug("%s: request answered in %.3f s", label, time.monotonic() - sent)
        return result

    def wait(state: RetryCallState) -> float:
        if _refused_locally(_exception(state)):
            return _LOCAL_REFUSED_WAIT_S
        failure = classify(_exception(state), errors)
        if failure is not None and failure.retry_after is not None:
            on_retry_after(failure.retry_after)
            return failure.retry_after
        return policy.backoff(state.attempt_number)

    def record(state: RetryCallState) -> None:
        failure = classify(_exception(state), errors)
        summary = failure.summary if failure else repr(_exception(state))
        sleep = state.next_action.sleep if state.next_action else 0.0
        events.append({"type": "retry", "attempt": state.attempt_number, "error": summary, "wait_s": round(sleep, 3)})
        attempt = f"attempt {state.attempt_number + 1} of {policy.max_retries + 1}"
        log.info("%s: %s; retrying in %.1f s (%s)", label, summary, sleep, attempt)
        notice(f"{label}: {summary.rstrip('.')}; retrying in {sleep:.1f} s ({attempt})")

    retrying = Retrying(
        retry=retry_if_exception(retryable),
        stop=stop_after_attempt(policy.max_retries + 1) | stop_before_delay(policy.max_total_s),
        wait=wait,
        before_sleep=record,
        reraise=True,
    )
    try:
        return retrying(attempt), events
    except Exception as exc:
        failure = classify(exc, errors)
        if failure is None:
            raise
        attempts = len(events) + 1
        if url := _refused_locally(exc):
            raise ModelCallError(
                redact(
                    f"{label}: nothing is listening at {url} (connection refused, {attempts} attempts in "
                    f"{time.monotonic() - started:.1f} s); start the model server there, or fix the base URL "
                    "(model.base_url or --base-url)"
                ),
                events,
            ) from None
        raise _final_error(failure, label, key_env, attempts, time.monotonic() - started, policy, events) from None


def _final_error(
    failure: Failure,
    label: str,
    key_env: str,
    attempts: int,
    seconds: float,
    policy: RetryPolicy,
    events: list[dict[str, Any]],
) -> ModelCallError:
    if failure.retryable:
        why = f"gave up after {attempts} attempts in {seconds:.1f} s: {failure.summary}"
        if failure.retry_after is not None and seconds + failure.retry_after >= policy.max_total_s:
            why += f" (the server asked to wait {failure.retry_after:g} s, past model.retry_max_total_s)"
        return ModelCallError(redact(f"{label}: {why}"), events)
    advice = {
        "auth": f"check {key_env}",
        "quota": "the account is out of quota or credit; retrying will not help",
        "overflow": "the request is longer than the model's context window; "
        "set model.context_window lower so lancer trims more",
        "refused": "the request was refused; check the model name, base URL and model settings",
        "unexpected": "the server's answer was not what the SDK expects; check the base URL",
    }[failure.kind]
    cls = ContextOverflowError if failure.kind == "overflow" else ModelCallError
    return cls(redact(f"{label}: {failure.summary} ({advice})"), events)


def _classify_status(exc: Any) -> Failure:
    status = int(getattr(exc, "status_code", 0) or 0)
    err_type, code, message = _error_fields(getattr(exc, "body", None))
    text = message or str(getattr(exc, "message", "")) or f"HTTP {status}"
    what = " ".join(p for p in (str(status) if status else "", err_type or code or "") if p)
    summary = _one_line(f"{what}: {text}" if what else text)
    retry_after = _retry_after(getattr(getattr(exc, "response", None), "headers", None))
    marks = " ".join(str(x) for x in (err_type, code) if x)
    if 400 <= status < 500 and (code == "context_length_exceeded" or _OVERFLOW.search(text)):
        return Failure(False, summary, status, kind="overflow")
    if status in (401, 403):
        return Failure(False, summary, status, kind="auth")
    if status == 402 or (status == 429 and (_QUOTA.search(marks) or "exceeded your current quota" in text)):
        return Failure(False, summary, status, kind="quota")
    if status in (408, 409, 429) or status >= 500 or (err_type in _TRANSIENT_TYPES or code in _TRANSIENT_TYPES):
        return Failure(True, summary, status, retry_after)
    return Failure(False, summary, status, kind="refused")


def _error_fields(body: object) -> tuple[str | None, str | None, str | None]:
    """(type, code, message) from an error body, whether the whole body or its ``error``."""
    if isinstance(body, str):
        return None, None, body
    if not isinstance(body, dict):
        return None, None, None
    err = body.get("error", body)
    if isinstance(err, str):
        return None, None, err
    if not isinstance(err, dict):
        return None, None, None
    code = err.get("code")
    details = err.get("details")
    if code is None and isinstance(details, dict):
        code = details.get("error_code")
    message = err.get("message")
    return (
        str(err["type"]) if err.get("type") else None,
        str(code) if code is not None else None,
        str(message) if message is not None else None,
    )


def _retry_after(headers: Any) -> float | None:
    """Seconds the server asked us to wait (retry-after-ms, or retry-after in seconds or a date)."""
    if headers is None:
        return None
    try:
        if (ms := headers.get("retry-after-ms")) is not None:
            return max(float(ms) / 1000, 0.0)
        value = headers.get("retry-after")
        if value is None:
            return None
        try:
            return max(float(value), 0.0)
        except ValueError:
            when = parsedate_to_datetime(value)
            return max((when - datetime.now(UTC)).total_seconds(), 0.0)
    except (TypeError, ValueError):
        return None


def _exception(state: RetryCallState) -> BaseException:
    assert state.outcome is not None and state.outcome.failed
    exc = state.outcome.exception()
    assert exc is not None
    return exc


def _refused_locally(exc: BaseException) -> str | None:
    """The URL of a server on this machine that refused the connection ``exc`` is about."""
    request = getattr(exc, "request", None)
    url = getattr(request, "url", None)
    host = str(getattr(url, "host", "") or "")
    if not host or not _is_loopback(host):
        return None
    seen: BaseException | None = exc
    for _ in range(6):  # the SDK's error wraps the HTTP library's, which wraps the OS's
        if seen is None:
            return None
        if isinstance(seen, ConnectionRefusedError):
            return str(url)
        seen = seen.__cause__ or seen.__context__
    return None


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _with_cause(exc: BaseException) -> str:
    cause = exc.__cause__ or exc.__context__
    return f"{exc} ({type(cause).__name__}: {cause})" if cause is not None and str(cause) else str(exc)


def _one_line(text: str, limit: int = 300) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


@functools.cache
def _transport_errors() -> tuple[type[Exception], ...]:
    """The HTTP library's transport errors: a stream cut mid-way raises these, unwrapped."""
    found: list[type[Exception]] = []
    for name in ("httpx2", "httpx"):
        with contextlib.suppress(ImportError, AttributeError):
            found.append(importlib.import_module(name).TransportError)
    return tuple(found)
