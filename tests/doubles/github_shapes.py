"""Render the fake's state as GitHub's JSON: one function per schema of GitHub's OpenAPI description
(`components/schemas/<name>`), every required property present with the documented type and nullability,
filled with generated data. The contract test validates each rendered body against the description, so a
shape that drifts from GitHub's fails there, not in production.
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

from doubles.github_state import App, Comment, Installation, Issue, Label, Repo, Role, Status, User

Json = dict[str, Any]

DOCS = "https://docs.github.com/rest"


def stamp(moment: datetime | None) -> str | None:
    return None if moment is None else moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def node_id(kind: str, number: int) -> str:
    return base64.b64encode(f"0:{kind}{number}".encode()).decode()


class Shapes:
    """Renders with the fake's own URLs: `api` is the REST base, `web` the HTML and git base."""

    def __init__(self, api: str, web: str) -> None:
        self.api = api.rstrip("/")
        self.web = web.rstrip("/")

    # --- users and apps ---------------------------------------------------------------------

    def simple_user(self, user: User) -> Json:
        """`simple-user` (also `nullable-simple-user`)."""
        url = f"{self.api}/users/{user.login}"
        return {
            "login": user.login,
            "id": user.id,
            "node_id": node_id("User", user.id),
            "avatar_url": f"https://avatars.githubusercontent.com/u/{user.id}?v=4",
            "gravatar_id": "",
            "url": url,
            "html_url": f"{self.web}/{user.login}",
            "followers_url": f"{url}/followers",
            "following_url": f"{url}/following{{/other_user}}",
            "gists_url": f"{url}/gists{{/gist_id}}",
            "starred_url": f"{url}/starred{{/owner}}{{/repo}}",
            "subscriptions_url": f"{url}/subscriptions",
            "organizations_url": f"{url}/orgs",
            "repos_url": f"{url}/repos",
            "events_url": f"{url}/events{{/privacy}}",
            "received_events_url": f"{url}/received_events",
            "type": user.type,
            "user_view_type": "public",
            "site_admin": False,
        }

    def private_user(self, user: User) -> Json:
        """`private-user`: GET /user for a personal token."""
        return {
            **self.simple_user(user),
            "user_view_type": "private",
            "name": user.name,
            "company": None,
            "blog": "",
            "location": None,
            "email": None,
            "hireable": None,
            "bio": None,
            "public_repos": 1,
            "public_gists": 0,
            "followers": 0,
            "following": 0,
            "created_at": "2020-01-01T00:00:00Z",
            "updated_at": "2020-01-01T00:00:00Z",
            "private_gists": 0,
            "total_private_repos": 1,
            "owned_private_repos": 1,
            "disk_usage": 10,
            "collaborators": 0,
            "two_factor_authentication": True,
        }

    def collaborator(self, user: User, role: Role | None) -> Json:
        """`collaborator` (the `user` of a permission answer)."""
        rank = ["read", "triage", "write", "maintain", "admin"]
        level = rank.index(role.value) if role is not None else -1
        return {
            **self.simple_user(user),
            "permissions": {
                "pull": level >= 0,
                "triage": level >= 1,
                "push": level >= 2,
                "maintain": level >= 3,
                "admin": level >= 4,
            },
            "role_name": role.value if role is not None else "none",
        }

    def permission(self, user: User, role: Role | None) -> Json:
        """`repository-collaborator-permission`."""
        return {
            "permission": role.legacy if role is not None else "none",
            "role_name": role.value if role is not None else "none",
            "user": self.collaborator(user, role),
        }

    def integration(self, app: App) -> Json:
        """`integration`: GET /app."""
        return {
            "id": app.id,
            "slug": app.slug,
            "node_id": node_id("App", app.id),
            "client_id": f"Iv1.{app.id:016x}",
            "owner": self.simple_user(app.owner),
            "name": app.name,
            "description": "spec2ship test app",
            "external_url": f"{self.web}/apps/{app.slug}",
            "html_url": f"{self.web}/apps/{app.slug}",
            "created_at": "2020-01-01T00:00:00Z",
            "updated_at": "2020-01-01T00:00:00Z",
            "permissions": {"issues": "write", "metadata": "read", "contents": "write", "checks": "write"},
            "events": ["issues", "issue_comment", "pull_request"],
            "installations_count": 1,
        }

    def installation(self, installation: Installation) -> Json:
        """`installation`: GET /repos/{owner}/{repo}/installation."""
        return {
            "id": installation.id,
            "account": self.simple_user(installation.account),
            "repository_selection": "selected",
            "access_tokens_url": f"{self.api}/app/installations/{installation.id}/access_tokens",
            "repositories_url": f"{self.api}/installation/repositories",
            "html_url": f"{self.web}/settings/installations/{installation.id}",
            "app_id": installation.app.id,
            "app_slug": installation.app.slug,
            "target_id": installation.account.id,
            "target_type": installation.account.type,
            "permissions": {"contents": "write", "issues": "write", "pull_requests": "write", "statuses": "write"},
            "events": ["issues", "issue_comment", "pull_request"],
            "created_at": stamp(installation.created_at),
            "updated_at": stamp(installation.created_at),
            "single_file_name": None,
            "suspended_by": None,
            "suspended_at": None,
        }

    def installation_token(self, token: str, expires_at: datetime) -> Json:
        """`installation-token`: POST /app/installations/{id}/access_tokens."""
        return {
            "token": token,
            "expires_at": stamp(expires_at),
            "permissions": {"contents": "write", "issues": "write", "pull_requests": "write", "statuses": "write"},
            "repository_selection": "selected",
        }

    # --- repositories -----------------------------------------------------------------------

    def repository(self, repo: Repo, *, full: bool = False) -> Json:
        """`repository`, or `full-repository` when `full` (GET /repos/{owner}/{repo})."""
        api = f"{self.api}/repos/{repo.full_name}"
        templates = {
            "forks_url": "/forks",
            "keys_url": "/keys{/key_id}",
            "collaborators_url": "/collaborators{/collaborator}",
            "teams_url": "/teams",
            "hooks_url": "/hooks",
            "issue_events_url": "/issues/events{/number}",
            "events_url": "/events",
            "assignees_url": "/assignees{/user}",
            "branches_url": "/branches{/branch}",
            "tags_url": "/tags",
            "blobs_url": "/git/blobs{/sha}",
            "git_tags_url": "/git/tags{/sha}",
            "git_refs_url": "/git/refs{/sha}",
            "trees_url": "/git/trees{/sha}",
            "statuses_url": "/statuses/{sha}",
            "languages_url": "/languages",
            "stargazers_url": "/stargazers",
            "contributors_url": "/contributors",
            "subscribers_url": "/subscribers",
            "subscription_url": "/subscription",
            "commits_url": "/commits{/sha}",
            "git_commits_url": "/git/commits{/sha}",
            "comments_url": "/comments{/number}",
            "issue_comment_url": "/issues/comments{/number}",
            "contents_url": "/contents/{+path}",
            "compare_url": "/compare/{base}...{head}",
            "merges_url": "/merges",
            "archive_url": "/{archive_format}{/ref}",
            "downloads_url": "/downloads",
            "issues_url": "/issues{/number}",
            "pulls_url": "/pulls{/number}",
            "milestones_url": "/milestones{/number}",
            "notifications_url": "/notifications{?since,all,participating}",
            "labels_url": "/labels{/name}",
            "releases_url": "/releases{/id}",
            "deployments_url": "/deployments",
        }
        host = self.web.split("://", 1)[-1]
        open_issues = sum(1 for issue in repo.issues.values() if issue.state == "open")
        body: Json = {
            "id": repo.id,
            "node_id": node_id("Repository", repo.id),
            "name": repo.name,
            "full_name": repo.full_name,
            "private": repo.private,
            "owner": self.simple_user(repo.owner),
            "html_url": f"{self.web}/{repo.full_name}",
            "description": None,
            "fork": False,
            "url": api,
            **{key: api + suffix for key, suffix in templates.items()},
            "git_url": f"git://{host}/{repo.full_name}.git",
            "ssh_url": f"git@{host}:{repo.full_name}.git",
            "clone_url": f"{self.web}/{repo.full_name}.git",
            "svn_url": f"{self.web}/{repo.full_name}",
            "mirror_url": None,
            "homepage": None,
            "language": "Python",
            "forks_count": 0,
            "stargazers_count": 0,
            "watchers_count": 0,
            "size": 1,
            "default_branch": repo.default_branch,
            "open_issues_count": open_issues,
            "is_template": False,
            "topics": [],
            "has_issues": True,
            "has_projects": False,
            "has_wiki": False,
            "has_pages": False,
            "has_downloads": True,
            "has_discussions": False,
            "archived": False,
            "disabled": False,
            "visibility": "private" if repo.private else "public",
            "pushed_at": stamp(repo.created_at),
            "created_at": stamp(repo.created_at),
            "updated_at": stamp(repo.created_at),
            "permissions": {"admin": True, "maintain": True, "push": True, "triage": True, "pull": True},
            "allow_rebase_merge": True,
            "allow_squash_merge": True,
            "allow_merge_commit": True,
            "allow_auto_merge": False,
            "delete_branch_on_merge": False,
            "allow_update_branch": False,
            "use_squash_pr_title_as_default": False,
            "allow_forking": True,
            "web_commit_signoff_required": False,
            "license": None,
            "forks": 0,
            "open_issues": open_issues,
            "watchers": 0,
        }
        if full:
            body.update({"network_count": 0, "subscribers_count": 1, "temp_clone_token": ""})
            if repo.owner.type == "Organization":
                body["organization"] = self.simple_user(repo.owner)
        return body

    def content_file(self, repo: Repo, path: str, ref: str, blob_sha: str, data: bytes) -> Json:
        """`content-file`: GET /repos/{owner}/{repo}/contents/{path} for a file."""
        encoded = base64.b64encode(data).decode()
        lines = "\n".join(encoded[i : i + 60] for i in range(0, len(encoded), 60))
        return {
            "type": "file",
            "encoding": "base64",
            "size": len(data),
            "name": path.rsplit("/", 1)[-1],
            "path": path,
            "content": lines + ("\n" if lines else ""),
            "sha": blob_sha,
            **self._content_links(repo, path, ref, blob_sha, "blob"),
            "download_url": f"{self.web}/{repo.full_name}/raw/{ref}/{path}",
        }

    def content_directory(
        self, repo: Repo, path: str, ref: str, entries: list[tuple[str, str, str, int]]
    ) -> list[Json]:
        """`content-directory`: (name, type, sha, size) entries of a tree."""
        items = []
        for name, kind, sha, size in entries:
            child = f"{path}/{name}" if path else name
            items.append(
                {
                    "type": kind,
                    "size": size,
                    "name": name,
                    "path": child,
                    "sha": sha,
                    **self._content_links(repo, child, ref, sha, "blob" if kind == "file" else "tree"),
                    "download_url": f"{self.web}/{repo.full_name}/raw/{ref}/{child}" if kind == "file" else None,
                }
            )
        return items

    def _content_links(self, repo: Repo, path: str, ref: str, sha: str, kind: str) -> Json:
        url = f"{self.api}/repos/{repo.full_name}/contents/{path}?ref={ref}"
        git_url = f"{self.api}/repos/{repo.full_name}/git/{kind}s/{sha}"
        html_url = f"{self.web}/{repo.full_name}/{kind}/{ref}/{path}"
        return {
            "url": url,
            "git_url": git_url,
            "html_url": html_url,
            "_links": {"self": url, "git": git_url, "html": html_url},
        }

    def git_ref(self, repo: Repo, ref: str, sha: str) -> Json:
        """`git-ref`: GET /repos/{owner}/{repo}/git/ref/{ref}."""
        return {
            "ref": f"refs/{ref}",
            "node_id": node_id("Ref", int(sha[:7], 16)),
            "url": f"{self.api}/repos/{repo.full_name}/git/refs/{ref}",
            "object": {"type": "commit", "sha": sha, "url": f"{self.api}/repos/{repo.full_name}/git/commits/{sha}"},
        }

    # --- issues, labels, comments ------------------------------------------------------------

    def label(self, repo: Repo, label: Label) -> Json:
        """`label`."""
        return {
            "id": label.id,
            "node_id": node_id("Label", label.id),
            "url": f"{self.api}/repos/{repo.full_name}/labels/{label.name}",
            "name": label.name,
            "description": label.description,
            "color": label.color,
            "default": False,
        }

    def labels_of(self, repo: Repo, issue: Issue) -> list[Json]:
        return [self.label(repo, repo.labels[name.lower()]) for name in issue.labels]

    def issue(self, repo: Repo, issue: Issue) -> Json:
        """`issue` (pull requests are issues too, with a `pull_request` member)."""
        api = f"{self.api}/repos/{repo.full_name}"
        url = f"{api}/issues/{issue.number}"
        body: Json = {
            "id": issue.id,
            "node_id": node_id("Issue", issue.id),
            "url": url,
            "repository_url": api,
            "labels_url": f"{url}/labels{{/name}}",
            "comments_url": f"{url}/comments",
            "events_url": f"{url}/events",
            "html_url": f"{self.web}/{repo.full_name}/{'pull' if issue.pull else 'issues'}/{issue.number}",
            "number": issue.number,
            "state": issue.state,
            "title": issue.title,
            "body": issue.body,
            "user": self.simple_user(issue.user),
            "labels": self.labels_of(repo, issue),
            "assignee": None,
            "assignees": [],
            "milestone": None,
            "locked": False,
            "active_lock_reason": None,
            "comments": sum(1 for comment in repo.comments.values() if comment.issue_number == issue.number),
            "closed_at": stamp(issue.closed_at),
            "created_at": stamp(issue.created_at),
            "updated_at": stamp(issue.updated_at),
            "closed_by": None,
            "author_association": "OWNER" if issue.user is repo.owner else "COLLABORATOR",
            "reactions": self._reactions(f"{url}/reactions"),
            "timeline_url": f"{url}/timeline",
            "performed_via_github_app": None,
        }
        if issue.state == "closed":
            # nullable in the description, but its enum lacks null, so an open issue leaves it out
            body["state_reason"] = "completed"
        if issue.pull is not None:
            body["pull_request"] = {
                "url": f"{api}/pulls/{issue.number}",
                "html_url": f"{self.web}/{repo.full_name}/pull/{issue.number}",
                "diff_url": f"{self.web}/{repo.full_name}/pull/{issue.number}.diff",
                "patch_url": f"{self.web}/{repo.full_name}/pull/{issue.number}.patch",
                "merged_at": stamp(issue.pull.merged_at),
            }
        return body

    def comment(self, repo: Repo, comment: Comment) -> Json:
        """`issue-comment`."""
        api = f"{self.api}/repos/{repo.full_name}"
        kind = "pull" if repo.issues[comment.issue_number].pull else "issues"
        return {
            "id": comment.id,
            "node_id": node_id("IssueComment", comment.id),
            "url": f"{api}/issues/comments/{comment.id}",
            "html_url": f"{self.web}/{repo.full_name}/{kind}/{comment.issue_number}#issuecomment-{comment.id}",
            "body": comment.body,
            "user": self.simple_user(comment.user),
            "created_at": stamp(comment.created_at),
            "updated_at": stamp(comment.updated_at),
            "issue_url": f"{api}/issues/{comment.issue_number}",
            "author_association": "OWNER" if comment.user is repo.owner else "NONE",
            "reactions": self._reactions(f"{api}/issues/comments/{comment.id}/reactions"),
            "performed_via_github_app": None,
        }

    @staticmethod
    def _reactions(url: str) -> Json:
        counts = dict.fromkeys(["+1", "-1", "laugh", "confused", "heart", "hooray", "eyes", "rocket"], 0)
        return {"url": url, "total_count": 0, **counts}

    # --- pull requests -------------------------------------------------------------------------

    def pull_request(
        self,
        repo: Repo,
        issue: Issue,
        *,
        head_sha: str,
        base_sha: str,
        stats: tuple[int, int, int, int] | None = None,
    ) -> Json:
        """`pull-request`, or `pull-request-simple` (the list form) when `stats` is None.

        `stats` is (commits, additions, deletions, changed_files) for the full form.
        """
        pull = issue.pull
        assert pull is not None
        api = f"{self.api}/repos/{repo.full_name}"
        url = f"{api}/pulls/{issue.number}"
        html = f"{self.web}/{repo.full_name}/pull/{issue.number}"
        repo_json = self.repository(repo)

        def side(ref: str, sha: str) -> Json:
            return {
                "label": f"{repo.owner.login}:{ref}",
                "ref": ref,
                "sha": sha,
                "user": self.simple_user(repo.owner),
                "repo": repo_json,
            }

        body: Json = {
            "url": url,
            "id": issue.id,
            "node_id": node_id("PullRequest", issue.id),
            "html_url": html,
            "diff_url": f"{html}.diff",
            "patch_url": f"{html}.patch",
            "issue_url": f"{api}/issues/{issue.number}",
            "commits_url": f"{url}/commits",
            "review_comments_url": f"{url}/comments",
            "review_comment_url": f"{api}/pulls/comments{{/number}}",
            "comments_url": f"{api}/issues/{issue.number}/comments",
            "statuses_url": f"{api}/statuses/{head_sha}",
            "number": issue.number,
            "state": issue.state,
            "locked": False,
            "title": issue.title,
            "user": self.simple_user(issue.user),
            "body": issue.body,
            "labels": self.labels_of(repo, issue),
            "milestone": None,
            "active_lock_reason": None,
            "created_at": stamp(issue.created_at),
            "updated_at": stamp(issue.updated_at),
            "closed_at": stamp(issue.closed_at),
            "merged_at": stamp(pull.merged_at),
            "merge_commit_sha": pull.merge_commit_sha,
            "assignee": None,
            "assignees": [],
            "requested_reviewers": [],
            "requested_teams": [],
            "head": side(pull.head_ref, head_sha),
            "base": side(pull.base_ref, base_sha),
            "_links": {
                name: {"href": href}
                for name, href in {
                    "self": url,
                    "html": html,
                    "issue": f"{api}/issues/{issue.number}",
                    "comments": f"{api}/issues/{issue.number}/comments",
                    "review_comments": f"{url}/comments",
                    "review_comment": f"{api}/pulls/comments{{/number}}",
                    "commits": f"{url}/commits",
                    "statuses": f"{api}/statuses/{head_sha}",
                }.items()
            },
            "author_association": "OWNER" if issue.user is repo.owner else "COLLABORATOR",
            "auto_merge": None,
            "draft": False,
        }
        if stats is not None:
            commits, additions, deletions, changed = stats
            open_ = issue.state == "open"
            body.update(
                {
                    "merged": pull.merged,
                    "mergeable": pull.mergeable if open_ else None,
                    "rebaseable": pull.mergeable if open_ else None,
                    "mergeable_state": ("clean" if pull.mergeable else "dirty") if open_ else "unknown",
                    "merged_by": self.simple_user(pull.merged_by) if pull.merged_by else None,
                    "comments": sum(1 for c in repo.comments.values() if c.issue_number == issue.number),
                    "review_comments": 0,
                    "maintainer_can_modify": False,
                    "commits": commits,
                    "additions": additions,
                    "deletions": deletions,
                    "changed_files": changed,
                }
            )
        return body

    @staticmethod
    def merge_result(sha: str, message: str = "Pull Request successfully merged") -> Json:
        """`pull-request-merge-result`."""
        return {"sha": sha, "merged": True, "message": message}

    # --- statuses and errors -----------------------------------------------------------------

    def status(self, repo: Repo, status: Status) -> Json:
        """`status`: POST /repos/{owner}/{repo}/statuses/{sha}."""
        return {
            "url": f"{self.api}/repos/{repo.full_name}/statuses/{status.sha}",
            "avatar_url": f"https://avatars.githubusercontent.com/u/{status.creator.id}?v=4",
            "id": status.id,
            "node_id": node_id("StatusContext", status.id),
            "state": status.state,
            "description": status.description,
            "target_url": status.target_url,
            "context": status.context,
            "created_at": stamp(status.created_at),
            "updated_at": stamp(status.created_at),
            "creator": self.simple_user(status.creator),
        }

    @staticmethod
    def error(message: str, status: int | None = None, section: str = "") -> Json:
        """`basic-error` (GitHub's 4xx/5xx body)."""
        body: Json = {"message": message, "documentation_url": f"{DOCS}{section}"}
        if status is not None:
            body["status"] = str(status)
        return body

    @staticmethod
    def validation_error(resource: str, code: str, *, field: str | None = None, message: str | None = None) -> Json:
        """`validation-error` (422)."""
        error: Json = {"resource": resource, "code": code}
        if field is not None:
            error["field"] = field
        if message is not None:
            error["message"] = message
        return {"message": "Validation Failed", "errors": [error], "documentation_url": DOCS, "status": "422"}
