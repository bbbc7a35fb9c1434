"""A fake GitHub: the REST subset spec2ship uses, plus real git over smart HTTP, on 127.0.0.1.

It stands in for github.com / GitHub Enterprise Server in tests. The API is served under `/api/v3`
(the GHES layout, so the client's base-URL handling is exercised) and the repositories at
`/{owner}/{repo}.git` through the real `git http-backend`. Every response body follows the shape of
GitHub's OpenAPI description; pass `contract=GitHubOpenApi.fetch()` and each response is validated
against its operation as it is served, with failures collected in `contract_failures`.

Use it like this (everything is synchronous and thread-safe; the server runs in a daemon thread):

    with FakeGitHub(contract=GitHubOpenApi.fetch()) as gh:      # contract optional
        token = gh.add_token("octo-bot")                        # a personal token acting as octo-bot
        gh.add_repo("acme/shop", {"README.md": "# shop\n"})     # bare repo, one commit on main
        gh.add_collaborator("acme/shop", "octo-bot", "write")   # admin|maintain|write|triage|read
        number = gh.add_issue("acme/shop", "Add /health", body, labels=["spec2ship"], author="alice")
        gh.add_comment("acme/shop", number, "/approve", author="alice")
        gh.add_user("mallory")                                  # exists, no access: permission none
        # point the code under test at gh.api_url (PyGithub base_url) with `token`;
        # git clones gh.url + "/acme/shop.git" with header "Authorization: Basic base64(x:<token>)"
        gh.pulls("acme/shop")              # [Issue] with .pull (head_ref, merged, merge_commit_sha...)
        gh.issue("acme/shop", number)      # .state, .title, .body, .labels
        gh.close_issue("acme/shop", number)  # as a person would; merging a PR that `Closes #N` does too
        gh.comments("acme/shop", number)   # [Comment] oldest first, .user.login, .body
        gh.labels("acme/shop", number)     # ["spec2ship", ...]
        gh.statuses("acme/shop", sha)      # [Status] .context, .state, .description
        gh.branch_sha("acme/shop", "main"); gh.file_at("acme/shop", "main", "README.md")
        gh.head_sha("acme/shop", pr_number)
        gh.requests                        # every request in order; gh.calls("POST", r"/pulls$") filters
        gh.contract_failures               # [] when every API answer matched GitHub's description

GitHub Apps: `add_app(app_id, slug, public_key_pem)` then `install_app(app_id, installation_id,
["acme/shop"])`; the fake checks the RS256 JWT and hands out installation tokens (1 h) at
POST /app/installations/{id}/access_tokens; comments made with them are by `<slug>[bot]`.
`expire_token(value)` makes a token stale.

Issues are listed (GET /repos/{o}/{r}/issues) with GitHub's filters state, labels (all of them),
sort, direction, since and creator, paginated with `per_page`/`page` and a `Link` header; the other
documented filters are refused with 422 rather than ignored.

Failure injection: `fail(method, path_regex, status, times=1)` (e.g. a 502 once; `after=True` carries the
request out and loses only its answer), `rate_limit(...)`
(429 or 403 with Retry-After / X-RateLimit-* headers), `set_mergeable(repo, number, False)` (405),
and `push_commit(repo, branch, files)` moves a branch as a human would (the next merge with the old
sha gets 409, and a force-with-lease push over it is refused).

It delivers no webhooks: the test that needs them posts deliveries itself.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import shutil
import tempfile
import threading
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, unquote

import jwt
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from doubles import github_git as gitx
from doubles.github_openapi import GitHubOpenApi
from doubles.github_shapes import Json, Shapes
from doubles.github_state import (
    App,
    Comment,
    Installation,
    Issue,
    Label,
    Pull,
    Repo,
    Role,
    Status,
    Token,
    User,
    now,
)
from doubles.http_server import ServerThread

API_PREFIX = "/api/v3"
INSTALLATION_TOKEN_TTL = timedelta(hours=1)
# GitHub documents these once for the whole API rather than per operation (bad credentials, rate limits,
# outages): an operation that does not list them may still answer them, with a `basic-error` body.
API_WIDE_STATUSES = frozenset({401, 403, 429, 500, 502, 503, 504})
_STATUS_STATES = {"error", "failure", "pending", "success"}
_MERGE_METHODS = {"merge", "squash", "rebase"}
# GitHub's closing keywords (https://docs.github.com/en/issues/tracking-your-work-with-issues/linking-a-pull-request-to-an-issue)
_CLOSING = re.compile(r"\b(?:close[sd]?|fix(?:e[sd])?|resolve[sd]?)\s*:?\s+#(?P<number>\d+)\b", re.IGNORECASE)
_ISSUE_SORTS: dict[str, Callable[[Issue, Counter[int]], Any]] = {
    "created": lambda issue, _comments: issue.created_at,
    "updated": lambda issue, _comments: issue.updated_at,
    "comments": lambda issue, comments: comments[issue.number],
}

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class Reply(Exception):
    """Raised by a handler to answer with an error status and a GitHub error body."""

    def __init__(self, status: int, body: Json, headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers or {}


def not_found() -> Reply:
    return Reply(404, Shapes.error("Not Found", 404))


@dataclass
class RecordedRequest:
    """One request the fake answered. `path` is the full path (with `/api/v3` for the API)."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    status: int = 0
    response: bytes = b""
    injected: bool = False

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    @property
    def api_path(self) -> str | None:
        return self.path[len(API_PREFIX) :] if self.path.startswith(API_PREFIX + "/") else None


@dataclass
class Fault:
    method: str
    pattern: re.Pattern[str]
    status: int
    body: Json
    headers: dict[str, str]
    remaining: int
    after: bool = False  # handled first, then answered with the failure: it landed, the client never heard

    def matches(self, method: str, path: str) -> bool:
        return self.remaining > 0 and method == self.method and self.pattern.search(path) is not None


@dataclass
class _Collected:
    status: int = 0
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b""


class FakeGitHub:
    """See the module docstring. `root` holds the bare repositories (a temporary folder by default)."""

    def __init__(self, *, root: Path | None = None, contract: GitHubOpenApi | None = None) -> None:
        self._own_root = root is None
        self.root = Path(tempfile.mkdtemp(prefix="fake-github-")) if root is None else root
        self.contract = contract
        self.requests: list[RecordedRequest] = []
        self.contract_failures: list[str] = []
        self.contract_checked: list[RecordedRequest] = []  # the API answers validated against the contract
        self._lock = threading.RLock()
        self._users: dict[str, User] = {}
        self._repos: dict[str, Repo] = {}
        self._tokens: dict[str, Token] = {}
        self._apps: dict[int, App] = {}
        self._installations: dict[int, Installation] = {}
        self._faults: list[Fault] = []
        self._thread = ServerThread(self._build_app(), name="fake-github")
        self.url = f"http://127.0.0.1:{self._thread.port}"
        self.api_url = self.url + API_PREFIX
        self.shapes = Shapes(self.api_url, self.url)

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self) -> FakeGitHub:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._thread.stop()
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> FakeGitHub:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- setting up the world ----------------------------------------------------------------------

    def add_user(self, login: str, *, type: str = "User", name: str | None = None) -> User:
        with self._lock:
            user = self._users.get(login.lower())
            if user is None:
                user = User(login=login, type=type, name=name)
                self._users[login.lower()] = user
            return user

    def add_token(self, login: str, value: str | None = None) -> str:
        """A personal access token acting as `login` (created if new)."""
        token = value or f"ghp_{secrets.token_hex(18)}"
        with self._lock:
            self._tokens[token] = Token(value=token, user=self.add_user(login))
        return token

    def add_repo(
        self,
        full_name: str,
        files: Mapping[str, str | bytes] | None = None,
        *,
        default_branch: str = "main",
        private: bool = True,
    ) -> Repo:
        """A repository whose default branch holds `files` in one commit; the owner is admin."""
        owner_login, _, name = full_name.partition("/")
        with self._lock:
            if full_name.lower() in self._repos:
                raise ValueError(f"{full_name} already exists in the fake")
            owner = self.add_user(
                owner_login, type="Organization" if owner_login.lower() not in self._users else "User"
            )
            bare = self.root / owner_login / f"{name}.git"
            gitx.create_bare(bare, default_branch, dict(files or {"README.md": f"# {name}\n"}))
            repo = Repo(owner=owner, name=name, default_branch=default_branch, bare=bare, private=private)
            self._repos[full_name.lower()] = repo
            return repo

    def add_issue(
        self,
        full_name: str,
        title: str,
        body: str | None = None,
        *,
        labels: list[str] | None = None,
        author: str = "alice",
    ) -> int:
        with self._lock:
            repo = self.repo(full_name)
            issue = Issue(number=repo.next_number(), title=title, body=body, user=self.add_user(author))
            for name in labels or []:
                issue.labels.append(self._ensure_label(repo, name).name)
            repo.issues[issue.number] = issue
            return issue.number

    def close_issue(self, full_name: str, number: int) -> None:
        """Close an issue as a person would (the listing then leaves it out unless asked for closed ones)."""
        with self._lock:
            issue = self.repo(full_name).issues[number]
            issue.state, issue.closed_at = "closed", now()
            issue.touch()

    def add_label(self, full_name: str, name: str, color: str = "ededed", description: str | None = None) -> None:
        with self._lock:
            repo = self.repo(full_name)
            repo.labels[name.lower()] = Label(name=name, color=color, description=description)

    def add_comment(self, full_name: str, number: int, body: str, *, author: str = "alice") -> int:
        with self._lock:
            repo = self.repo(full_name)
            comment = Comment(issue_number=number, body=body, user=self.add_user(author))
            repo.comments[comment.id] = comment
            return comment.id

    def add_collaborator(self, full_name: str, login: str, role: str | Role) -> None:
        with self._lock:
            self.add_user(login)
            self.repo(full_name).collaborators[login] = Role(role)

    def add_app(self, app_id: int, slug: str, public_key_pem: str, *, owner: str = "acme") -> App:
        with self._lock:
            bot = self.add_user(f"{slug}[bot]", type="Bot")
            app = App(
                id=app_id, slug=slug, name=slug, public_key_pem=public_key_pem, owner=self.add_user(owner), bot=bot
            )
            self._apps[app_id] = app
            return app

    def install_app(self, app_id: int, installation_id: int, repos: list[str]) -> Installation:
        with self._lock:
            app = self._apps[app_id]
            account = self.repo(repos[0]).owner if repos else app.owner
            installation = Installation(id=installation_id, app=app, account=account, repos=[r.lower() for r in repos])
            self._installations[installation_id] = installation
            for name in repos:
                self.repo(name).installation_id = installation_id
            return installation

    def expire_token(self, value: str) -> None:
        with self._lock:
            self._tokens[value].expires_at = now() - timedelta(seconds=1)

    def push_commit(self, full_name: str, branch: str, files: dict[str, str], message: str = "Human change") -> str:
        """Commit `files` on top of `branch` straight into the bare repo, as someone else's push would."""
        with self._lock:
            repo = self.repo(full_name)
            base = gitx.branch_sha(repo.bare, branch)
            work = Path(tempfile.mkdtemp(prefix="fake-github-push-"))
            try:
                gitx.git(
                    "worktree", "add", "--detach", "--quiet", str(work), base or repo.default_branch, cwd=repo.bare
                )
                for path, content in files.items():
                    (work / path).parent.mkdir(parents=True, exist_ok=True)
                    (work / path).write_text(content)
                gitx.git("add", "-A", cwd=work)
                gitx.git("commit", "--quiet", "-m", message, cwd=work)
                sha = gitx.git("rev-parse", "HEAD", cwd=work)
                gitx.git("update-ref", f"refs/heads/{branch}", sha, cwd=repo.bare)
                return sha
            finally:
                gitx.git("worktree", "remove", "--force", str(work), cwd=repo.bare)

    # --- failure injection --------------------------------------------------------------------------

    def fail(
        self,
        method: str,
        path_regex: str,
        status: int,
        *,
        times: int = 1,
        message: str | None = None,
        headers: dict[str, str] | None = None,
        after: bool = False,
    ) -> None:
        """Answer the next `times` requests matching (method, regex on the path after `/api/v3`) with `status`;
        with `after`, each is carried out first (a PR opened, a merge made) and only its answer is lost."""
        default = {500: "Server Error", 502: "Server Error", 503: "Service Unavailable", 404: "Not Found"}
        body = Shapes.error(message or default.get(status, "Injected failure"), status)
        with self._lock:
            self._faults.append(Fault(method.upper(), re.compile(path_regex), status, body, headers or {}, times,
                                      after))

    def rate_limit(
        self,
        method: str,
        path_regex: str,
        *,
        status: int = 429,
        retry_after: int | None = 30,
        reset_in: int | None = None,
        times: int = 1,
    ) -> None:
        """A secondary rate limit (`Retry-After`) or, with `reset_in`, a primary one (`X-RateLimit-*`)."""
        headers = {"X-RateLimit-Limit": "5000", "X-RateLimit-Resource": "core"}
        if retry_after is not None:
            headers["Retry-After"] = str(retry_after)
            message = "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."
        if reset_in is not None:
            reset = int(now().timestamp()) + reset_in
            headers.update({"X-RateLimit-Remaining": "0", "X-RateLimit-Used": "5000", "X-RateLimit-Reset": str(reset)})
            message = "API rate limit exceeded for installation ID 1."
        self.fail(method, path_regex, status, times=times, message=message, headers=headers)

    def set_mergeable(self, full_name: str, number: int, mergeable: bool) -> None:
        with self._lock:
            pull = self._pull(self.repo(full_name), number)
            pull.mergeable = mergeable

    # --- reading the world -------------------------------------------------------------------------

    def repo(self, full_name: str) -> Repo:
        repo = self._repos.get(full_name.lower())
        if repo is None:
            raise KeyError(f"no repository {full_name} in the fake")
        return repo

    def issue(self, full_name: str, number: int) -> Issue:
        with self._lock:
            return self.repo(full_name).issues[number]

    def pulls(self, full_name: str) -> list[Issue]:
        with self._lock:
            return [issue for issue in self.repo(full_name).issues.values() if issue.pull is not None]

    def comments(self, full_name: str, number: int) -> list[Comment]:
        with self._lock:
            repo = self.repo(full_name)
            return sorted((c for c in repo.comments.values() if c.issue_number == number), key=lambda c: c.id)

    def labels(self, full_name: str, number: int) -> list[str]:
        with self._lock:
            return list(self.repo(full_name).issues[number].labels)

    def statuses(self, full_name: str, sha: str) -> list[Status]:
        with self._lock:
            return [status for status in self.repo(full_name).statuses if status.sha == sha]

    def branch_sha(self, full_name: str, branch: str) -> str | None:
        return gitx.branch_sha(self.repo(full_name).bare, branch)

    def file_at(self, full_name: str, ref: str, path: str) -> bytes | None:
        repo = self.repo(full_name)
        found = gitx.object_at(repo.bare, ref, path)
        return gitx.read_blob(repo.bare, found[1]) if found and found[0] == "blob" else None

    def head_sha(self, full_name: str, number: int) -> str:
        with self._lock:
            repo = self.repo(full_name)
            return self._head_sha(repo, self._pull(repo, number))

    def calls(self, method: str, path_regex: str) -> list[RecordedRequest]:
        """The recorded requests matching a method and a regex on the path after `/api/v3`."""
        pattern = re.compile(path_regex)
        return [r for r in self.requests if r.method == method.upper() and pattern.search(r.api_path or r.path)]

    # --- internals: state helpers --------------------------------------------------------------

    def _pull(self, repo: Repo, number: int) -> Pull:
        issue = repo.issues.get(number)
        if issue is None or issue.pull is None:
            raise not_found()
        return issue.pull

    def _head_sha(self, repo: Repo, pull: Pull) -> str:
        if pull.frozen_head_sha is not None:
            return pull.frozen_head_sha
        return gitx.branch_sha(repo.bare, pull.head_ref) or pull.base_sha

    def _base_sha(self, repo: Repo, pull: Pull) -> str:
        return gitx.branch_sha(repo.bare, pull.base_ref) or pull.base_sha

    def _ensure_label(self, repo: Repo, name: str) -> Label:
        label = repo.labels.get(name.lower())
        if label is None:
            label = Label(name=name)
            repo.labels[name.lower()] = label
        return label

    def _close_linked_issues(self, repo: Repo, body: str) -> None:
        """GitHub closes the issues a merged PR names with a closing keyword (`Closes #N`), when it
        merges into the default branch."""
        for match in _CLOSING.finditer(body):
            linked = repo.issues.get(int(match["number"]))
            if linked is not None and linked.pull is None and linked.state == "open":
                linked.state, linked.closed_at = "closed", now()
                linked.touch()

    def _pull_json(self, repo: Repo, issue: Issue, *, full: bool) -> Json:
        assert issue.pull is not None
        head = self._head_sha(repo, issue.pull)
        base = self._base_sha(repo, issue.pull)
        stats = None
        if full:
            try:
                stats = gitx.stats(repo.bare, base, head)
            except gitx.GitFailed:
                stats = (0, 0, 0, 0)
        return self.shapes.pull_request(repo, issue, head_sha=head, base_sha=base, stats=stats)

    # --- internals: authentication ---------------------------------------------------------------

    def _token(self, request: Request) -> Token:
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() not in {"token", "bearer"} or not value:
            raise Reply(401, Shapes.error("Requires authentication", 401))
        token = self._tokens.get(value.strip())
        if token is None or (token.expires_at is not None and token.expires_at <= now()):
            raise Reply(401, Shapes.error("Bad credentials", 401))
        return token

    def _app_from_jwt(self, request: Request) -> App:
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or value.count(".") != 2:
            raise Reply(401, Shapes.error("A JSON web token could not be decoded", 401))
        try:
            claims = jwt.decode(value, options={"verify_signature": False})
            app = self._apps.get(int(claims.get("iss", 0)))
            if app is None:
                raise Reply(401, Shapes.error("'Issuer' claim ('iss') must be an Integer", 401))
            verified = jwt.decode(
                value, app.public_key_pem, algorithms=["RS256"], options={"require": ["iat", "exp", "iss"]}, leeway=60
            )
        except jwt.PyJWTError as exc:
            raise Reply(401, Shapes.error(f"A JSON web token could not be decoded ({exc})", 401)) from None
        if int(verified["exp"]) - int(verified["iat"]) > 660:
            raise Reply(401, Shapes.error("Expiration time' claim ('exp') is too far in the future", 401))
        return app

    def _repo_for(self, request: Request, owner: str, name: str) -> tuple[Repo, User]:
        """The repository and the acting user, if this token may see it (404 otherwise, as GitHub hides)."""
        token = self._token(request)
        repo = self._repos.get(f"{owner}/{name}".lower())
        if repo is None:
            raise not_found()
        if token.installation is not None:
            if repo.full_name.lower() not in token.installation.repos:
                raise not_found()
        elif repo.role_of(token.user.login) is None:
            raise not_found()
        return repo, token.user

    # --- the HTTP app ----------------------------------------------------------------------------

    def _build_app(self) -> Any:
        app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

        @app.exception_handler(Reply)
        async def reply(_request: Request, exc: Reply) -> Response:
            return JSONResponse(exc.body, status_code=exc.status, headers=exc.headers)

        self._routes_identity(app)
        self._routes_repos(app)
        self._routes_issues(app)
        self._routes_pulls(app)
        self._routes_git(app)

        @app.api_route(API_PREFIX + "/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
        def unknown(rest: str) -> Response:
            raise not_found()

        return _Recorder(app, self)

    def _routes_identity(self, app: FastAPI) -> None:
        @app.get(API_PREFIX + "/user")
        def get_user(request: Request) -> Json:
            token = self._token(request)
            if token.installation is not None:
                raise Reply(403, Shapes.error("Resource not accessible by integration", 403))
            return self.shapes.private_user(token.user)

        @app.get(API_PREFIX + "/app")
        def get_app(request: Request) -> Json:
            return self.shapes.integration(self._app_from_jwt(request))

        @app.post(API_PREFIX + "/app/installations/{installation_id}/access_tokens", status_code=201)
        def create_installation_token(request: Request, installation_id: int) -> Json:
            app_ = self._app_from_jwt(request)
            with self._lock:
                installation = self._installations.get(installation_id)
                if installation is None or installation.app.id != app_.id:
                    raise not_found()
                value = f"ghs_{secrets.token_hex(18)}"
                expires = now() + INSTALLATION_TOKEN_TTL
                self._tokens[value] = Token(value, app_.bot, expires_at=expires, installation=installation)
            return self.shapes.installation_token(value, expires)

        @app.get(API_PREFIX + "/repos/{owner}/{name}/installation")
        def get_repo_installation(request: Request, owner: str, name: str) -> Json:
            app_ = self._app_from_jwt(request)
            with self._lock:
                for installation in self._installations.values():
                    if installation.app.id == app_.id and f"{owner}/{name}".lower() in installation.repos:
                        return self.shapes.installation(installation)
            raise not_found()

    def _routes_repos(self, app: FastAPI) -> None:
        @app.get(API_PREFIX + "/repos/{owner}/{name}")
        def get_repo(request: Request, owner: str, name: str) -> Json:
            repo, _user = self._repo_for(request, owner, name)
            with self._lock:
                return self.shapes.repository(repo, full=True)

        @app.get(API_PREFIX + "/repos/{owner}/{name}/contents/{path:path}")
        def get_contents(request: Request, owner: str, name: str, path: str, ref: str | None = None) -> Any:
            repo, _user = self._repo_for(request, owner, name)
            ref = ref or repo.default_branch
            path = path.strip("/")
            found = gitx.object_at(repo.bare, ref, path)
            if found is None:
                raise not_found()
            kind, sha = found
            if kind == "tree":
                return self.shapes.content_directory(repo, path, ref, gitx.list_tree(repo.bare, sha))
            return self.shapes.content_file(repo, path, ref, sha, gitx.read_blob(repo.bare, sha))

        @app.get(API_PREFIX + "/repos/{owner}/{name}/collaborators/{login}/permission")
        def get_permission(request: Request, owner: str, name: str, login: str) -> Json:
            repo, _user = self._repo_for(request, owner, name)
            with self._lock:
                user = self._users.get(login.lower())
                if user is None:
                    raise not_found()
                return self.shapes.permission(user, repo.role_of(login))

        @app.post(API_PREFIX + "/repos/{owner}/{name}/statuses/{sha}", status_code=201)
        async def create_status(request: Request, owner: str, name: str, sha: str) -> Json:
            data = await _json_body(request)
            repo, user = self._repo_for(request, owner, name)
            state = data.get("state")
            if state not in _STATUS_STATES:
                raise Reply(422, Shapes.validation_error("Status", "invalid", field="state"))
            if gitx.rev_parse(repo.bare, sha) is None:
                raise Reply(422, Shapes.validation_error("Status", "custom", message=f"No commit found for SHA: {sha}"))
            with self._lock:
                status = Status(
                    sha=sha,
                    state=state,
                    description=data.get("description"),
                    target_url=data.get("target_url"),
                    context=data.get("context") or "default",
                    creator=user,
                )
                repo.statuses.append(status)
                return self.shapes.status(repo, status)

        @app.get(API_PREFIX + "/repos/{owner}/{name}/commits/{ref}/statuses")
        def list_statuses(request: Request, owner: str, name: str, ref: str) -> Response:
            repo, _user = self._repo_for(request, owner, name)
            sha = gitx.rev_parse(repo.bare, ref) or ref
            with self._lock:
                found = [self.shapes.status(repo, s) for s in reversed(repo.statuses) if s.sha == sha]
            return _page(request, found)

        @app.get(API_PREFIX + "/repos/{owner}/{name}/git/ref/{ref:path}")
        def get_ref(request: Request, owner: str, name: str, ref: str) -> Json:
            repo, _user = self._repo_for(request, owner, name)
            sha = gitx.rev_parse(repo.bare, f"refs/{ref}") if ref.startswith(("heads/", "tags/")) else None
            if sha is None:
                raise not_found()
            return self.shapes.git_ref(repo, ref, sha)

        @app.delete(API_PREFIX + "/repos/{owner}/{name}/git/refs/{ref:path}", status_code=204)
        def delete_ref(request: Request, owner: str, name: str, ref: str) -> Response:
            repo, _user = self._repo_for(request, owner, name)
            if not ref.startswith("heads/"):
                raise Reply(422, Shapes.error("Reference does not exist", 422))
            branch = ref[len("heads/") :]
            if branch == repo.default_branch:
                raise Reply(422, Shapes.error("Cannot delete the default branch", 422))
            with self._lock:
                if not gitx.delete_branch(repo.bare, branch):
                    raise Reply(422, Shapes.error("Reference does not exist", 422))
            return Response(status_code=204)

    def _routes_issues(self, app: FastAPI) -> None:
        def issue_of(repo: Repo, number: int) -> Issue:
            issue = repo.issues.get(number)
            if issue is None:
                raise not_found()
            return issue

        @app.get(API_PREFIX + "/repos/{owner}/{name}/issues")
        def list_issues(
            request: Request,
            owner: str,
            name: str,
            state: str = "open",
            labels: str | None = None,
            sort: str = "created",
            direction: str = "desc",
            since: str | None = None,
            creator: str | None = None,
        ) -> Response:
            """Issues AND pull requests, as GitHub lists them; filters GitHub documents but the fake does
            not implement are refused (422) rather than ignored, so no test passes by accident."""
            repo, _user = self._repo_for(request, owner, name)
            query = dict(parse_qsl(request.url.query))
            for unsupported in ("milestone", "assignee", "mentioned", "type", "issue_field_values"):
                if unsupported in query:
                    message = f"the fake GitHub does not filter issues by {unsupported}"
                    raise Reply(422, Shapes.validation_error("Issue", "invalid", field=unsupported, message=message))
            for field_name, value, allowed in (
                ("state", state, {"open", "closed", "all"}),
                ("sort", sort, set(_ISSUE_SORTS)),
                ("direction", direction, {"asc", "desc"}),
            ):
                if value not in allowed:
                    raise Reply(422, Shapes.validation_error("Issue", "invalid", field=field_name))
            after = None
            if since is not None:
                try:
                    after = datetime.fromisoformat(since)
                except ValueError:
                    raise Reply(422, Shapes.validation_error("Issue", "invalid", field="since")) from None
                if after.tzinfo is None:
                    after = after.replace(tzinfo=UTC)
            wanted = {label.strip().lower() for label in (labels or "").split(",") if label.strip()}
            with self._lock:
                found = [
                    issue
                    for issue in repo.issues.values()
                    if (state == "all" or issue.state == state)
                    and wanted <= {label.lower() for label in issue.labels}
                    and (after is None or issue.updated_at >= after)
                    and (creator is None or issue.user.login.lower() == creator.lower())
                ]
                comments = Counter(comment.issue_number for comment in repo.comments.values())
                found.sort(key=lambda issue: (_ISSUE_SORTS[sort](issue, comments), issue.number),
                           reverse=direction == "desc")
                listed = [self.shapes.issue(repo, issue) for issue in found]
            return _page(request, listed)

        @app.get(API_PREFIX + "/repos/{owner}/{name}/issues/{number}")
        def get_issue(request: Request, owner: str, name: str, number: int) -> Json:
            repo, _user = self._repo_for(request, owner, name)
            with self._lock:
                return self.shapes.issue(repo, issue_of(repo, number))

        @app.get(API_PREFIX + "/repos/{owner}/{name}/issues/{number}/comments")
        def list_comments(request: Request, owner: str, name: str, number: int) -> Response:
            repo, _user = self._repo_for(request, owner, name)
            with self._lock:
                issue_of(repo, number)
                found = [self.shapes.comment(repo, c) for c in self.comments(repo.full_name, number)]
            return _page(request, found)

        @app.post(API_PREFIX + "/repos/{owner}/{name}/issues/{number}/comments", status_code=201)
        async def create_comment(request: Request, owner: str, name: str, number: int) -> Json:
            data = await _json_body(request)
            repo, user = self._repo_for(request, owner, name)
            body = data.get("body")
            if not isinstance(body, str) or not body:
                raise Reply(422, Shapes.validation_error("IssueComment", "missing_field", field="body"))
            if len(body) > 65536:
                raise Reply(
                    422,
                    Shapes.validation_error(
                        "IssueComment", "custom", field="body", message="body is too long (maximum is 65536 characters)"
                    ),
                )
            with self._lock:
                issue_of(repo, number).touch()
                comment = Comment(issue_number=number, body=body, user=user)
                repo.comments[comment.id] = comment
                return self.shapes.comment(repo, comment)

        @app.patch(API_PREFIX + "/repos/{owner}/{name}/issues/comments/{comment_id}")
        async def update_comment(request: Request, owner: str, name: str, comment_id: int) -> Json:
            data = await _json_body(request)
            repo, _user = self._repo_for(request, owner, name)
            body = data.get("body")
            if not isinstance(body, str) or not body:
                raise Reply(422, Shapes.validation_error("IssueComment", "missing_field", field="body"))
            with self._lock:
                comment = repo.comments.get(comment_id)
                if comment is None:
                    raise not_found()
                comment.body = body
                comment.updated_at = now()
                return self.shapes.comment(repo, comment)

        @app.get(API_PREFIX + "/repos/{owner}/{name}/issues/{number}/labels")
        def list_issue_labels(request: Request, owner: str, name: str, number: int) -> Response:
            repo, _user = self._repo_for(request, owner, name)
            with self._lock:
                found = self.shapes.labels_of(repo, issue_of(repo, number))
            return _page(request, found)

        @app.post(API_PREFIX + "/repos/{owner}/{name}/issues/{number}/labels")
        async def add_issue_labels(request: Request, owner: str, name: str, number: int) -> list[Json]:
            data = await _json_body(request)
            repo, _user = self._repo_for(request, owner, name)
            names = data.get("labels") if isinstance(data, dict) else data
            if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
                raise Reply(422, Shapes.validation_error("Label", "invalid", field="labels"))
            with self._lock:
                issue = issue_of(repo, number)
                present = {label.lower() for label in issue.labels}
                for label_name in names:
                    label = self._ensure_label(repo, label_name)
                    if label.name.lower() not in present:
                        issue.labels.append(label.name)
                        present.add(label.name.lower())
                issue.touch()
                return self.shapes.labels_of(repo, issue)

        @app.delete(API_PREFIX + "/repos/{owner}/{name}/issues/{number}/labels/{label_name}")
        def remove_issue_label(request: Request, owner: str, name: str, number: int, label_name: str) -> list[Json]:
            repo, _user = self._repo_for(request, owner, name)
            with self._lock:
                issue = issue_of(repo, number)
                kept = [label for label in issue.labels if label.lower() != label_name.lower()]
                if len(kept) == len(issue.labels):
                    raise Reply(404, Shapes.error("Label does not exist", 404))
                issue.labels = kept
                issue.touch()
                return self.shapes.labels_of(repo, issue)

        @app.get(API_PREFIX + "/repos/{owner}/{name}/labels/{label_name}")
        def get_label(request: Request, owner: str, name: str, label_name: str) -> Json:
            repo, _user = self._repo_for(request, owner, name)
            with self._lock:
                label = repo.labels.get(label_name.lower())
                if label is None:
                    raise not_found()
                return self.shapes.label(repo, label)

        @app.post(API_PREFIX + "/repos/{owner}/{name}/labels", status_code=201)
        async def create_label(request: Request, owner: str, name: str) -> Json:
            data = await _json_body(request)
            repo, _user = self._repo_for(request, owner, name)
            label_name, color = data.get("name"), str(data.get("color") or "ededed").lstrip("#")
            if not isinstance(label_name, str) or not label_name:
                raise Reply(422, Shapes.validation_error("Label", "missing_field", field="name"))
            if not re.fullmatch(r"[0-9a-fA-F]{6}", color):
                raise Reply(422, Shapes.validation_error("Label", "invalid", field="color"))
            with self._lock:
                if label_name.lower() in repo.labels:
                    raise Reply(422, Shapes.validation_error("Label", "already_exists", field="name"))
                label = Label(name=label_name, color=color.lower(), description=data.get("description"))
                repo.labels[label_name.lower()] = label
                return self.shapes.label(repo, label)

    def _routes_pulls(self, app: FastAPI) -> None:
        @app.get(API_PREFIX + "/repos/{owner}/{name}/pulls")
        def list_pulls(
            request: Request,
            owner: str,
            name: str,
            state: str = "open",
            head: str | None = None,
            base: str | None = None,
        ) -> Response:
            repo, _user = self._repo_for(request, owner, name)
            if state not in {"open", "closed", "all"}:
                raise Reply(422, Shapes.validation_error("PullRequest", "invalid", field="state"))
            head_owner, head_ref = head.split(":", 1) if head and ":" in head else (None, head)
            with self._lock:
                found = []
                for issue in sorted(repo.issues.values(), key=lambda i: -i.number):
                    pull = issue.pull
                    if pull is None or (state != "all" and issue.state != state):
                        continue
                    if head_ref is not None and pull.head_ref != head_ref:
                        continue
                    if head_owner is not None and head_owner.lower() != repo.owner.login.lower():
                        continue
                    if base is not None and pull.base_ref != base:
                        continue
                    found.append(self._pull_json(repo, issue, full=False))
            return _page(request, found)

        @app.post(API_PREFIX + "/repos/{owner}/{name}/pulls", status_code=201)
        async def create_pull(request: Request, owner: str, name: str) -> Json:
            data = await _json_body(request)
            repo, user = self._repo_for(request, owner, name)
            title, head, base = data.get("title"), data.get("head"), data.get("base")
            for field_name, value in (("title", title), ("head", head), ("base", base)):
                if not isinstance(value, str) or not value:
                    raise Reply(422, Shapes.validation_error("PullRequest", "missing_field", field=field_name))
            assert isinstance(head, str) and isinstance(base, str) and isinstance(title, str)
            head_ref = head.split(":", 1)[1] if ":" in head else head
            with self._lock:
                head_sha = gitx.branch_sha(repo.bare, head_ref)
                base_sha = gitx.branch_sha(repo.bare, base)
                if head_sha is None:
                    raise Reply(422, Shapes.validation_error("PullRequest", "invalid", field="head"))
                if base_sha is None:
                    raise Reply(422, Shapes.validation_error("PullRequest", "invalid", field="base"))
                for issue in repo.issues.values():
                    if (
                        issue.pull
                        and issue.state == "open"
                        and issue.pull.head_ref == head_ref
                        and issue.pull.base_ref == base
                    ):
                        message = f"A pull request already exists for {repo.owner.login}:{head_ref}."
                        raise Reply(422, Shapes.validation_error("PullRequest", "custom", message=message))
                if not gitx.has_commits_between(repo.bare, base_sha, head_sha):
                    message = f"No commits between {base} and {head_ref}"
                    raise Reply(422, Shapes.validation_error("PullRequest", "custom", message=message))
                issue = Issue(
                    number=repo.next_number(),
                    title=title,
                    body=data.get("body"),
                    user=user,
                    pull=Pull(head_ref=head_ref, base_ref=base, base_sha=base_sha),
                )
                repo.issues[issue.number] = issue
                return self._pull_json(repo, issue, full=True)

        @app.get(API_PREFIX + "/repos/{owner}/{name}/pulls/{number}")
        def get_pull(request: Request, owner: str, name: str, number: int) -> Json:
            repo, _user = self._repo_for(request, owner, name)
            with self._lock:
                self._pull(repo, number)
                return self._pull_json(repo, repo.issues[number], full=True)

        @app.patch(API_PREFIX + "/repos/{owner}/{name}/pulls/{number}")
        async def update_pull(request: Request, owner: str, name: str, number: int) -> Json:
            data = await _json_body(request)
            repo, _user = self._repo_for(request, owner, name)
            with self._lock:
                pull = self._pull(repo, number)
                issue = repo.issues[number]
                if data.get("state") not in (None, "open", "closed"):
                    raise Reply(422, Shapes.validation_error("PullRequest", "invalid", field="state"))
                if data.get("state") == "closed" and issue.state == "open":
                    pull.frozen_head_sha = self._head_sha(repo, pull)
                    issue.state, issue.closed_at = "closed", now()
                elif data.get("state") == "open" and issue.state == "closed" and not pull.merged:
                    pull.frozen_head_sha, issue.state, issue.closed_at = None, "open", None
                for key in ("title", "body"):
                    if isinstance(data.get(key), str):
                        setattr(issue, key, data[key])
                issue.touch()
                return self._pull_json(repo, issue, full=True)

        @app.put(API_PREFIX + "/repos/{owner}/{name}/pulls/{number}/merge")
        async def merge_pull(request: Request, owner: str, name: str, number: int) -> Json:
            data = await _json_body(request)
            repo, user = self._repo_for(request, owner, name)
            method = data.get("merge_method") or "merge"
            if method not in _MERGE_METHODS:
                raise Reply(422, Shapes.validation_error("PullRequest", "invalid", field="merge_method"))
            with self._lock:
                pull = self._pull(repo, number)
                issue = repo.issues[number]
                if issue.state != "open" or not pull.mergeable:
                    raise Reply(405, Shapes.error("Pull Request is not mergeable", 405))
                head = self._head_sha(repo, pull)
                if data.get("sha") and data["sha"] != head:
                    raise Reply(409, Shapes.error("Head branch was modified. Review and try the merge again.", 409))
                title = data.get("commit_title") or (
                    f"Merge pull request #{number} from {repo.owner.login}/{pull.head_ref}"
                    if method == "merge"
                    else f"{issue.title} (#{number})"
                )
                merged = gitx.merge(repo.bare, pull.base_ref, head, method, title, data.get("commit_message") or "")
                if merged is None:
                    pull.mergeable = False
                    raise Reply(405, Shapes.error("Pull Request is not mergeable", 405))
                pull.merged, pull.merged_at, pull.merged_by, pull.merge_commit_sha = True, now(), user, merged
                pull.frozen_head_sha = head
                issue.state, issue.closed_at = "closed", pull.merged_at
                issue.touch()
                if pull.base_ref == repo.default_branch:
                    self._close_linked_issues(repo, issue.body or "")
                return Shapes.merge_result(merged)

    def _routes_git(self, app: FastAPI) -> None:
        @app.api_route("/{owner}/{name}.git/{rest:path}", methods=["GET", "POST"])
        async def smart_http(request: Request, owner: str, name: str, rest: str) -> Response:
            user = self._git_user(request, owner, name)
            if user is None:
                return Response(
                    "Authentication failed\n",
                    status_code=401,
                    headers={"WWW-Authenticate": 'Basic realm="GitHub"'},
                    media_type="text/plain",
                )
            repo = self.repo(f"{owner}/{name}")
            body = await request.body()
            answer = gitx.http_backend(
                self.root,
                f"/{repo.owner.login}/{repo.name}.git/{rest}",
                method=request.method,
                query=request.url.query,
                content_type=request.headers.get("content-type"),
                content_encoding=request.headers.get("content-encoding"),
                git_protocol=request.headers.get("git-protocol"),
                body=body,
                remote_user=user.login,
            )
            headers = {key: value for key, value in answer.headers if key.lower() != "content-length"}
            return Response(answer.body, status_code=answer.status, headers=headers)

    def _git_user(self, request: Request, owner: str, name: str) -> User | None:
        """Git authenticates with Basic `<anything>:<token>`, as GitHub accepts for tokens over HTTPS."""
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            _login, _, value = base64.b64decode(encoded).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        with self._lock:
            token = self._tokens.get(value)
            repo = self._repos.get(f"{owner}/{name}".lower())
            if token is None or repo is None or (token.expires_at is not None and token.expires_at <= now()):
                return None
            if token.installation is not None:
                return token.user if repo.full_name.lower() in token.installation.repos else None
            return token.user if repo.role_of(token.user.login) is not None else None

    # --- internals: recording, faults, the contract --------------------------------------------------

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.matches(method, path):
                    fault.remaining -= 1
                    return fault
        return None

    def _record(self, recorded: RecordedRequest, content_type: str | None) -> None:
        with self._lock:
            self.requests.append(recorded)
        api_path = recorded.api_path
        if self.contract is None or api_path is None:
            return
        problems = self.contract.errors(
            recorded.method,
            api_path,
            recorded.query,
            recorded.status,
            content_type,
            recorded.response,
            recorded.body,
            undocumented_as="basic-error" if recorded.injected or recorded.status in API_WIDE_STATUSES else None,
        )
        with self._lock:
            self.contract_checked.append(recorded)
            self.contract_failures.extend(f"{recorded.method} {api_path} -> {recorded.status}: {p}" for p in problems)


class _Recorder:
    """ASGI wrapper: injects faults, then records every exchange and checks API answers against the contract."""

    def __init__(self, app: FastAPI, fake: FakeGitHub) -> None:
        self.app = app
        self.fake = fake

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        path = unquote(scope["path"])
        headers = {key.decode("latin-1").lower(): value.decode("latin-1") for key, value in scope["headers"]}
        recorded = RecordedRequest(
            method=scope["method"],
            path=path,
            query=scope.get("query_string", b"").decode("latin-1"),
            headers=headers,
            body=body if not path.endswith((".git/git-upload-pack", ".git/git-receive-pack")) else b"<pack>",
        )
        collected = _Collected()
        fault = self.fake._take_fault(scope["method"], recorded.api_path or path)
        if fault is None or fault.after:
            delivered = False

            async def replay() -> Message:
                nonlocal delivered
                if not delivered:
                    delivered = True
                    return {"type": "http.request", "body": body, "more_body": False}
                return await receive()

            async def capture(message: Message) -> None:
                if message["type"] == "http.response.start":
                    collected.status = message["status"]
                    collected.headers = list(message.get("headers", []))
                elif message["type"] == "http.response.body":
                    collected.body += message.get("body", b"")

            await self.app(scope, replay, capture)
        if fault is not None:
            recorded.injected = True
            collected.status, collected.body = fault.status, json.dumps(fault.body).encode()
            collected.headers = [
                (b"content-type", b"application/json; charset=utf-8"),
                *((k.lower().encode(), v.encode()) for k, v in fault.headers.items()),
            ]
        # Record (and check) before answering, so a test that reads `requests` after its call sees it.
        recorded.status = collected.status
        recorded.response = collected.body if recorded.api_path is not None else b""
        content_type = next((v.decode() for k, v in collected.headers if k.lower() == b"content-type"), None)
        self.fake._record(recorded, content_type)
        answer_headers = [(k, v) for k, v in collected.headers if k.lower() != b"content-length"]
        answer_headers.append((b"content-length", str(len(collected.body)).encode()))
        await send({"type": "http.response.start", "status": collected.status, "headers": answer_headers})
        await send({"type": "http.response.body", "body": collected.body})


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    if not raw:
        return {}
    try:
        return json.loads(raw)
    except ValueError:
        raise Reply(400, Shapes.error("Problems parsing JSON", 400)) from None


def _page(request: Request, items: list[Json]) -> Response:
    """GitHub's pagination: `per_page` (default 30, max 100), `page`, and a `Link` header."""
    query = dict(parse_qsl(request.url.query))
    per_page = max(1, min(100, int(query.get("per_page", "30") or 30)))
    page = max(1, int(query.get("page", "1") or 1))
    last = max(1, -(-len(items) // per_page))
    chunk = items[(page - 1) * per_page : page * per_page]
    links = []
    for rel, target in (("next", page + 1), ("last", last), ("first", 1), ("prev", page - 1)):
        if (rel in {"next", "last"} and page < last) or (rel in {"first", "prev"} and page > 1):
            url = request.url.include_query_params(page=target, per_page=per_page)
            links.append(f'<{url}>; rel="{rel}"')
    headers = {"Link": ", ".join(links)} if links else {}
    return JSONResponse(chunk, headers=headers)
