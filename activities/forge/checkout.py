"""Keeping a person's checkout in step when the local forge moves the branch it has checked out.

git never moves a branch under a worktree behind its back: `git merge --ff-only` in that worktree
updates the files the merge changes, keeps every other uncommitted change (staged, unstaged, untracked),
and refuses when an uncommitted change is in the way. The local forge makes its merge commit elsewhere
(a throwaway worktree), so it does the same by hand: `git read-tree -m -u OLD NEW` in each worktree that
has the branch checked out, then one move of the ref that checks its old value. Moving only the ref, as
the forge once did, leaves the worktree's index on the old tree: `git status` then shows the merge as a
staged undo, which the next careless `git commit` records.

Where this is stricter than git, it is to keep a person's data: an ignored file where the merge puts a
file blocks the merge (git would overwrite it, and ignored files are things like `.env`), and a branch
being rebased in some worktree is never moved (the rebase would fail at its end).
"""

from __future__ import annotations

import logging
import os
import shlex
from pathlib import Path, PurePosixPath

from pydantic import BaseModel, Field

from activities.forge.base import ForgeError
from activities.forge.gitcli import Git, GitError

log = logging.getLogger(__name__)

# Operations that leave HEAD on the branch but expect it to stay where they found it.
_IN_PROGRESS = {
    "MERGE_HEAD": ("a merge", "finish it (`git commit`) or abort it (`git merge --abort`)"),
    "CHERRY_PICK_HEAD": ("a cherry-pick", "finish it (`git cherry-pick --continue`) or abort it "
                         "(`git cherry-pick --abort`)"),
    "REVERT_HEAD": ("a revert", "finish it (`git revert --continue`) or abort it (`git revert --abort`)"),
}
_REBASE_DIRS = ("rebase-merge", "rebase-apply")
_UNMERGED = {"DD", "AU", "UD", "UA", "DU", "AA", "UU"}
_UNMERGED_WHY = "unmerged: a conflict is being resolved"
_LISTED = 10  # paths named in a message; `blocking_paths` has them all
# Ask git about paths exactly as written (no globs), and never take locks in a person's worktree to ask.
_LITERAL = {"GIT_LITERAL_PATHSPECS": "1", "GIT_OPTIONAL_LOCKS": "0"}


class Holder(BaseModel):
    """A worktree with the branch checked out, or with a rebase of it under way."""

    path: Path
    git_dir: Path
    rebasing: bool = False


class BlockedPath(BaseModel):
    path: str
    why: str
    ignored: bool = False


class CheckoutBlock(BaseModel):
    """Why a checkout cannot be brought along, so the branch must not move: files in the way, or an
    operation in progress (`problem`, which says how to end it)."""

    worktree: Path
    branch: str
    paths: list[BlockedPath] = Field(default_factory=list)
    problem: str = ""

    def describe(self, old: str) -> str:
        """What happened, where, and what to do next, for the run's status and the CLI."""
        where = f"{self.branch} is checked out in {self.worktree}"
        kept = f"Nothing was merged: {self.branch} is still at {old[:12]}."
        again = "then approve the run again to merge"
        if not self.paths:
            return f"{where}, and {self.problem}. {kept} Do that there, {again}."
        listed = ", ".join(f"{p.path} ({p.why})" for p in self.paths[:_LISTED])
        if len(self.paths) > _LISTED:
            listed += f" and {len(self.paths) - _LISTED} more"
        return (
            f"{where}, where uncommitted changes are in the way of this merge: {listed}. {kept} Commit or stash "
            f"those changes there (`{self.stash_command()}`), {again}."
        )

    def stash_command(self) -> str:
        everything = "--all" if any(p.ignored for p in self.paths) else "--include-untracked"
        command = f"git -C {shlex.quote(str(self.worktree))} stash push {everything}"
        if len(self.paths) > _LISTED:
            return command
        return f"{command} -- {' '.join(shlex.quote(p.path) for p in self.paths)}"


def holders_of(git: Git, branch: str) -> list[Holder]:
    """Every worktree of the repository that has `branch` checked out or is rebasing it (git allows
    one, or more with `--force`); none for a bare repository or a branch nobody has checked out."""
    found: list[Holder] = []
    for tree in git.worktrees():
        if tree.bare or tree.prunable or not tree.path.is_dir():
            continue
        if tree.branch == branch:
            found.append(Holder(path=tree.path, git_dir=_git_dir(git, tree.path)))
        elif tree.detached:
            git_dir = _git_dir(git, tree.path)
            if _rebasing(git_dir) == f"refs/heads/{branch}":
                found.append(Holder(path=tree.path, git_dir=git_dir, rebasing=True))
    return found


def find_block(git: Git, holder: Holder, branch: str, old: str, new: str) -> CheckoutBlock | None:
    """What in `holder` stops it following `branch` from `old` to `new`, or None when nothing does.

    A file the merge changes is in the way when it has uncommitted changes (unless they already are
    exactly what the merge brings, as after a merge interrupted between checkout and ref move), or when
    something untracked or ignored sits where the merge puts a file. git's own dry run has the last word.
    """
    block = CheckoutBlock(worktree=holder.path, branch=branch)
    if holder.rebasing:
        block.problem = (f"a rebase of {branch} is under way there; finish it (`git rebase --continue`) or abort it "
                         "(`git rebase --abort`)")
        return block
    for marker, (what, how) in _IN_PROGRESS.items():
        if (holder.git_dir / marker).exists():
            block.problem = f"{what} is in progress there; {how}"
            return block
    at = git.at(holder.path).as_bot()
    touched = _changed(at, old, new)
    wanted = touched | {parent for path in touched for parent in _parents(path)}
    uncommitted = _uncommitted(at)
    dirty = sorted(path for path in wanted if path in uncommitted)
    settled = _already(at, new, [p for p in dirty if p in touched and uncommitted[p] != _UNMERGED_WHY])
    block.paths = [BlockedPath(path=p, why=uncommitted[p]) for p in dirty if p not in settled]
    block.paths += _untracked_in_the_way(at, holder.path, sorted(wanted - set(uncommitted)), touched)
    block.paths.sort(key=lambda blocked: blocked.path)
    if block.paths:
        return block
    try:
        at.run("read-tree", "-m", "-u", "-n", old, new)
    except GitError as error:
        if error.retryable:  # someone holds the index lock: the next attempt will do
            raise
        block.problem = _git_refusal(error)
        return block
    return None


def follow(git: Git, holders: list[Holder], branch: str, old: str, new: str, reason: str) -> CheckoutBlock | None:
    """Bring every holder's index and files from `old` to `new`, then move `branch` (its old value
    checked). A worktree git refuses at the last moment (a person was editing) undoes the ones done
    before it and is returned as a block; a ref moved meanwhile undoes them all and is a retryable error.
    """
    moved: list[Holder] = []
    for holder in holders:
        try:
            git.at(holder.path).as_bot().run("read-tree", "-m", "-u", old, new)
        except GitError as error:
            _undo(git, moved, old, new)
            if error.retryable:  # someone holds the index lock: the next attempt will do
                raise
            return CheckoutBlock(worktree=holder.path, branch=branch, problem=_git_refusal(error))
        moved.append(holder)
    try:
        git.run("update-ref", "-m", reason, f"refs/heads/{branch}", new, old)
    except GitError as error:
        _undo(git, moved, old, new)
        raise ForgeError(
            f"{branch} moved while the pull request was being merged; try the merge again ({error})", retryable=True
        ) from error
    return None


def _git_dir(git: Git, worktree: Path) -> Path:
    return Path(git.at(worktree).out("rev-parse", "--absolute-git-dir"))


def _rebasing(git_dir: Path) -> str | None:
    for folder in _REBASE_DIRS:
        head_name = git_dir / folder / "head-name"
        if head_name.is_file():
            return head_name.read_text().strip()
    return None


def _changed(git: Git, old: str, new: str) -> set[str]:
    out = git.run("diff", "--name-only", "-z", "--no-renames", "--no-ext-diff", old, new).stdout
    return {path for path in out.split("\0") if path}


def _parents(path: str) -> list[str]:
    return [str(parent) for parent in PurePosixPath(path).parents if str(parent) != "."]


def _uncommitted(git: Git) -> dict[str, str]:
    """Tracked paths with uncommitted changes, each with how it is changed, as `git status` sees them."""
    out = git.run("status", "--porcelain=v1", "-z", "--untracked-files=no", "--no-renames", env=_LITERAL).stdout
    found: dict[str, str] = {}
    for entry in out.split("\0"):
        if len(entry) < 4:
            continue
        xy, path = entry[:2], entry[3:]
        if xy in _UNMERGED:
            found[path] = _UNMERGED_WHY
        elif xy[0] != " " and xy[1] != " ":
            found[path] = "staged, and changed again since"
        elif xy[0] != " ":
            found[path] = "staged"
        else:
            found[path] = "deleted, not staged" if xy[1] == "D" else "changed, not staged"
    return found


def _already(git: Git, new: str, paths: list[str]) -> set[str]:
    """Of `paths`, those whose index entry and file already are exactly what `new` holds."""
    if not paths:
        return set()
    differ = set()
    for cached in ([], ["--cached"]):
        out = git.run("diff", *cached, "--name-only", "-z", "--no-renames", "--no-ext-diff", new, "--", *paths,
                      env=_LITERAL).stdout
        differ |= {path for path in out.split("\0") if path}
    return set(paths) - differ


def _untracked_in_the_way(git: Git, root: Path, candidates: list[str], touched: set[str]) -> list[BlockedPath]:
    """Files git does not track (untracked or ignored) where the merge puts, or removes, a file.

    A folder where the merge puts files underneath is no obstacle; one where the merge puts a file is
    left to git's dry run, which knows whether anything in it is untracked.
    """
    present = [p for p in candidates if os.path.lexists(root / p) and not (root / p).is_dir()]
    if not present:
        return []
    listed = git.run("ls-files", "-z", "--", *present, env=_LITERAL).stdout
    tracked = {path for path in listed.split("\0") if path}
    strangers = [p for p in present if p not in tracked]
    if not strangers:
        return []
    check = git.run("check-ignore", "-z", "--stdin", "--no-index", input="\0".join(strangers) + "\0",
                    check=False)  # takes paths, not pathspecs (and refuses the literal setting)
    ignored = {path for path in check.stdout.split("\0") if path}
    blocked: list[BlockedPath] = []
    for path in strangers:
        what = "ignored" if path in ignored else "untracked"
        why = f"{what}; the merge would overwrite it" if path in touched else f"{what}; the merge needs a folder here"
        blocked.append(BlockedPath(path=path, why=why, ignored=path in ignored))
    return blocked


def _undo(git: Git, moved: list[Holder], old: str, new: str) -> None:
    for holder in reversed(moved):
        try:
            git.at(holder.path).as_bot().run("read-tree", "-m", "-u", new, old)
        except GitError as error:
            log.warning("could not put %s back on %s after a refused merge: %s", holder.path, old[:12], error)


def _git_refusal(error: GitError, limit: int = 3) -> str:
    lines = [line.strip() for line in error.stderr.strip().splitlines() if line.strip()]
    said = "; ".join(lines[:limit]) or "no reason given"
    return f"git would not update its files ({said}); commit or stash the changes git names"
