"""The GitHub forge: specs from issues and files, pull requests, evidence, statuses, labels and merges
on github.com or GitHub Enterprise Server, through PyGithub (REST) and real git (commits).

Commits reach GitHub by `git push` over HTTPS, not through the Git Data API (blobs, trees, commits,
refs by REST). Why: the workspace is a real git working copy anyway, so the agent's commit is pushed
as is: any size, binary files, renames, history, one request per push instead of one per file; it
works the same against GitHub Enterprise Server; and it is one code path with the local forge,
which also clones and pushes. The token travels only in an `http.<origin>.extraHeader` (HTTP Basic,
`x-access-token:<token>`), set through git's `GIT_CONFIG_COUNT` environment (the same setting
`git -c` writes, but out of the process list); it is never in a URL, in `.git/config`, or in a log.

Every method is idempotent (activities retry them): a pull request is found before it is created,
the evidence comment is found by a hidden marker and edited in place, labels and statuses are set to
a state rather than toggled, merging checks the pull request's state first, and deleting a branch
that is gone is success. Failures become `ForgeError` (see `github_auth.forge_error`): 5xx and rate
limits retryable with the wait GitHub asked for, everything else not.
"""

from __future__ import annotations

import base64
import logging
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal
from urllib.parse import quote, urlsplit

import requests
from github import GithubException
from github.PullRequest import PullRequest as GhPullRequest
from github.Repository import Repository
from pydantic import BaseModel

from activities.forge.base import BranchKept, ForgeError, read_spec_from_repository
from activities.forge.gitcli import Git, GitResult
from activities.forge.github_auth import GitHubAuth, GitHubAuthError, forge_error, github_message
from contracts.forge import (
    STATUS_LABELS,
    CommitStatus,
    ForgeKind,
    MergeOutcome,
    MergeResult,
    PullRequest,
    PullRequestState,
    RepoRef,
    SpecSource,
)

log = logging.getLogger(__name__)

EVIDENCE_MARKER = "<!-- spec2ship:evidence -->"
STATUS_CONTEXT = "spec2ship/gate"
BOT_BRANCH_PREFIX = "spec2ship/"
MAX_COMMENT_CHARS = 65_536  # GitHub refuses longer comment bodies (422)
MAX_STATUS_DESCRIPTION = 140  # GitHub truncates nothing: it refuses longer descriptions
LABEL_STYLE = {
    STATUS_LABELS["running"]: ("1d76db", "spec2ship is working on this"),
    STATUS_LABELS["awaiting_human"]: ("fbca04", "spec2ship waits for a human decision"),
    STATUS_LABELS["merged"]: ("0e8a16", "spec2ship merged this change"),
    STATUS_LABELS["rejected"]: ("b60205", "spec2ship's change was rejected"),
    STATUS_LABELS["failed"]: ("d93f0b", "spec2ship could not finish this change"),
    STATUS_LABELS["cancelled"]: ("cfd3d7", "spec2ship's run was cancelled"),
    STATUS_LABELS["commented"]: ("c5def5", "spec2ship commented and will not merge (autonomy L1)"),
}
_PERMISSIONS = {"admin": "admin", "maintain": "write", "write": "write", "triage": "read", "read": "read"}


class GitIdentity(BaseModel):
    name: str = "spec2ship"
    email: str = "spec2ship@users.noreply.github.com"


class IssueText(BaseModel):
    """An issue as the spec loader needs it: `read_spec` returns the body, this adds the title."""

    number: int
    title: str
    body: str
    url: str
    author: str
    labels: list[str]
    is_open: bool


class GitError(ForgeError):
    """A git command against the forge failed; the message carries git's own (token-free) words."""


class GitHubForge:
    """One GitHub repository (`RepoRef.location` = `owner/name`); working copies live under `workdir_base`."""

    def __init__(
        self,
        repo: RepoRef,
        auth: GitHubAuth,
        workdir_base: Path,
        *,
        throttle: bool = True,
        committer: GitIdentity | None = None,
        bot_branch_prefix: str = BOT_BRANCH_PREFIX,
        git_timeout_s: float = 900,
    ) -> None:
        owner, _, name = repo.location.partition("/")
        if repo.kind is not ForgeKind.github or not owner or not name or "/" in name:
            raise ForgeError(f"GitHubForge needs a github RepoRef with location 'owner/name', got {repo.location!r}")
        self.ref = repo
        self.owner, self.name = owner, name
        self.full_name = f"{owner}/{name}"
        self.workdir_base = Path(workdir_base).resolve()
        self._auth = auth
        self._committer = committer or GitIdentity()
        self._bot_prefix = bot_branch_prefix
        self._git_timeout_s = git_timeout_s
        self._installation_id = repo.installation_id
        self._gh = auth.client(self._installation(), throttle=throttle)
        self._repo: Repository = self._gh.get_repo(self.full_name)
        self._default_branch = repo.default_branch
        self._clone_url: str | None = None
        self._ensured_labels: set[str] = set()

    def __repr__(self) -> str:
        return f"GitHubForge({self.full_name} on {self._auth.api_url})"

    def close(self) -> None:
        self._gh.close()

    def __enter__(self) -> GitHubForge:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # --- reading -----------------------------------------------------------------------------------

    def read_spec(self, source: SpecSource) -> tuple[str, str]:
        found = read_spec_from_repository(self, source, self.full_name)
        if found is not None:
            return found
        if source.issue_number is None:
            raise ForgeError("an issue spec source needs an issue_number")
        issue = self.read_issue(source.issue_number)
        return issue.body, f"{self.full_name}#{issue.number}"

    def read_issue(self, number: int) -> IssueText:
        """Title and body of an issue (the title is the spec's default title)."""
        with self._api(f"reading issue #{number}"):
            issue = self._repo.get_issue(number)
            if issue.pull_request is not None:
                raise ForgeError(f"#{number} on {self.full_name} is a pull request, not an issue: point at the issue")
            return IssueText(
                number=issue.number,
                title=issue.title,
                body=issue.body or "",
                url=issue.html_url,
                author=issue.user.login if issue.user else "",
                labels=[label.name for label in issue.labels],
                is_open=issue.state == "open",
            )

    def read_file(self, path: str, ref: str | None = None) -> str | None:
        where = f"{path}@{ref or 'default branch'}"
        with self._api(f"reading {where}"):
            try:
                content = self._repo.get_contents(path, ref=ref) if ref else self._repo.get_contents(path)
            except GithubException as exc:
                if exc.status == 404:
                    return None
                raise
            if isinstance(content, list):
                raise ForgeError(f"{path} on {self.full_name} is a directory, not a file")
            if content.encoding != "base64" or (content.size and not content.content):
                # GitHub leaves `content` empty above 1 MB; such files are not specs or policies
                raise ForgeError(f"{path} on {self.full_name} is too large to read through the API ({content.size} B)")
            try:
                return content.decoded_content.decode("utf-8")
            except UnicodeDecodeError:
                raise ForgeError(f"{path} on {self.full_name} is not UTF-8 text") from None

    def default_branch(self) -> str:
        if self._default_branch is None:
            with self._api("reading the repository"):
                self._default_branch = self._repo.default_branch
                self._clone_url = self._repo.clone_url
        return self._default_branch

    def branch_head(self, branch: str) -> str:
        with self._api(f"reading branch {branch}"):
            return str(self._repo.get_git_ref(f"heads/{branch}").object.sha)

    # --- git: workspace and publishing ------------------------------------------------------------

    def prepare_workspace(self, branch: str, dest: Path) -> str:
        dest = self._inside_base(dest)
        default = self.default_branch()
        if branch == default:
            raise ForgeError(f"refusing to work on {default}, the default branch of {self.full_name}: use a new branch")
        if (dest / ".git").is_dir():
            self._git(["fetch", "--prune", "--quiet", "origin"], cwd=dest, remote=True)
        else:
            if dest.exists() and any(dest.iterdir()):
                raise ForgeError(f"{dest} exists and is not a git working copy: remove it (remove_workspace) first")
            dest.parent.mkdir(parents=True, exist_ok=True)
            self._git(
                ["clone", "--quiet", "--branch", default, self._remote_url(), str(dest)], cwd=dest.parent, remote=True
            )
        remote_branch = f"refs/remotes/origin/{branch}"
        on_forge = self._git_ok(["rev-parse", "--verify", "--quiet", remote_branch], cwd=dest)
        if self._git_ok(["rev-parse", "--verify", "--quiet", f"refs/heads/{branch}"], cwd=dest):
            self._git(["checkout", "--quiet", branch], cwd=dest)  # resume local work, pushed or not
            if on_forge:
                self._catch_up(dest, branch, remote_branch)
        elif on_forge:
            self._git(["checkout", "--quiet", "-b", branch, "--track", remote_branch], cwd=dest)
        else:
            self._git(["checkout", "--quiet", "--no-track", "-b", branch, f"refs/remotes/origin/{default}"], cwd=dest)
        return self._git(["merge-base", "HEAD", f"refs/remotes/origin/{default}"], cwd=dest)

    def _catch_up(self, dest: Path, branch: str, remote_branch: str) -> None:
        """Local work resumed: take the forge's newer commits, refuse to hide a divergence under a force push."""
        if self._git_ok(["merge-base", "--is-ancestor", remote_branch, "HEAD"], cwd=dest):
            return  # local is the same or ahead
        if self._git_ok(["merge-base", "--is-ancestor", "HEAD", remote_branch], cwd=dest):
            self._git(["merge", "--quiet", "--ff-only", remote_branch], cwd=dest)
            return
        raise ForgeError(
            f"branch {branch} on {self.full_name} and the working copy in {dest} have diverged (someone else "
            "pushed while this run had unpushed work): reconcile by hand, or remove the workspace to start over"
        )

    def publish_branch(self, workspace: Path, branch: str, message: str) -> str:
        workspace = self._inside_base(workspace)
        if branch == self.default_branch():
            raise ForgeError(f"refusing to push to {branch}, the default branch of {self.full_name}")
        current = self._git(["rev-parse", "--abbrev-ref", "HEAD"], cwd=workspace)
        if current != branch:
            raise ForgeError(f"{workspace} is on {current!r}, not {branch!r}: prepare_workspace({branch!r}) first")
        self._git(["add", "--all"], cwd=workspace)
        if not self._git_ok(["diff", "--cached", "--quiet"], cwd=workspace):
            self._git(["commit", "--quiet", "--no-verify", "-m", message], cwd=workspace, author=True)
        push = ["push", "--quiet", "--porcelain", "origin", f"HEAD:refs/heads/{branch}"]
        if branch.startswith(self._bot_prefix):
            # Our own branch: history may be rewritten (a resumed run), but never over someone else's
            # push: the lease is what we last saw of the branch ('' = it must not exist yet).
            seen = self._git_out(["rev-parse", "--verify", "--quiet", f"refs/remotes/origin/{branch}"], cwd=workspace)
            push.insert(1, f"--force-with-lease=refs/heads/{branch}:{seen or ''}")
        self._git(push, cwd=workspace, remote=True)
        head = self._git(["rev-parse", "HEAD"], cwd=workspace)
        log.info("pushed %s to %s:%s", head[:12], self.full_name, branch)
        return head

    def remove_workspace(self, workspace: Path) -> None:
        """Delete a working copy (idempotent); only below `workdir_base`, never anything else."""
        workspace = self._inside_base(workspace)
        if workspace == self.workdir_base:
            raise ForgeError(f"refusing to remove {workspace}: it is the workspace base, not one workspace")
        if workspace.exists():
            shutil.rmtree(workspace)

    # --- pull requests -----------------------------------------------------------------------------

    def find_pull_request(self, branch: str) -> PullRequest | None:
        with self._api(f"looking for the open pull request of {branch}"):
            for pull in self._repo.get_pulls(state="open", head=f"{self.owner}:{branch}"):
                if pull.head.ref == branch:
                    return self._model(pull)
        return None

    def open_pull_request(self, branch: str, title: str, body: str, issue_number: int | None = None) -> PullRequest:
        existing = self.find_pull_request(branch)
        if existing is not None:
            return existing
        if issue_number is not None and f"Closes #{issue_number}" not in body:
            body = f"{body.rstrip()}\n\nCloses #{issue_number}"
        default = self.default_branch()
        with self._api(f"opening a pull request for {branch}"):
            try:
                pull = self._repo.create_pull(base=default, head=branch, title=title, body=_fit(body))
            except GithubException as exc:
                if exc.status == 422 and "already exists" in github_message(exc):
                    raced = self.find_pull_request(branch)  # opened by an earlier attempt
                    if raced is not None:
                        return raced
                if exc.status == 422:
                    raise ForgeError(
                        f"GitHub refused to open a pull request from {branch} into {default} on {self.full_name}: "
                        f"{github_message(exc)}; push the branch with commits first (publish_branch)"
                    ) from None
                raise
        log.info("opened pull request #%s on %s for %s", pull.number, self.full_name, branch)
        return self._model(pull)

    def close_pull_request(self, pr: PullRequest, note: str) -> PullRequest:
        if note:
            self.comment(pr, None, note)
        with self._api(f"closing pull request #{pr.number}"):
            pull = self._repo.get_pull(pr.number)
            if pull.state == "open":
                pull.edit(state="closed")  # PyGithub takes the answer's fields: `pull` is closed now
            return self._model(pull)

    def merge(self, pr: PullRequest, method: Literal["merge", "squash", "rebase"] = "merge") -> MergeResult:
        with self._api(f"merging pull request #{pr.number}"):
            pull = self._repo.get_pull(pr.number)
            state = self._merge_state(pull)
            if state is not None:
                return state
            try:
                result = pull.merge(merge_method=method, sha=pr.head_sha)
            except GithubException as exc:
                if exc.status == 405:
                    now = self._repo.get_pull(pr.number)
                    again = self._merge_state(now)  # merged by our lost earlier try?
                    return again or MergeResult(
                        outcome=MergeOutcome.not_mergeable,
                        message=f"GitHub will not merge #{pr.number} on {self.full_name}: {github_message(exc)} "
                        "(conflicts, branch protection or required checks); resolve it or merge by hand",
                        pr=self._model(now),
                    )
                if exc.status == 409:
                    return MergeResult(
                        outcome=MergeOutcome.head_changed,
                        message=f"the head of #{pr.number} is no longer {pr.head_sha[:12]}, the commit that was "
                        f"validated ({github_message(exc)}); validate the new head before merging",
                        pr=self._model(self._repo.get_pull(pr.number)),
                    )
                raise
        log.info("merged pull request #%s on %s as %s", pr.number, self.full_name, result.sha)
        # GitHub answered the merge itself; the PR it merged is `pr` at the validated head, now merged.
        merged = pr.model_copy(update={"state": PullRequestState.merged})
        return MergeResult(
            outcome=MergeOutcome.merged, merge_sha=result.sha, message=result.message or "merged", pr=merged
        )

    def _merge_state(self, pull: GhPullRequest) -> MergeResult | None:
        if pull.merged:
            return MergeResult(
                outcome=MergeOutcome.already_merged,
                merge_sha=pull.merge_commit_sha,
                message=f"#{pull.number} was already merged",
                pr=self._model(pull),
            )
        if pull.state == "closed":
            return MergeResult(
                outcome=MergeOutcome.closed, message=f"#{pull.number} is closed without merging", pr=self._model(pull)
            )
        return None

    def delete_branch(self, branch: str) -> None:
        if branch == self.default_branch():
            raise BranchKept(f"branch {branch} was kept: it is the default branch of {self.full_name}")
        with self._api(f"deleting branch {branch}"):
            try:
                self._gh.requester.requestJsonAndCheck(
                    "DELETE", f"/repos/{self.full_name}/git/refs/heads/{quote(branch, safe='/')}"
                )
            except GithubException as exc:
                if exc.status == 404 or (exc.status == 422 and "does not exist" in github_message(exc)):
                    log.info("branch %s on %s is already gone", branch, self.full_name)
                    return
                if exc.status == 422:  # e.g. a protected branch: GitHub says why
                    raise BranchKept(
                        f"branch {branch} was kept: GitHub refused to delete it on {self.full_name} "
                        f"({github_message(exc)}); delete it by hand if you are done with it"
                    ) from None
                raise

    # --- conversation: comments, evidence, statuses, labels ------------------------------------------

    def comment(self, pr: PullRequest | None, issue_number: int | None, body: str) -> None:
        number = pr.number if pr is not None else issue_number
        if number is None:
            raise ForgeError("a comment needs a pull request or an issue number")
        body = _fit(body)
        me = self._auth.identity(self._installation())
        with self._api(f"commenting on #{number}"):
            issue = self._repo.get_issue(number)
            last_mine = None
            for existing in issue.get_comments():
                if existing.user is not None and existing.user.login == me:
                    last_mine = existing
            if last_mine is not None and last_mine.body == body:
                return  # a retry of a comment that did land
            issue.create_comment(body)

    def upsert_evidence(self, pr: PullRequest, markdown: str) -> None:
        # The marker finds our comment again; the evidence report may already start with it.
        body = _fit(markdown if markdown.startswith(EVIDENCE_MARKER) else f"{EVIDENCE_MARKER}\n{markdown}")
        me = self._auth.identity(self._installation())
        with self._api(f"writing the evidence comment on #{pr.number}"):
            issue = self._repo.get_issue(pr.number)
            for existing in issue.get_comments():
                # only our own comment: anyone may paste the marker, and the evidence must be ours
                if (
                    existing.user is not None
                    and existing.user.login == me
                    and (existing.body or "").startswith(EVIDENCE_MARKER)
                ):
                    if existing.body != body:
                        existing.edit(body)
                    return
            issue.create_comment(body)

    def set_status(self, pr: PullRequest, state: CommitStatus, description: str, target_url: str | None = None) -> None:
        text = (
            description
            if len(description) <= MAX_STATUS_DESCRIPTION
            else description[: MAX_STATUS_DESCRIPTION - 1] + "…"
        )
        with self._api(f"setting the {STATUS_CONTEXT} status of {pr.head_sha[:12]}"):
            commit = self._repo.get_commit(pr.head_sha)
            if target_url:
                commit.create_status(state=state.value, description=text, context=STATUS_CONTEXT, target_url=target_url)
            else:
                commit.create_status(state=state.value, description=text, context=STATUS_CONTEXT)

    def set_labels(self, issue_number: int | None, pr: PullRequest | None, add: list[str], remove: list[str]) -> None:
        """Make labels present/absent on the issue and the PR. Status labels are exclusive: adding one
        removes the other `spec2ship:*` status labels."""
        status_labels = set(STATUS_LABELS.values())
        adding_status = [label for label in add if label in status_labels]
        if len(set(adding_status)) > 1:
            raise ForgeError(f"only one status label at a time, got {sorted(set(adding_status))}")
        drop = set(remove) | ((status_labels - set(adding_status)) if adding_status else set())
        drop -= set(add)
        numbers = [n for n in dict.fromkeys([issue_number, pr.number if pr else None]) if n is not None]
        for label in add:
            self._ensure_label(label)
        for number in numbers:
            with self._api(f"labelling #{number}"):
                issue = self._repo.get_issue(number)
                current = {label.name for label in issue.get_labels()}
                for label in sorted(drop & current):
                    try:
                        issue.remove_from_labels(label)
                    except GithubException as exc:
                        if exc.status != 404:  # removed meanwhile: the state we want
                            raise
                missing = [label for label in dict.fromkeys(add) if label not in current]
                if missing:
                    issue.add_to_labels(*missing)

    def _ensure_label(self, name: str) -> None:
        if name in self._ensured_labels:
            return
        color, description = LABEL_STYLE.get(name, ("ededed", ""))
        with self._api(f"creating label {name}"):
            try:
                self._repo.get_label(name).color  # noqa: B018 - the attribute read is the GET
            except GithubException as exc:
                if exc.status != 404:
                    raise
                try:
                    self._repo.create_label(name=name, color=color, description=description)
                except GithubException as create_exc:
                    if create_exc.status != 422 or "already_exists" not in _error_codes(create_exc):
                        raise  # only "created meanwhile" is the state we want
        self._ensured_labels.add(name)

    # --- who may steer --------------------------------------------------------------------------

    def permission(self, user: str) -> str:
        with self._api(f"reading {user}'s permission"):
            try:
                level = self._repo.get_collaborator_permission(user)
            except GithubException as exc:
                if exc.status == 404:
                    return "none"
                raise
        return _PERMISSIONS.get(level, "none")

    # --- internals ------------------------------------------------------------------------------

    def _installation(self) -> int | None:
        if self._installation_id is None and self._auth.is_app:
            self._installation_id = self._auth.installation_for(self.full_name)
        return self._installation_id

    @contextmanager
    def _api(self, doing: str) -> Iterator[None]:
        """Turn PyGithub/requests failures inside the block into ForgeError (see github_auth)."""
        try:
            yield
        except ForgeError:
            raise
        except (GithubException, requests.RequestException) as exc:
            raise forge_error(exc, doing, self.full_name, self._auth.secrets()) from None

    def _model(self, pull: GhPullRequest) -> PullRequest:
        if pull.merged_at is not None:
            state = PullRequestState.merged
        elif pull.state == "closed":
            state = PullRequestState.closed
        else:
            state = PullRequestState.open
        return PullRequest(
            number=pull.number,
            branch=pull.head.ref,
            base=pull.base.ref,
            head_sha=pull.head.sha,
            url=pull.html_url,
            state=state,
            title=pull.title,
        )

    def _remote_url(self) -> str:
        self.default_branch()
        if self._clone_url is None:
            with self._api("reading the repository"):
                self._clone_url = self._repo.clone_url
        return self._clone_url

    def _inside_base(self, path: Path) -> Path:
        resolved = (self.workdir_base / path).resolve()
        if resolved != self.workdir_base and self.workdir_base not in resolved.parents:
            raise ForgeError(f"{path} is outside the workspace base {self.workdir_base}: refusing to touch it")
        return resolved

    def _git_env(self, *, remote: bool, author: bool) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("GIT_TRACE", "GIT_CURL", "GIT_CONFIG", "GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX"))
        }
        env.update({"GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "", "SSH_ASKPASS": "", "LC_ALL": "C"})
        config = [("core.hooksPath", os.devnull), ("credential.helper", ""), ("protocol.file.allow", "never")]
        if remote:
            token = self._auth.token(self._installation()).get_secret_value()
            basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
            parts = urlsplit(self._remote_url())
            config.append((f"http.{parts.scheme}://{parts.netloc}/.extraHeader", f"Authorization: Basic {basic}"))
        env["GIT_CONFIG_COUNT"] = str(len(config))
        for index, (key, value) in enumerate(config):
            env[f"GIT_CONFIG_KEY_{index}"] = key
            env[f"GIT_CONFIG_VALUE_{index}"] = value
        if author:
            env.update(
                {
                    "GIT_AUTHOR_NAME": self._committer.name,
                    "GIT_AUTHOR_EMAIL": self._committer.email,
                    "GIT_COMMITTER_NAME": self._committer.name,
                    "GIT_COMMITTER_EMAIL": self._committer.email,
                }
            )
        return env

    def _run_git(self, args: list[str], cwd: Path, *, remote: bool = False, author: bool = False) -> GitResult:
        """git with only this forge's credentials and identity (timeouts and a missing git raise)."""
        env = self._git_env(remote=remote, author=author)
        return Git(cwd, base_env=env, timeout_s=self._git_timeout_s).run(*args, check=False)

    def _git(self, args: list[str], cwd: Path, *, remote: bool = False, author: bool = False) -> str:
        result = self._run_git(args, cwd, remote=remote, author=author)
        if result.returncode != 0:
            raise self._git_error(args[0], f"{result.stdout}\n{result.stderr}")  # push --porcelain reports on stdout
        return result.stdout.strip()

    def _git_ok(self, args: list[str], cwd: Path) -> bool:
        return self._run_git(args, cwd).returncode == 0

    def _git_out(self, args: list[str], cwd: Path) -> str | None:
        result = self._run_git(args, cwd)
        return result.stdout.strip() if result.returncode == 0 else None

    def _git_error(self, command: str, output: str) -> ForgeError:
        text = output.strip()
        for secret in self._auth.secrets():
            text = text.replace(secret, "***")
        text = text[-1500:]
        lower = text.lower()
        where = f"git {command} on {self.full_name}"
        if "stale info" in lower or "non-fast-forward" in lower or "fetch first" in lower or "[rejected]" in lower:
            return GitError(
                f"{where} was rejected: someone else pushed to the branch since this workspace last saw it "
                f"({text}); resume from the forge's branch (prepare_workspace) or delete it"
            )
        if "authentication failed" in lower or " 401" in lower or " 403" in lower or "permission" in lower:
            return GitHubAuthError(f"{where}: GitHub refused the credentials ({text}); the token needs contents: write")
        transient = (
            "could not resolve host",
            "connection",
            "timed out",
            "rpc failed",
            "early eof",
            " 50",
            "remote end hung up",
        )
        return GitError(f"{where} failed: {text}", retryable=any(mark in lower for mark in transient))


def _error_codes(exc: GithubException) -> set[str]:
    data = exc.data if isinstance(exc.data, dict) else {}
    return {str(error.get("code")) for error in data.get("errors") or [] if isinstance(error, dict)}


def _fit(body: str) -> str:
    """GitHub refuses comment and PR bodies over 65,536 characters: cut, and say so."""
    if len(body) <= MAX_COMMENT_CHARS:
        return body
    note = "\n\n… (cut: the full text is in the run's evidence)"
    return body[: MAX_COMMENT_CHARS - len(note)] + note
