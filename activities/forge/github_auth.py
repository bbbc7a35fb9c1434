"""How spec2ship connects to GitHub: credentials from the environment, the client's retry policy, and
the translation of GitHub's failures into `ForgeError`.

Credentials (read once, by `GitHubAuth.from_env`):

- `SPEC2SHIP_GITHUB_URL`: the REST API base URL; `https://api.github.com` by default, or a GitHub
  Enterprise Server's `https://ghe.example.com/api/v3`.
- `SPEC2SHIP_GITHUB_TOKEN`: a personal or fine-grained access token, or
- `SPEC2SHIP_GITHUB_APP_ID` + `SPEC2SHIP_GITHUB_PRIVATE_KEY_FILE`: a GitHub App. The app signs a
  short JWT (RS256) and trades it for an installation token per installation; tokens are cached until
  five minutes before they expire. The installation comes from the webhook delivery
  (`RepoRef.installation_id`) or, when absent, is looked up for the repository.
- `SPEC2SHIP_WEBHOOK_SECRET` or `SPEC2SHIP_WEBHOOK_SECRET_FILE`: the webhook secret (`webhook_secret()`).
- `SPEC2SHIP_GITHUB_THROTTLE`: `false` drops PyGithub's pauses between requests (0.25 s) and writes
  (1 s), which follow GitHub's advice against secondary rate limits on github.com; a GitHub Enterprise
  Server without rate limits, or a test double, does not need them (`throttle_from_env()`).

A worker keeps ONE `GitHubAuth` per API URL and credentials (`activities.forge.registry.github_auth`),
so an App's installation token is minted once per installation and hour, not once per activity;
`credentials_key()` tells when the configured credentials changed (a rotated token or key file).

Secrets live only in this process as `SecretStr`: they never enter a pydantic model that crosses
Temporal, never appear in a repr, a log line or an error message. One token cache serves both the
REST client and `git push`, so both always use the same, fresh token.

Retry policy (a choice, see `client_retry`): the client retries only what is safe and quick to retry
in place, i.e. connection failures and 5xx answers to idempotent methods, twice with a short backoff.
Rate limits and 5xx answers to POST are NOT retried in place: they become
`ForgeError(retryable=True, retry_after_s=...)`, so the Temporal activity retries with its own,
visible backoff instead of a worker thread sleeping for up to an hour inside PyGithub's default
`GithubRetry`; every forge method is idempotent, so the activity's retry is safe.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import github
import requests
from github import Auth, GithubException, GithubIntegration
from pydantic import SecretStr
from urllib3.util.retry import Retry

from activities.forge.base import ForgeError

log = logging.getLogger(__name__)

DEFAULT_API_URL = "https://api.github.com"
TOKEN_REFRESH_MARGIN = timedelta(minutes=5)
DEFAULT_RATE_LIMIT_WAIT_S = 60.0
HTTP_TIMEOUT_S = 15

ENV_URL = "SPEC2SHIP_GITHUB_URL"
ENV_TOKEN = "SPEC2SHIP_GITHUB_TOKEN"
ENV_APP_ID = "SPEC2SHIP_GITHUB_APP_ID"
ENV_PRIVATE_KEY_FILE = "SPEC2SHIP_GITHUB_PRIVATE_KEY_FILE"
ENV_WEBHOOK_SECRET = "SPEC2SHIP_WEBHOOK_SECRET"
ENV_WEBHOOK_SECRET_FILE = "SPEC2SHIP_WEBHOOK_SECRET_FILE"
ENV_THROTTLE = "SPEC2SHIP_GITHUB_THROTTLE"

Clock = Callable[[], datetime]


class GitHubAuthError(ForgeError):
    """Credentials are missing, unreadable or refused; retrying cannot help until someone fixes them."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def client_retry() -> Retry:
    """The in-client retry: connection errors and 5xx on idempotent methods, twice, quickly.

    `Retry-After` is not honoured here (a worker thread must not sleep for minutes); a 5xx that outlasts
    these retries is raised as a retryable `ForgeError` carrying the server's wait.
    """
    return Retry(
        total=2,
        connect=2,
        read=2,
        status=2,
        status_forcelist=(500, 502, 503, 504),
        allowed_methods=frozenset({"GET", "HEAD", "PUT", "DELETE", "PATCH", "OPTIONS"}),
        backoff_factor=0.5,
        backoff_max=4.0,
        respect_retry_after_header=False,
        raise_on_status=False,
    )


# --- errors ------------------------------------------------------------------------------------


def _header(headers: Mapping[str, Any] | None, name: str) -> str | None:
    for key, value in (headers or {}).items():
        if key.lower() == name:
            return str(value)
    return None


def retry_after_s(status: int, headers: Mapping[str, Any] | None, now: datetime | None = None) -> float | None:
    """The wait GitHub asks for: `Retry-After` (seconds or an HTTP date), else the primary rate limit's
    reset time when `X-RateLimit-Remaining` is 0; None when the answer names no wait."""
    now = now or _utcnow()
    value = _header(headers, "retry-after")
    if value is not None:
        try:
            return max(0.0, float(value))
        except ValueError:
            try:
                return max(0.0, (parsedate_to_datetime(value) - now).total_seconds())
            except (TypeError, ValueError):
                pass
    if _header(headers, "x-ratelimit-remaining") == "0":
        reset = _header(headers, "x-ratelimit-reset")
        if reset is not None and reset.isdigit():
            return max(0.0, float(reset) - now.timestamp())
    return None


def is_rate_limited(status: int, headers: Mapping[str, Any] | None, message: str = "") -> bool:
    """GitHub signals primary and secondary rate limits with 429, or 403 plus rate-limit headers/text."""
    if status == 429:
        return True
    if status != 403:
        return False
    if _header(headers, "retry-after") is not None or _header(headers, "x-ratelimit-remaining") == "0":
        return True
    return "rate limit" in message.lower()


def github_message(exc: GithubException) -> str:
    """GitHub's own words for a failure: its `message` plus any validation `errors`."""
    data = exc.data if isinstance(exc.data, dict) else {}
    message = str(data.get("message") or exc.message or "no message")
    details = []
    for error in data.get("errors") or []:
        if isinstance(error, dict) and error.get("message"):
            details.append(str(error["message"]))
        elif isinstance(error, dict):
            where = ".".join(str(error[key]) for key in ("resource", "field") if error.get(key))
            details.append(f"{where} {error.get('code', '')}".strip())
        else:
            details.append(str(error))
    return f"{message} ({'; '.join(details)})" if details else message


def forge_error(exc: Exception, doing: str, where: str, secrets: tuple[str, ...] = ()) -> ForgeError:
    """Translate a PyGithub/requests failure into a ForgeError that says what, where and what next.

    5xx, rate limits and network failures are retryable (with the wait when GitHub gives one);
    everything else (401, 403, 404, 422, ...) is not: the request itself must change.
    """
    if isinstance(exc, ForgeError):
        return exc
    if isinstance(exc, GithubException):
        status = exc.status
        message = github_message(exc)
        if is_rate_limited(status, exc.headers, message):
            wait = retry_after_s(status, exc.headers)
            wait = DEFAULT_RATE_LIMIT_WAIT_S if wait is None else wait
            error = ForgeError(
                f"GitHub rate limit ({status}) while {doing} on {where}: retry after {wait:.0f} s ({message})",
                retryable=True,
                retry_after_s=wait,
            )
        elif status >= 500:
            wait = retry_after_s(status, exc.headers)
            hint = f"retry after {wait:.0f} s" if wait is not None else "retry later"
            error = ForgeError(
                f"GitHub failed ({status}) while {doing} on {where}: {message}; {hint}",
                retryable=True,
                retry_after_s=wait,
            )
        elif status == 401:
            error = GitHubAuthError(
                f"GitHub refused the credentials (401) while {doing} on {where}: {message}; "
                f"check {ENV_TOKEN} or the GitHub App id and private key"
            )
        elif status == 403:
            error = ForgeError(
                f"GitHub forbade {doing} on {where} (403): {message}; "
                "give the token or the app the permission this needs"
            )
        elif status == 404:
            error = ForgeError(
                f"GitHub found nothing while {doing} on {where} (404): {message}; "
                "check the repository, number or path, and that the credentials can see it"
            )
        else:
            error = ForgeError(f"GitHub rejected {doing} on {where} ({status}): {message}")
    elif isinstance(exc, requests.RequestException):
        error = ForgeError(f"could not reach GitHub while {doing} on {where}: {type(exc).__name__}", retryable=True)
    else:
        error = ForgeError(f"unexpected failure while {doing} on {where}: {type(exc).__name__}: {exc}")
    return _scrubbed(error, secrets)


def _scrubbed(error: ForgeError, secrets: tuple[str, ...]) -> ForgeError:
    text = str(error)
    if not any(secret and secret in text for secret in secrets):
        return error
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    clean = type(error).__new__(type(error))
    ForgeError.__init__(clean, text, retryable=error.retryable, retry_after_s=error.retry_after_s)
    return clean


# --- credentials -------------------------------------------------------------------------------


class _LiveTokenAuth(Auth.Auth):
    """A PyGithub auth that asks the shared cache for the token on every request, so a long-lived
    client never sends an expired installation token."""

    def __init__(self, source: Callable[[], SecretStr]) -> None:
        self._source = source

    @property
    def token_type(self) -> str:
        return "token"

    @property
    def token(self) -> str:
        return self._source().get_secret_value()

    @property
    def _masked_token(self) -> str:
        return "token (removed)"


class _CachedToken:
    def __init__(self, token: SecretStr, expires_at: datetime) -> None:
        self.token = token
        self.expires_at = expires_at


class GitHubAuth:
    """GitHub credentials for one API endpoint: a token, or a GitHub App with its installations."""

    def __init__(
        self,
        *,
        api_url: str = DEFAULT_API_URL,
        token: SecretStr | None = None,
        app_id: int | None = None,
        private_key: SecretStr | None = None,
        clock: Clock = _utcnow,
    ) -> None:
        if token is None and (app_id is None or private_key is None):
            raise GitHubAuthError(f"no GitHub credentials: set {ENV_TOKEN}, or {ENV_APP_ID} and {ENV_PRIVATE_KEY_FILE}")
        self.api_url = api_url.rstrip("/")
        self.app_id = app_id
        self._token = token if app_id is None else None
        self._private_key = private_key
        self._clock = clock
        self._lock = threading.Lock()
        self._installation_tokens: dict[int, _CachedToken] = {}
        self._repo_installations: dict[str, int] = {}
        self._identities: dict[int | None, str] = {}
        self._integration: GithubIntegration | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, clock: Clock = _utcnow) -> GitHubAuth:
        """Read the credentials (see the module docstring); the App wins when both are configured."""
        env = os.environ if env is None else env
        api_url = env.get(ENV_URL) or DEFAULT_API_URL
        app_id_text = (env.get(ENV_APP_ID) or "").strip()
        if app_id_text:
            if not app_id_text.isdigit():
                raise GitHubAuthError(f"{ENV_APP_ID}={app_id_text!r} is not a number: use the App ID from its settings")
            key_file = env.get(ENV_PRIVATE_KEY_FILE)
            if not key_file:
                raise GitHubAuthError(f"{ENV_APP_ID} is set but {ENV_PRIVATE_KEY_FILE} is not: point it at the .pem")
            key = _read_secret_file(key_file, ENV_PRIVATE_KEY_FILE)
            if "PRIVATE KEY" not in key.get_secret_value():
                raise GitHubAuthError(f"{ENV_PRIVATE_KEY_FILE}={key_file} holds no PEM private key")
            return cls(api_url=api_url, app_id=int(app_id_text), private_key=key, clock=clock)
        token = (env.get(ENV_TOKEN) or "").strip()
        if token:
            return cls(api_url=api_url, token=SecretStr(token), clock=clock)
        raise GitHubAuthError(f"no GitHub credentials: set {ENV_TOKEN}, or {ENV_APP_ID} and {ENV_PRIVATE_KEY_FILE}")

    def __repr__(self) -> str:
        kind = f"app {self.app_id}" if self.is_app else "token"
        return f"GitHubAuth({self.api_url}, {kind})"

    __str__ = __repr__

    @property
    def is_app(self) -> bool:
        return self.app_id is not None

    def client(self, installation_id: int | None = None, *, throttle: bool = True) -> github.Github:
        """A PyGithub client for one installation (or the token), with this module's retry policy.

        `throttle=False` drops PyGithub's pauses between requests (0.25 s) and writes (1 s), which
        follow GitHub's advice for real servers; tests against a local double turn them off.
        """
        pauses: dict[str, Any] = {} if throttle else {"seconds_between_requests": None, "seconds_between_writes": None}
        return github.Github(
            base_url=self.api_url,
            auth=self.pygithub_auth(installation_id),
            retry=client_retry(),
            timeout=HTTP_TIMEOUT_S,
            lazy=True,
            **pauses,
        )

    def pygithub_auth(self, installation_id: int | None = None) -> Auth.Auth:
        return _LiveTokenAuth(lambda: self.token(installation_id))

    def token(self, installation_id: int | None = None) -> SecretStr:
        """The token to act with: the configured token, or the installation's (fresh, cached)."""
        if self._token is not None:
            return self._token
        if installation_id is None:
            raise GitHubAuthError(
                f"GitHub App {self.app_id} needs an installation id to act on a repository: pass it from "
                "the webhook delivery (RepoRef.installation_id) or resolve it with installation_for()"
            )
        with self._lock:
            cached = self._installation_tokens.get(installation_id)
            if cached is not None and cached.expires_at - TOKEN_REFRESH_MARGIN > self._clock():
                return cached.token
            fresh = self._exchange(installation_id)
            self._installation_tokens[installation_id] = fresh
            return fresh.token

    def installation_for(self, repo_full_name: str) -> int:
        """The App's installation on `owner/name` (GET /repos/{owner}/{repo}/installation), cached."""
        if not self.is_app:
            raise GitHubAuthError("installation ids exist only for GitHub Apps; this is token authentication")
        with self._lock:
            if repo_full_name in self._repo_installations:
                return self._repo_installations[repo_full_name]
        owner, _, name = repo_full_name.partition("/")
        try:
            installation = self._app_client().get_repo_installation(owner, name)
            installation_id = int(installation.id)
        except GithubException as exc:
            if exc.status == 404:
                raise GitHubAuthError(
                    f"GitHub App {self.app_id} is not installed on {repo_full_name} ({self.api_url}): "
                    "install the app on the repository"
                ) from None
            raise forge_error(exc, "looking up the app installation", repo_full_name) from None
        except requests.RequestException as exc:
            raise forge_error(exc, "looking up the app installation", repo_full_name) from None
        with self._lock:
            self._repo_installations[repo_full_name] = installation_id
        return installation_id

    def identity(self, installation_id: int | None = None) -> str:
        """The login our comments are written under: the token's user, or `<app-slug>[bot]`."""
        with self._lock:
            if installation_id in self._identities:
                return self._identities[installation_id]
        try:
            if self.is_app:
                login = f"{self._app_client().get_app().slug}[bot]"
            else:
                with self.client(installation_id, throttle=False) as gh:
                    login = gh.get_user().login
        except (GithubException, requests.RequestException) as exc:
            raise forge_error(exc, "finding out which account the credentials act as", self.api_url) from None
        with self._lock:
            self._identities[installation_id] = login
        return login

    def secrets(self) -> tuple[str, ...]:
        """Every secret value this object holds, for scrubbing text before it leaves the process."""
        values = [self._token.get_secret_value()] if self._token else []
        with self._lock:
            values += [cached.token.get_secret_value() for cached in self._installation_tokens.values()]
        return tuple(values)

    def close(self) -> None:
        if self._integration is not None:
            self._integration.close()
            self._integration = None

    def _app_client(self) -> GithubIntegration:
        if self._integration is None:
            assert self.app_id is not None and self._private_key is not None
            self._integration = GithubIntegration(
                auth=Auth.AppAuth(self.app_id, self._private_key.get_secret_value()),
                base_url=self.api_url,
                retry=client_retry(),
                timeout=HTTP_TIMEOUT_S,
                seconds_between_requests=None,
                seconds_between_writes=None,
            )
        return self._integration

    def _exchange(self, installation_id: int) -> _CachedToken:
        """POST /app/installations/{id}/access_tokens with the app's JWT."""
        try:
            grant = self._app_client().get_access_token(installation_id)
        except GithubException as exc:
            if exc.status == 404:
                raise GitHubAuthError(
                    f"GitHub App {self.app_id} has no installation {installation_id} on {self.api_url}: "
                    "install the app on the repository, or fix the installation id the delivery carried"
                ) from None
            if exc.status == 401:
                raise GitHubAuthError(
                    f"GitHub refused the JWT of App {self.app_id} (401: {github_message(exc)}): check "
                    f"{ENV_APP_ID}, the key in {ENV_PRIVATE_KEY_FILE} and this machine's clock"
                ) from None
            raise forge_error(exc, f"creating a token for installation {installation_id}", self.api_url) from None
        except requests.RequestException as exc:
            raise forge_error(exc, f"creating a token for installation {installation_id}", self.api_url) from None
        expires_at = grant.expires_at
        if expires_at.tzinfo is None:
            expires_at = expires_at.replace(tzinfo=UTC)
        log.info("GitHub App %s: new token for installation %s, expires %s", self.app_id, installation_id, expires_at)
        return _CachedToken(SecretStr(grant.token), expires_at)


def credentials_key(env: Mapping[str, str] | None = None) -> tuple[str, str]:
    """Which credentials the environment configures, as (API URL, identity), with no secret in clear.

    Equal keys mean one `GitHubAuth` can serve both; a rotated token, another App, or a key file that
    was replaced (its modification time) gives a different key, so the new credentials are used.
    """
    env = os.environ if env is None else env
    api_url = (env.get(ENV_URL) or DEFAULT_API_URL).rstrip("/")
    app_id = (env.get(ENV_APP_ID) or "").strip()
    if app_id:
        key_file = env.get(ENV_PRIVATE_KEY_FILE) or ""
        try:
            changed = Path(key_file).expanduser().stat().st_mtime_ns if key_file else 0
        except OSError:
            changed = 0
        return api_url, f"app:{app_id}:{key_file}:{changed}"
    token = (env.get(ENV_TOKEN) or "").strip()
    return api_url, "token:" + hashlib.sha256(token.encode()).hexdigest()


def throttle_from_env(env: Mapping[str, str] | None = None) -> bool:
    """Whether the client pauses between requests as GitHub advises (on unless the variable says off)."""
    env = os.environ if env is None else env
    value = (env.get(ENV_THROTTLE) or "").strip().lower()
    if value in {"", "1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise GitHubAuthError(f"{ENV_THROTTLE}={value!r}: use true or false")


def _read_secret_file(path: str, variable: str) -> SecretStr:
    try:
        text = Path(path).expanduser().read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise GitHubAuthError(
            f"{variable}={path} cannot be read ({exc.strerror}): fix the path or its permissions"
        ) from None
    if not text:
        raise GitHubAuthError(f"{variable}={path} is empty")
    return SecretStr(text)


def webhook_secret(env: Mapping[str, str] | None = None) -> SecretStr:
    """The secret GitHub signs deliveries with: `SPEC2SHIP_WEBHOOK_SECRET`, else the file named by
    `SPEC2SHIP_WEBHOOK_SECRET_FILE` (trailing newline dropped). Missing is an error: an unsigned
    webhook endpoint would let anyone steer runs."""
    env = os.environ if env is None else env
    value = env.get(ENV_WEBHOOK_SECRET)
    if value:
        return SecretStr(value)
    path = env.get(ENV_WEBHOOK_SECRET_FILE)
    if path:
        return _read_secret_file(path, ENV_WEBHOOK_SECRET_FILE)
    raise GitHubAuthError(
        f"no webhook secret: set {ENV_WEBHOOK_SECRET} or {ENV_WEBHOOK_SECRET_FILE} to the secret configured "
        "on the GitHub webhook"
    )
