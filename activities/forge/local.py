"""The local forge: a git repository on disk plays the part GitHub plays in production.

Branches are real branches, workspaces are `git worktree`s, merges are real `git merge --no-ff` commits.
Pull requests, comments, statuses and labels have no home in git itself, so they are JSON records kept
inside the repository's git folder (`.git/spec2ship/pulls/<number>.json`) where no commit, checkout or
clean can touch them, plus a ref `refs/spec2ship/pull/<number>/head` that keeps each PR's head alive
after its branch is deleted, as GitHub does.

A person's checkout is respected. The merge commit is made in a throwaway detached worktree; a worktree
that has the base branch checked out then follows it as `git merge --ff-only` would (activities/forge/
checkout.py): the merged files are updated, uncommitted changes to other files stay, and changes in the
way refuse the merge (outcome `checkout_blocked`) without moving anything. Branches are deleted only
where no person works on them: never the default branch, never one checked out in the main worktree,
and of linked worktrees only the workspaces this forge made.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path, PurePosixPath
from typing import Literal

from pydantic import BaseModel, Field, ValidationError

from activities.forge import checkout
from activities.forge.base import BranchKept, ForgeError, read_spec_from_repository
from activities.forge.gitcli import BOT_NAME, Git, GitError, WorktreeInfo
from contracts.forge import CommitStatus, MergeOutcome, MergeResult, PullRequest, PullRequestState, SpecSource

log = logging.getLogger(__name__)

STATE_DIR = "spec2ship"
PULL_REF_PREFIX = "refs/spec2ship/pull"
STATUS_CONTEXT = "spec2ship"
# Kept in the git folder of each workspace worktree this forge makes (where no commit or agent reaches):
# deleting a branch removes those worktrees, never one a person made.
WORKSPACE_MARKER = "spec2ship-workspace"

# Bot commits are never signed (the bot holds no key) and throwaway worktrees run no user hooks.
_BOT_CONFIG = {"commit.gpgsign": "false", "tag.gpgsign": "false"}
_NO_HOOKS = {"core.hooksPath": os.devnull}


def _now() -> datetime:
    return datetime.now(UTC)


class CommentKind(StrEnum):
    comment = "comment"
    evidence = "evidence"


class LocalComment(BaseModel):
    id: int
    author: str
    body: str
    kind: CommentKind = CommentKind.comment
    created_at: datetime
    updated_at: datetime


class LocalStatus(BaseModel):
    """A commit status on the PR head, like GitHub's statuses API (latest per context wins)."""

    sha: str
    state: CommitStatus
    description: str
    context: str = STATUS_CONTEXT
    created_at: datetime


class LocalPullRequestRecord(BaseModel):
    """What GitHub would know about a pull request, kept as one JSON file per PR."""

    number: int
    branch: str
    base: str
    title: str
    body: str = ""
    state: PullRequestState = PullRequestState.open
    head_sha: str
    created_at: datetime
    updated_at: datetime | None = None
    comments: list[LocalComment] = Field(default_factory=list)
    statuses: list[LocalStatus] = Field(default_factory=list)
    labels: list[str] = Field(default_factory=list)
    merge_sha: str | None = None
    issue_number: int | None = None  # the spec's issue, when the run came from one elsewhere
    merged_at: datetime | None = None
    closed_at: datetime | None = None

    @property
    def evidence(self) -> LocalComment | None:
        return next((c for c in self.comments if c.kind is CommentKind.evidence), None)

    def add_comment(self, body: str, kind: CommentKind = CommentKind.comment) -> LocalComment:
        now = _now()
        comment = LocalComment(
            id=max((c.id for c in self.comments), default=0) + 1,
            author=BOT_NAME,
            body=body,
            kind=kind,
            created_at=now,
            updated_at=now,
        )
        self.comments.append(comment)
        return comment


class LocalNote(BaseModel):
    """A comment meant for an issue or for no PR at all: a local repository has no issues to put it on."""

    issue_number: int | None
    author: str
    body: str
    created_at: datetime


class LocalForge:
    """One git repository on disk, seen through the `Forge` protocol. Every method is idempotent."""

    def __init__(self, repo_path: Path | str, *, default_branch: str | None = None) -> None:
        self.path, self.common_dir = _open_repository(Path(repo_path))
        self._git = Git(self.path, config=_BOT_CONFIG)
        self._default_override = default_branch
        self._state_dir = self.common_dir / STATE_DIR
        self._pulls_dir = self._state_dir / "pulls"
        self.default_branch()  # fail now, with a clear message, on an empty repository

    # ----------------------------------------------------------------------------------------- reading

    def default_branch(self) -> str:
        """The branch the main worktree has checked out (its HEAD), unless the RepoRef names one."""
        name = self._default_override or self._head_branch()
        if self._git.rev(f"refs/heads/{name}") is None:
            if not self._git.out("for-each-ref", "--count=1", "refs/heads"):
                raise ForgeError(
                    f"the repository {self.path} has no commits yet; make a first commit on its default branch "
                    "(e.g. `git commit --allow-empty -m init`) and run again"
                )
            raise ForgeError(
                f"the default branch {name!r} does not exist in {self.path}; create it, or name an existing "
                "branch as the repository's default_branch"
            )
        return name

    def branch_head(self, branch: str) -> str:
        sha = self._git.rev(f"refs/heads/{branch}")
        if sha is None:
            raise ForgeError(f"no branch {branch!r} in {self.path}")
        return sha

    def read_spec(self, source: SpecSource) -> tuple[str, str]:
        found = read_spec_from_repository(self, source, str(self.path))
        if found is not None:
            return found
        raise ForgeError(
            f"the local forge at {self.path} has no issues, so it cannot read spec issue #{source.issue_number}; "
            "pass the spec as a file in the repository or inline"
        )

    def read_file(self, path: str, ref: str | None = None) -> str | None:
        rel = _repo_relative(path)
        ref = ref or self.default_branch()
        commit = self._git.rev(ref)
        if commit is None:
            raise ForgeError(f"no branch, tag or commit {ref!r} in {self.path}; name one that exists")
        spec = f"{commit}:{rel}"
        kind = self._git.run("cat-file", "-t", spec, check=False)
        if not kind.ok or kind.stdout.strip() != "blob":
            return None
        return self._git.run("cat-file", "blob", spec).stdout

    def permission(self, user: str) -> str:
        """Whoever can reach a local repository owns it."""
        return "admin"

    # -------------------------------------------------------------------------------------- workspaces

    def prepare_workspace(self, branch: str, dest: Path) -> str:
        self._check_branch(branch)
        default = self.default_branch()
        if branch == default:
            raise ForgeError(f"refusing to prepare a workspace on the default branch {default} of {self.path}")
        dest = Path(dest).expanduser().resolve()
        self._git.run("worktree", "prune")
        for index, tree in enumerate(self._git.worktrees()):
            here = tree.path.resolve() == dest
            if here and tree.branch == branch and not tree.bare:
                self._mark_workspace(dest, branch)
                return self._base_sha(default, branch)
            if here:
                on = tree.branch or "a detached HEAD"
                raise ForgeError(
                    f"{dest} is already a worktree of {self.path} on {on}, not on {branch}; "
                    "remove it (remove_workspace) or choose another folder"
                )
            if tree.branch == branch:
                where = "the main worktree" if index == 0 else "another worktree"
                raise ForgeError(
                    f"branch {branch} is already checked out in {where} at {tree.path}; "
                    "check out another branch there or remove that worktree, then run again"
                )
        if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
            raise ForgeError(
                f"cannot create a workspace at {dest}: the path exists and is not an empty folder; "
                "remove it or choose another folder"
            )
        dest.parent.mkdir(parents=True, exist_ok=True)
        if self._tip(branch) is not None:
            self._git.run("worktree", "add", str(dest), branch)
        else:
            start = self._require_tip(default)
            try:
                self._git.run("worktree", "add", "--no-track", "-b", branch, str(dest), start)
            except GitError:
                if self._tip(branch) is None:
                    raise
                # Another run created the branch between our look and our add: resume it instead.
                self._git.run("worktree", "add", str(dest), branch)
        self._mark_workspace(dest, branch)
        return self._base_sha(default, branch)

    def publish_branch(self, workspace: Path, branch: str, message: str) -> str:
        tree = self._worktree_at(Path(workspace))
        if tree is None:
            raise ForgeError(f"{workspace} is not a worktree of {self.path}; prepare it with prepare_workspace first")
        if tree.branch != branch:
            raise ForgeError(
                f"the workspace {workspace} is on {tree.branch or 'a detached HEAD'}, not on {branch}; "
                "publish the branch the workspace was prepared for"
            )
        git = self._git.at(tree.path).as_bot()
        git.run("add", "-A")
        staged = git.run("diff", "--cached", "--quiet", check=False)
        if staged.returncode not in (0, 1):
            raise GitError(["git", *staged.args], tree.path, staged.returncode, staged.stderr)
        if staged.returncode == 1:
            git.run("commit", "--no-verify", "-m", message.strip() or f"spec2ship: update {branch}")
        head = self._require_tip(branch)
        with self._locked():
            for record in self._records():
                if record.branch == branch and record.state is PullRequestState.open:
                    self._refresh_head(record, head)
        return head

    def remove_workspace(self, dest: Path) -> None:
        dest = Path(dest).expanduser().resolve()
        self._git.run("worktree", "prune")  # forget worktrees whose folder is already gone
        for index, tree in enumerate(self._git.worktrees()):
            if tree.path.resolve() != dest:
                continue
            if index == 0:
                raise ForgeError(f"{dest} is the main worktree of {self.path}; spec2ship never removes it")
            self._git.run("worktree", "remove", "--force", "--force", str(dest))
            break
        else:
            if dest.exists():
                if not self._is_orphan_worktree(dest):
                    raise ForgeError(
                        f"{dest} is not a worktree of {self.path}; refusing to delete it, remove it by hand"
                    )
                shutil.rmtree(dest)
        self._git.run("worktree", "prune")

    def delete_branch(self, branch: str) -> None:
        """Delete `branch` with the workspaces this forge made for it; `BranchKept` when a person has it
        checked out (the main worktree, or a worktree they made), or when it is the default branch."""
        self._check_branch(branch)
        if branch == self.default_branch():
            raise BranchKept(f"branch {branch} was kept: it is the default branch of {self.path}")
        self._git.run("worktree", "prune")
        trees = [(index, tree) for index, tree in enumerate(self._git.worktrees()) if tree.branch == branch]
        for index, tree in trees:
            if index == 0:
                raise BranchKept(
                    f"branch {branch} was kept: it is checked out in the main worktree {tree.path}; check out "
                    f"another branch there, then delete it (`git -C {tree.path} branch -D {branch}`) if you are done"
                )
            if not self._is_workspace(tree.path):
                raise BranchKept(
                    f"branch {branch} was kept: it is checked out in {tree.path}, a worktree spec2ship did not make; "
                    f"remove that worktree (`git worktree remove {tree.path}`), then `git branch -D {branch}` "
                    "if you are done with it"
                )
        for _index, tree in trees:
            self._git.run("worktree", "remove", "--force", "--force", str(tree.path))
        if self._tip(branch) is not None:
            self._git.run("branch", "-D", branch)

    # ----------------------------------------------------------------------------------- pull requests

    def find_pull_request(self, branch: str) -> PullRequest | None:
        """The open PR for `branch`; when none is open, the most recent one (merged or closed), if any."""
        with self._locked():
            records = [r for r in self._records() if r.branch == branch]
            for record in records:
                if record.state is PullRequestState.open:
                    tip = self._tip(branch)
                    if tip is not None:
                        self._refresh_head(record, tip)
                    return self._as_pull_request(record)
        return self._as_pull_request(records[-1]) if records else None

    def open_pull_request(self, branch: str, title: str, body: str, issue_number: int | None = None) -> PullRequest:
        """Open a PR for `branch`, or return the open one; `issue_number` is only recorded (no issues here)."""
        self._check_branch(branch)
        base = self.default_branch()
        if branch == base:
            raise ForgeError(f"cannot open a pull request from the default branch {base} into itself")
        head = self._tip(branch)
        if head is None:
            raise ForgeError(f"branch {branch} does not exist in {self.path}; publish it before opening a PR")
        with self._locked():
            records = self._records()
            for record in records:
                if record.branch == branch and record.state is PullRequestState.open:
                    self._refresh_head(record, head)
                    return self._as_pull_request(record)
            if self._git.ok("merge-base", "--is-ancestor", head, self._require_tip(base)):
                # GitHub answers 422 here; an empty PR has nothing to review or merge.
                raise ForgeError(f"no commits between {base} and {branch} in {self.path}; nothing to open a PR for")
            record = LocalPullRequestRecord(
                number=max((r.number for r in records), default=0) + 1,
                branch=branch,
                base=base,
                title=title,
                body=body,
                head_sha=head,
                created_at=_now(),
                issue_number=issue_number,
            )
            self._save(record)
            self._git.run("update-ref", self._pull_ref(record.number), head)
            return self._as_pull_request(record)

    def upsert_evidence(self, pr: PullRequest, markdown: str) -> None:
        def edit(record: LocalPullRequestRecord) -> bool:
            existing = record.evidence
            if existing is None:
                record.add_comment(markdown, CommentKind.evidence)
                return True
            if existing.body == markdown:
                return False
            existing.body = markdown
            existing.updated_at = _now()
            return True

        self._update(pr.number, edit)

    def comment(self, pr: PullRequest | None, issue_number: int | None, body: str) -> None:
        """On the PR when there is one; otherwise kept as a repository note (`list_notes`)."""
        if pr is None:
            self._add_note(issue_number, body)
            return

        def add(record: LocalPullRequestRecord) -> bool:
            # A retried activity must not say the same thing twice in a row.
            plain = [c for c in record.comments if c.kind is CommentKind.comment]
            if plain and plain[-1].body == body:
                return False
            record.add_comment(body)
            return True

        self._update(pr.number, add)

    def set_status(self, pr: PullRequest, state: CommitStatus, description: str) -> None:
        def add(record: LocalPullRequestRecord) -> bool:
            latest = next((s for s in reversed(record.statuses) if s.context == STATUS_CONTEXT), None)
            if latest is not None and (latest.sha, latest.state, latest.description) == (
                pr.head_sha,
                state,
                description,
            ):
                return False
            record.statuses.append(
                LocalStatus(sha=pr.head_sha, state=state, description=description, created_at=_now())
            )
            return True

        self._update(pr.number, add)

    def set_labels(self, issue_number: int | None, pr: PullRequest | None, add: list[str], remove: list[str]) -> None:
        if pr is None:
            log.info(
                "local forge %s has no issues; labels %s / -%s for issue %s not kept",
                self.path,
                add,
                remove,
                issue_number,
            )
            return

        def relabel(record: LocalPullRequestRecord) -> bool:
            labels = [label for label in record.labels if label not in remove]
            labels += [label for label in dict.fromkeys(add) if label not in labels]
            if labels == record.labels:
                return False
            record.labels = labels
            return True

        self._update(pr.number, relabel)

    def close_pull_request(self, pr: PullRequest, note: str) -> PullRequest:
        def close(record: LocalPullRequestRecord) -> bool:
            if record.state is not PullRequestState.open:
                return False
            if note:
                record.add_comment(note)
            record.state = PullRequestState.closed
            record.closed_at = _now()
            return True

        return self._as_pull_request(self._update(pr.number, close))

    def merge(self, pr: PullRequest, method: Literal["merge", "squash", "rebase"] = "merge") -> MergeResult:
        """Merge the PR head into its base; a checkout of the base follows as `git merge --ff-only` would."""
        if method == "rebase":
            raise ForgeError(
                f"the local forge at {self.path} merges with a merge commit or a squash, not a rebase; "
                "set the merge method to 'merge' or 'squash'"
            )
        with self._locked():
            record = self._require(pr.number)
            result = self._merge_locked(record, pr, method)
            return result.model_copy(update={"pr": self._as_pull_request(record)})

    def _merge_locked(
        self, record: LocalPullRequestRecord, pr: PullRequest, method: str
    ) -> MergeResult:
        if record.state is PullRequestState.merged:
            return MergeResult(
                outcome=MergeOutcome.already_merged,
                merge_sha=record.merge_sha,
                message=f"pull request #{record.number} was already merged into {record.base}",
            )
        if record.state is PullRequestState.closed:
            return MergeResult(
                outcome=MergeOutcome.closed,
                message=f"pull request #{record.number} is closed; reopen it with a new run",
            )
        base_sha = self._require_tip(record.base)
        tip = self._tip(record.branch)
        if tip is None:
            return MergeResult(
                outcome=MergeOutcome.not_mergeable,
                message=f"branch {record.branch} of pull request #{record.number} no longer exists",
            )
        landed = self._landed(record, tip, base_sha)
        if landed is not None:
            self._mark_merged(record, tip, landed)
            return MergeResult(
                outcome=MergeOutcome.already_merged,
                merge_sha=landed,
                message=f"{record.branch} at {tip[:12]} is already part of {record.base}",
            )
        if tip != pr.head_sha:
            return MergeResult(
                outcome=MergeOutcome.head_changed,
                message=(
                    f"{record.branch} moved to {tip[:12]} since {pr.head_sha[:12]} was validated; "
                    "validate the new head before merging"
                ),
            )
        return self._land(record, base_sha, tip, method)

    def _land(self, record: LocalPullRequestRecord, base_sha: str, tip: str, method: str) -> MergeResult:
        """Make the merge commit, bring every checkout of the base along, then move the base."""
        message = (
            f"Merge pull request #{record.number} from {record.branch}\n\n{record.title}\n\n"
            f"Spec2ship-Pull: {record.number}\nSpec2ship-Head: {tip}\n"
        )
        merge_sha, problem = self._merge_commit(base_sha, tip, method, message)
        if merge_sha is None:
            return MergeResult(
                outcome=MergeOutcome.not_mergeable,
                message=f"{record.branch} does not merge cleanly into {record.base}: {problem}",
            )
        holders = checkout.holders_of(self._git, record.base)
        if merge_sha != base_sha:
            for holder in holders:
                block = checkout.find_block(self._git, holder, record.base, base_sha, merge_sha)
                if block is not None:
                    return self._blocked(record, block, base_sha)
            block = checkout.follow(
                self._git, holders, record.base, base_sha, merge_sha, f"spec2ship: merge pull request #{record.number}"
            )
            if block is not None:
                return self._blocked(record, block, base_sha)
        self._mark_merged(record, tip, merge_sha)
        followed = "".join(
            f"; {holder.path} has {record.base} checked out: its files were updated as `git merge --ff-only` "
            "would, keeping uncommitted changes to other files"
            for holder in holders
        )
        return MergeResult(
            outcome=MergeOutcome.merged, merge_sha=merge_sha, message=f"merged into {record.base}{followed}"
        )

    def _blocked(self, record: LocalPullRequestRecord, block: checkout.CheckoutBlock, base_sha: str) -> MergeResult:
        message = f"pull request #{record.number} was not merged: {block.describe(base_sha)}"
        log.warning("local forge %s: %s", self.path, message)
        return MergeResult(
            outcome=MergeOutcome.checkout_blocked, message=message, blocking_paths=[p.path for p in block.paths]
        )

    # ------------------------------------------------------------------------------ record inspection

    def list_pull_requests(self) -> list[LocalPullRequestRecord]:
        return self._records()

    def get_pull_request_record(self, number: int) -> LocalPullRequestRecord | None:
        return self._load(number)

    def list_notes(self) -> list[LocalNote]:
        notes_file = self._state_dir / "notes.jsonl"
        if not notes_file.exists():
            return []
        return [LocalNote.model_validate_json(line) for line in notes_file.read_text().splitlines() if line.strip()]

    # -------------------------------------------------------------------------------------- internals

    def _head_branch(self) -> str:
        # The main worktree's HEAD lives in the common git folder, whichever worktree we were pointed at.
        head = self._git.run(
            "--git-dir", str(self.common_dir), "symbolic-ref", "--quiet", "--short", "HEAD", check=False
        )
        if head.ok and head.stdout.strip():
            return head.stdout.strip()
        origin = self._git.run("symbolic-ref", "--quiet", "--short", "refs/remotes/origin/HEAD", check=False)
        if origin.ok and origin.stdout.strip():
            return origin.stdout.strip().removeprefix("origin/")
        raise ForgeError(
            f"the main worktree of {self.path} has a detached HEAD, so its default branch is unknown; check out "
            "the default branch there or name it as the repository's default_branch"
        )

    def _check_branch(self, branch: str) -> None:
        if not branch or not self._git.ok("check-ref-format", "--branch", branch) or branch.startswith("-"):
            raise ForgeError(f"{branch!r} is not a valid branch name; choose a name git accepts")

    def _tip(self, branch: str) -> str | None:
        return self._git.rev(f"refs/heads/{branch}")

    def _require_tip(self, branch: str) -> str:
        tip = self._tip(branch)
        if tip is None:
            raise ForgeError(f"branch {branch} does not exist in {self.path}")
        return tip

    def _base_sha(self, default: str, branch: str) -> str:
        found = self._git.run("merge-base", f"refs/heads/{default}", f"refs/heads/{branch}", check=False)
        if not found.ok or not found.stdout.strip():
            raise ForgeError(
                f"branch {branch} shares no history with {default} in {self.path}; delete it and run again"
            )
        return found.stdout.strip()

    def _worktree_at(self, path: Path) -> WorktreeInfo | None:
        wanted = path.expanduser().resolve()
        return next((t for t in self._git.worktrees() if t.path.resolve() == wanted), None)

    def _is_orphan_worktree(self, dest: Path) -> bool:
        """A folder whose `.git` file points into this repository's worktree registry that is gone."""
        marker = dest / ".git"
        if not marker.is_file():
            return False
        gitdir = Path(marker.read_text().removeprefix("gitdir:").strip())
        gitdir = gitdir if gitdir.is_absolute() else dest / gitdir
        return gitdir.parent.resolve() == (self.common_dir / "worktrees").resolve() and not gitdir.exists()

    def _landed(self, record: LocalPullRequestRecord, tip: str, base_sha: str) -> str | None:
        """The commit that brought `tip` into the base, if it is there already (merged here before a crash,
        or by a person): a commit carrying our trailer, else the merge commit with `tip` as a parent."""
        since = (record.created_at - timedelta(days=1)).isoformat()
        trailer = self._git.out(
            "log",
            "-n1",
            "--format=%H",
            f"--since={since}",
            "--fixed-strings",
            f"--grep=Spec2ship-Head: {tip}",
            base_sha,
        )
        if trailer:
            return trailer
        if not self._git.ok("merge-base", "--is-ancestor", tip, base_sha):
            return None
        for line in self._git.out(
            "rev-list", "--reverse", "--ancestry-path", "--parents", f"{tip}..{base_sha}"
        ).splitlines():
            sha, *parents = line.split()
            if tip in parents:
                return sha
        return tip  # fast-forwarded: the head itself is where the change landed

    def _merge_commit(self, base_sha: str, tip: str, method: str, message: str) -> tuple[str | None, str]:
        """Make the merge commit in a throwaway detached worktree, moving no branch: the new commit, or
        None and why not. Moving the base is `checkout.follow`'s, so a checkout of it can come along."""
        scratch = Path(tempfile.mkdtemp(prefix="spec2ship-merge-"))
        tree = scratch / "worktree"
        git = Git(self.path, config={**_BOT_CONFIG, **_NO_HOOKS})
        try:
            git.run("worktree", "add", "--detach", str(tree), base_sha)
            return self._merge_in(git.at(tree), tip, method, message)
        finally:
            with suppress(GitError):
                git.run("worktree", "remove", "--force", "--force", str(tree))
            shutil.rmtree(scratch, ignore_errors=True)
            git.run("worktree", "prune")

    def _merge_in(self, git: Git, tip: str, method: str, message: str) -> tuple[str | None, str]:
        bot = git.as_bot()
        how = ["--no-ff", "--no-commit"] if method == "merge" else ["--squash"]
        attempt = bot.run("merge", *how, tip, check=False)
        if not attempt.ok:
            bot.run("reset", "--merge")
            problem = (attempt.stdout + attempt.stderr).strip().splitlines()
            return None, "; ".join(line for line in problem if "CONFLICT" in line) or " ".join(problem[-3:])
        if method == "squash" and bot.ok("diff", "--cached", "--quiet"):
            return bot.out("rev-parse", "HEAD"), ""  # nothing new to bring in
        bot.run("commit", "--no-verify", "-m", message)
        return bot.out("rev-parse", "HEAD"), ""

    def _mark_merged(self, record: LocalPullRequestRecord, tip: str, merge_sha: str) -> None:
        record.state = PullRequestState.merged
        record.head_sha = tip
        record.merge_sha = merge_sha
        record.merged_at = _now()
        self._save(record)
        self._git.run("update-ref", self._pull_ref(record.number), tip)

    def _mark_workspace(self, dest: Path, branch: str) -> None:
        """Note in the worktree's own git folder that this forge made it, so deleting `branch` may remove it."""
        admin = Path(self._git.at(dest).out("rev-parse", "--absolute-git-dir"))
        (admin / WORKSPACE_MARKER).write_text(f"{branch}\n")

    def _is_workspace(self, tree: Path) -> bool:
        found = self._git.at(tree).run("rev-parse", "--absolute-git-dir", check=False)
        return found.ok and (Path(found.stdout.strip()) / WORKSPACE_MARKER).is_file()

    def _refresh_head(self, record: LocalPullRequestRecord, head: str) -> None:
        """Keep the record and its pull ref on the branch tip, as a push updates a GitHub PR."""
        if record.head_sha != head:
            record.head_sha = head
            self._save(record)
        self._git.run("update-ref", self._pull_ref(record.number), head)

    def _as_pull_request(self, record: LocalPullRequestRecord) -> PullRequest:
        return PullRequest(
            number=record.number,
            branch=record.branch,
            base=record.base,
            head_sha=record.head_sha,
            url=self._record_file(record.number).as_uri(),
            state=record.state,
            title=record.title,
        )

    def _pull_ref(self, number: int) -> str:
        return f"{PULL_REF_PREFIX}/{number}/head"

    def _record_file(self, number: int) -> Path:
        return self._pulls_dir / f"{number}.json"

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """One writer at a time across threads and processes (flock locks are per open file)."""
        self._pulls_dir.mkdir(parents=True, exist_ok=True)
        with open(self._state_dir / "lock", "a+") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def _load(self, number: int) -> LocalPullRequestRecord | None:
        path = self._record_file(number)
        try:
            text = path.read_text()
        except FileNotFoundError:
            return None
        try:
            return LocalPullRequestRecord.model_validate_json(text)
        except ValidationError as exc:
            raise ForgeError(f"the pull request record {path} is damaged ({exc}); fix or delete the file") from exc

    def _require(self, number: int) -> LocalPullRequestRecord:
        record = self._load(number)
        if record is None:
            raise ForgeError(f"no pull request #{number} in {self.path} (looked for {self._record_file(number)})")
        return record

    def _records(self) -> list[LocalPullRequestRecord]:
        if not self._pulls_dir.is_dir():
            return []
        numbers = sorted(int(p.stem) for p in self._pulls_dir.glob("*.json") if p.stem.isdigit())
        return [r for r in (self._load(n) for n in numbers) if r is not None]

    def _save(self, record: LocalPullRequestRecord) -> None:
        """Write to a temporary file and rename it, so readers never see half a record."""
        record.updated_at = _now()
        self._pulls_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self._pulls_dir, prefix=f".{record.number}.", suffix=".tmp")
        with os.fdopen(fd, "w") as handle:
            handle.write(record.model_dump_json(indent=2))
        os.replace(tmp, self._record_file(record.number))

    def _update(self, number: int, change: Callable[[LocalPullRequestRecord], bool]) -> LocalPullRequestRecord:
        with self._locked():
            record = self._require(number)
            if change(record):
                self._save(record)
            return record

    def _add_note(self, issue_number: int | None, body: str) -> None:
        with self._locked():
            notes = self.list_notes()
            if notes and (notes[-1].issue_number, notes[-1].body) == (issue_number, body):
                return
            note = LocalNote(issue_number=issue_number, author=BOT_NAME, body=body, created_at=_now())
            with open(self._state_dir / "notes.jsonl", "a") as handle:
                handle.write(json.dumps(note.model_dump(mode="json")) + "\n")


def _open_repository(path: Path) -> tuple[Path, Path]:
    """The repository's top folder and its common git folder, or a ForgeError that says what to do."""
    path = path.expanduser()
    if not path.exists():
        raise ForgeError(
            f"the local repository {path} does not exist; create it (`git init {path}` and a first commit) "
            "or point spec2ship at an existing repository"
        )
    if not path.is_dir():
        raise ForgeError(f"the local repository {path} is a file, not a folder; point spec2ship at a git repository")
    path = path.resolve()
    git = Git(path)
    probe = git.run("rev-parse", "--is-bare-repository", check=False)
    if not probe.ok:
        raise ForgeError(
            f"{path} is not a git repository; run `git init` there and make a first commit, "
            "or point spec2ship at an existing repository"
        )
    if probe.stdout.strip() == "true":
        top = Path(git.out("rev-parse", "--absolute-git-dir"))
    else:
        top = Path(git.out("rev-parse", "--show-toplevel"))
    if top.resolve() != path:
        raise ForgeError(
            f"{path} is inside the git repository {top} but is not its top folder; point spec2ship at {top}"
        )
    common = Path(git.out("rev-parse", "--path-format=absolute", "--git-common-dir"))
    return path, common.resolve()


def _repo_relative(path: str) -> str:
    """A path inside the repository, in git's form; refuses absolute paths and escapes with `..`."""
    pure = PurePosixPath(path.replace("\\", "/"))
    if pure.is_absolute() or ".." in pure.parts or not pure.parts or str(pure) == ".":
        raise ForgeError(f"{path!r} is not a file path inside the repository; give it relative to the repo root")
    return str(pure)


def list_pull_requests(repo_path: Path | str) -> list[LocalPullRequestRecord]:
    """Every pull request record of a local repository, oldest first (for the CLI and tests)."""
    return LocalForge(repo_path).list_pull_requests()


def get_pull_request_record(repo_path: Path | str, number: int) -> LocalPullRequestRecord | None:
    """One pull request record with its comments, statuses and evidence, or None when there is none."""
    return LocalForge(repo_path).get_pull_request_record(number)


def list_notes(repo_path: Path | str) -> list[LocalNote]:
    """Comments that had no pull request to go on (a local repository has no issues)."""
    return LocalForge(repo_path).list_notes()
