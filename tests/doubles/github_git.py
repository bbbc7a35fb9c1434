"""The git side of the fake GitHub: one bare repository per fake repo, served over git's smart HTTP
protocol by the real `git http-backend` (CGI), and merges done for real in a temporary worktree.

Real git on both ends means clone, fetch and push in the forge adapter are tested as they run against
github.com, with no git behaviour imitated here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from activities.forge.gitcli import Git

BOT_ENV = {
    "GIT_AUTHOR_NAME": "GitHub",
    "GIT_AUTHOR_EMAIL": "noreply@github.com",
    "GIT_COMMITTER_NAME": "GitHub",
    "GIT_COMMITTER_EMAIL": "noreply@github.com",
}


class GitFailed(RuntimeError):
    pass


def git(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    """Run git with no user or system configuration, so the machine's settings cannot leak in.

    (Bytes-level plumbing below, `cat-file` of binary blobs and the `http-backend` CGI, runs git directly.)
    """
    full_env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(cwd or Path.cwd()),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "LC_ALL": "C",
        **BOT_ENV,
        **(env or {}),
    }
    result = Git(cwd or Path.cwd(), base_env=full_env).run(*args, check=False)
    if not result.ok:
        raise GitFailed(f"git {' '.join(args)} failed in {cwd}: {result.stderr.strip()}")
    return result.stdout.strip()


def create_bare(
    bare: Path, default_branch: str, files: Mapping[str, str | bytes], message: str = "Initial commit"
) -> str:
    """A bare repository whose default branch holds `files` in one commit; returns that commit's sha."""
    bare.parent.mkdir(parents=True, exist_ok=True)
    git("init", "--bare", "--quiet", f"--initial-branch={default_branch}", str(bare))
    git("config", "http.receivepack", "true", cwd=bare)
    git("config", "uploadpack.allowFilter", "true", cwd=bare)
    with tempfile.TemporaryDirectory(prefix="fake-github-seed-") as tmp:
        work = Path(tmp)
        git("init", "--quiet", f"--initial-branch={default_branch}", cwd=work)
        for path, content in (files or {"README.md": "# fake\n"}).items():
            target = work / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content.encode() if isinstance(content, str) else content)
        git("add", "-A", cwd=work)
        git("commit", "--quiet", "-m", message, cwd=work)
        git("push", "--quiet", str(bare), f"HEAD:refs/heads/{default_branch}", cwd=work)
        return git("rev-parse", "HEAD", cwd=work)


def rev_parse(bare: Path, ref: str) -> str | None:
    try:
        return git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", cwd=bare)
    except GitFailed:
        return None


def branch_sha(bare: Path, branch: str) -> str | None:
    return rev_parse(bare, f"refs/heads/{branch}")


def delete_branch(bare: Path, branch: str) -> bool:
    if branch_sha(bare, branch) is None:
        return False
    git("update-ref", "-d", f"refs/heads/{branch}", cwd=bare)
    return True


def object_at(bare: Path, ref: str, path: str) -> tuple[str, str] | None:
    """(type, sha) of `path` at `ref`, or None when absent. The root is path ''."""
    spec = f"{ref}:{path}" if path else f"{ref}^{{tree}}"
    try:
        sha = git("rev-parse", "--verify", "--quiet", spec, cwd=bare)
        return git("cat-file", "-t", sha, cwd=bare), sha
    except GitFailed:
        return None


def read_blob(bare: Path, sha: str) -> bytes:
    result = subprocess.run(["git", "cat-file", "blob", sha], cwd=bare, capture_output=True, check=True)
    return result.stdout


def list_tree(bare: Path, sha: str) -> list[tuple[str, str, str, int]]:
    """(name, 'file' | 'dir', sha, size) of each entry of a tree."""
    entries = []
    for line in git("ls-tree", "-l", sha, cwd=bare).splitlines():
        meta, name = line.split("\t", 1)
        _mode, kind, entry_sha, size = meta.split()
        entries.append((name, "file" if kind == "blob" else "dir", entry_sha, int(size) if size.isdigit() else 0))
    return entries


def stats(bare: Path, base: str, head: str) -> tuple[int, int, int, int]:
    """(commits, additions, deletions, changed files) of head against its merge base with base."""
    merge_base = git("merge-base", base, head, cwd=bare)
    commits = int(git("rev-list", "--count", f"{merge_base}..{head}", cwd=bare) or 0)
    additions = deletions = files = 0
    for line in git("diff", "--numstat", merge_base, head, cwd=bare).splitlines():
        added, removed, _path = line.split("\t", 2)
        additions += int(added) if added.isdigit() else 0
        deletions += int(removed) if removed.isdigit() else 0
        files += 1
    return commits, additions, deletions, files


def has_commits_between(bare: Path, base: str, head: str) -> bool:
    return git("rev-list", "--count", f"{base}..{head}", cwd=bare) != "0"


def merge(bare: Path, base_branch: str, head_sha: str, method: str, title: str, message: str) -> str | None:
    """Merge `head_sha` into `base_branch` the way GitHub's three buttons do; returns the new base sha,
    or None when it does not apply cleanly (GitHub answers 405 then)."""
    base_sha = branch_sha(bare, base_branch)
    if base_sha is None:
        return None
    work = Path(tempfile.mkdtemp(prefix="fake-github-merge-"))
    text = f"{title}\n\n{message}".strip()
    try:
        git("worktree", "add", "--detach", "--quiet", str(work), base_sha, cwd=bare)
        try:
            if method == "squash":
                git("merge", "--squash", "--quiet", head_sha, cwd=work)
                git("commit", "--quiet", "--allow-empty", "-m", text, cwd=work)
            elif method == "rebase":
                merge_base = git("merge-base", base_sha, head_sha, cwd=work)
                for sha in git("rev-list", "--reverse", f"{merge_base}..{head_sha}", cwd=work).splitlines():
                    git("cherry-pick", "--allow-empty", sha, cwd=work)
            else:
                git("merge", "--no-ff", "--quiet", "-m", text, head_sha, cwd=work)
        except GitFailed:
            return None
        new_sha = git("rev-parse", "HEAD", cwd=work)
        git("update-ref", f"refs/heads/{base_branch}", new_sha, base_sha, cwd=bare)
        return new_sha
    finally:
        try:
            git("worktree", "remove", "--force", str(work), cwd=bare)
        except GitFailed:
            shutil.rmtree(work, ignore_errors=True)
            git("worktree", "prune", cwd=bare)


@dataclass
class CgiResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


def http_backend(
    project_root: Path,
    path_info: str,
    *,
    method: str,
    query: str,
    content_type: str | None,
    content_encoding: str | None,
    git_protocol: str | None,
    body: bytes,
    remote_user: str,
) -> CgiResponse:
    """Run one smart-HTTP request through `git http-backend` and parse its CGI answer."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_PROJECT_ROOT": str(project_root),
        "GIT_HTTP_EXPORT_ALL": "1",
        "PATH_INFO": path_info,
        "REQUEST_METHOD": method,
        "QUERY_STRING": query,
        "CONTENT_TYPE": content_type or "",
        "CONTENT_LENGTH": str(len(body)),
        "REMOTE_USER": remote_user,
        "REMOTE_ADDR": "127.0.0.1",
        "GATEWAY_INTERFACE": "CGI/1.1",
        "SERVER_PROTOCOL": "HTTP/1.1",
    }
    if content_encoding:
        env["HTTP_CONTENT_ENCODING"] = content_encoding
    if git_protocol:
        env["GIT_PROTOCOL"] = git_protocol
    result = subprocess.run(["git", "http-backend"], env=env, input=body, capture_output=True, check=False)
    raw = result.stdout
    ends = [(raw.find(sep), sep) for sep in (b"\r\n\r\n", b"\n\n") if raw.find(sep) >= 0]
    if ends:
        at, sep = min(ends)
        head, rest = raw[:at], raw[at + len(sep) :]
    else:
        head, rest = raw, b""
    status = 200
    headers: list[tuple[str, str]] = []
    for line in head.decode("latin-1").splitlines():
        if ":" not in line:
            continue
        name, value = (part.strip() for part in line.split(":", 1))
        if name.lower() == "status":
            status = int(value.split()[0])
        else:
            headers.append((name, value))
    if result.returncode != 0 and not raw:
        return CgiResponse(500, [("Content-Type", "text/plain")], result.stderr)
    return CgiResponse(status, headers, rest)
