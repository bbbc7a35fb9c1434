"""GitHub credentials: a token or a GitHub App from the environment, installation tokens exchanged with the
fake GitHub (RS256 JWT checked there with the app's public key), and secrets kept out of reprs and logs."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from doubles.github_server import FakeGitHub
from github_world import APP_ID, INSTALLATION, REPO, SPEC_BODY
from pydantic import SecretStr

from activities.forge.base import ForgeError
from activities.forge.github import EVIDENCE_MARKER, GitHubForge
from activities.forge.github_auth import (
    DEFAULT_API_URL,
    GitHubAuth,
    GitHubAuthError,
    webhook_secret,
)
from contracts.forge import ForgeKind, RepoRef, SpecSource


class Clock:
    """A settable clock for the token cache; no test waits for real time to pass."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


# --- from the environment ------------------------------------------------------------------------


def test_a_token_from_the_environment() -> None:
    auth = GitHubAuth.from_env({"SPEC2SHIP_GITHUB_TOKEN": "ghp_secret123\n"})
    assert auth.api_url == DEFAULT_API_URL
    assert not auth.is_app
    assert auth.token().get_secret_value() == "ghp_secret123"

    ghes = GitHubAuth.from_env(
        {"SPEC2SHIP_GITHUB_TOKEN": "t", "SPEC2SHIP_GITHUB_URL": "https://ghe.example.com/api/v3/"}
    )
    assert ghes.api_url == "https://ghe.example.com/api/v3"


def test_missing_or_broken_credentials_say_what_to_set(tmp_path: Path) -> None:
    with pytest.raises(GitHubAuthError, match="SPEC2SHIP_GITHUB_TOKEN, or SPEC2SHIP_GITHUB_APP_ID"):
        GitHubAuth.from_env({})
    with pytest.raises(GitHubAuthError, match="SPEC2SHIP_GITHUB_PRIVATE_KEY_FILE is not"):
        GitHubAuth.from_env({"SPEC2SHIP_GITHUB_APP_ID": "12"})
    with pytest.raises(GitHubAuthError, match="cannot be read"):
        GitHubAuth.from_env(
            {"SPEC2SHIP_GITHUB_APP_ID": "12", "SPEC2SHIP_GITHUB_PRIVATE_KEY_FILE": str(tmp_path / "none.pem")}
        )
    (tmp_path / "bad.pem").write_text("not a key")
    with pytest.raises(GitHubAuthError, match="holds no PEM private key"):
        GitHubAuth.from_env(
            {"SPEC2SHIP_GITHUB_APP_ID": "12", "SPEC2SHIP_GITHUB_PRIVATE_KEY_FILE": str(tmp_path / "bad.pem")}
        )
    with pytest.raises(GitHubAuthError, match="is not a number"):
        GitHubAuth.from_env({"SPEC2SHIP_GITHUB_APP_ID": "twelve"})


def test_the_webhook_secret_from_a_variable_or_a_file(tmp_path: Path) -> None:
    assert webhook_secret({"SPEC2SHIP_WEBHOOK_SECRET": "It's a Secret"}).get_secret_value() == "It's a Secret"
    (tmp_path / "hook").write_text("from-file\n")
    from_file = webhook_secret({"SPEC2SHIP_WEBHOOK_SECRET_FILE": str(tmp_path / "hook")})
    assert from_file.get_secret_value() == "from-file"
    assert "from-file" not in repr(from_file)
    with pytest.raises(GitHubAuthError, match="SPEC2SHIP_WEBHOOK_SECRET or SPEC2SHIP_WEBHOOK_SECRET_FILE"):
        webhook_secret({})


# --- GitHub App ------------------------------------------------------------------------------------


def test_an_app_trades_an_rs256_jwt_for_a_cached_installation_token(
    fake: FakeGitHub, app_env: dict[str, str], app_key: tuple[str, str]
) -> None:
    clock = Clock()
    auth = GitHubAuth.from_env(app_env, clock=clock)

    first = auth.token(INSTALLATION)
    assert auth.token(INSTALLATION) == first  # cached

    exchanges = fake.calls("POST", rf"^/app/installations/{INSTALLATION}/access_tokens$")
    assert len(exchanges) == 1
    scheme, _, token = exchanges[0].headers["authorization"].partition(" ")
    assert scheme == "Bearer"
    assert jwt.get_unverified_header(token)["alg"] == "RS256"
    claims = jwt.decode(token, app_key[1], algorithms=["RS256"])
    assert int(claims["iss"]) == APP_ID
    assert claims["exp"] - claims["iat"] <= 600
    assert first.get_secret_value().startswith("ghs_")

    clock.now += timedelta(minutes=56)  # within five minutes of the one-hour expiry
    renewed = auth.token(INSTALLATION)
    assert renewed != first
    assert len(fake.calls("POST", r"/access_tokens$")) == 2


def test_an_app_forge_finds_its_installation_and_acts_as_its_bot(
    fake: FakeGitHub, app_env: dict[str, str], tmp_path: Path
) -> None:
    auth = GitHubAuth.from_env(app_env)
    number = fake.add_issue(REPO, "Spec", SPEC_BODY)
    with GitHubForge(RepoRef(kind=ForgeKind.github, location=REPO), auth, tmp_path, throttle=False) as forge:
        assert forge.read_spec(SpecSource(kind="issue", issue_number=number))[0] == SPEC_BODY
        forge.prepare_workspace("spec2ship/app", tmp_path / "ws")
        (tmp_path / "ws" / "new.txt").write_text("by the app\n")
        head = forge.publish_branch(tmp_path / "ws", "spec2ship/app", "App change")
        pr = forge.open_pull_request("spec2ship/app", "App change", "body", issue_number=number)
        forge.upsert_evidence(pr, "first")
        forge.upsert_evidence(pr, "second")

    assert len(fake.calls("GET", r"^/repos/acme/shop/installation$")) == 1
    assert fake.branch_sha(REPO, "spec2ship/app") == head
    comments = fake.comments(REPO, pr.number)
    assert [(c.user.login, c.body) for c in comments] == [("spec2ship-test[bot]", f"{EVIDENCE_MARKER}\nsecond")]
    assert fake.pulls(REPO)[0].user.login == "spec2ship-test[bot]"


def test_an_unknown_installation_is_a_clear_error(fake: FakeGitHub, app_env: dict[str, str]) -> None:
    auth = GitHubAuth.from_env(app_env)
    with pytest.raises(GitHubAuthError, match=f"App {APP_ID} has no installation 999") as unknown:
        auth.token(999)
    assert not unknown.value.retryable

    fake.add_repo("acme/elsewhere")
    with pytest.raises(GitHubAuthError, match="is not installed on acme/elsewhere"):
        auth.installation_for("acme/elsewhere")
    with pytest.raises(GitHubAuthError, match="needs an installation id"):
        auth.token(None)


def test_a_jwt_signed_with_another_key_is_refused(fake: FakeGitHub, app_env: dict[str, str], tmp_path: Path) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (tmp_path / "other.pem").write_bytes(
        other.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    auth = GitHubAuth.from_env({**app_env, "SPEC2SHIP_GITHUB_PRIVATE_KEY_FILE": str(tmp_path / "other.pem")})
    with pytest.raises(GitHubAuthError, match="refused the JWT"):
        auth.token(INSTALLATION)


def test_a_bad_token_is_refused_without_retrying(fake: FakeGitHub, tmp_path: Path) -> None:
    fake.add_repo(REPO)
    auth = GitHubAuth(api_url=fake.api_url, token=SecretStr("ghp_not_a_real_one"))
    forge = GitHubForge(RepoRef(kind=ForgeKind.github, location=REPO), auth, tmp_path, throttle=False)
    with pytest.raises(GitHubAuthError, match="refused the credentials") as refused:
        forge.default_branch()
    assert not refused.value.retryable
    assert isinstance(refused.value, ForgeError)


# --- secrets stay secret ---------------------------------------------------------------------------


def test_secrets_never_reach_reprs_logs_or_errors(
    fake: FakeGitHub,
    app_env: dict[str, str],
    app_key: tuple[str, str],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    auth = GitHubAuth.from_env(app_env)
    installation_token = auth.token(INSTALLATION).get_secret_value()
    private_key_line = app_key[0].splitlines()[1]
    errors: list[str] = []
    with GitHubForge(
        RepoRef(kind=ForgeKind.github, location=REPO, installation_id=INSTALLATION), auth, tmp_path, throttle=False
    ) as forge:
        forge.prepare_workspace("spec2ship/secret", tmp_path / "ws")
        (tmp_path / "ws" / "a.txt").write_text("a\n")
        forge.publish_branch(tmp_path / "ws", "spec2ship/secret", "A")
        fake.push_commit(REPO, "spec2ship/secret", {"b.txt": "b\n"})
        (tmp_path / "ws" / "a.txt").write_text("changed\n")
        with pytest.raises(ForgeError) as rejected:
            forge.publish_branch(tmp_path / "ws", "spec2ship/secret", "A2")
        errors.append(str(rejected.value))
        fake.rate_limit("GET", r"/labels/", retry_after=5)
        with pytest.raises(ForgeError) as limited:
            forge.set_labels(None, None, add=["x"], remove=[])
        errors.append(str(limited.value))
        shown = [repr(auth), str(auth), repr(forge)]

    logged = [record.getMessage() for record in caplog.records] + [repr(record.args) for record in caplog.records]
    assert logged, "the flow should have logged something (PyGithub, urllib3, the forge)"
    for secret in (installation_token, private_key_line):
        for text in [*logged, *errors, *shown]:
            assert secret not in text
    assert installation_token not in (tmp_path / "ws" / ".git" / "config").read_text()
