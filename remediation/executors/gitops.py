"""GitOps: a change is a commit on its own branch, merged into the default branch, pushed.

Exactly once per command: the merge commit carries the trailer ``Revleak-Command: <id>``,
and a command whose trailer is already on the default branch is answered with that merge
instead of a second one. Two writers (threads here, or another replica with its own clone)
are serialised by a lock per repository and by the remote itself: a push that loses the race
is rejected as not a fast-forward, and the loser fetches and looks for the trailer again.
"""

from __future__ import annotations

import os
import re
import subprocess
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

from revleak.remediation.executors.base import ExecutionError
from revleak.remediation.model import GitChange

TRAILER = "Revleak-Command"
GIT_TIMEOUT_S = 120.0
PUSH_ATTEMPTS = 3
STDERR_EXCERPT_CHARS = 500
_REPOSITORY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
# What git says when a push is not a fast-forward of the remote branch (LC_ALL=C).
_LOST_RACE = ("non-fast-forward", "fetch first", "stale info")


class GitOps:
    """Configured repositories: name → remote (a URL, or the path of a bare repository)."""

    def __init__(
        self,
        repositories: Mapping[str, str],
        *,
        workdir: Path,
        author: tuple[str, str] = ("revleak", "revleak@localhost"),
        default_branch: str = "main",
    ) -> None:
        for name in repositories:
            if not _REPOSITORY_NAME.match(name):
                raise ValueError(f"GitOps repository name {name!r} must be letters, digits, ._-")
        self._remotes = dict(repositories)
        self._workdir = workdir
        self._default = default_branch
        self._env = {
            **os.environ,
            "GIT_TERMINAL_PROMPT": "0",
            "LC_ALL": "C",
            "GIT_AUTHOR_NAME": author[0],
            "GIT_AUTHOR_EMAIL": author[1],
            "GIT_COMMITTER_NAME": author[0],
            "GIT_COMMITTER_EMAIL": author[1],
        }
        self._locks = {name: threading.Lock() for name in repositories}
        self._cloned: set[str] = set()
        if not self._is_branch_name(default_branch):
            raise ValueError(f"{default_branch!r} is not a valid branch name")

    def read(self, repository: str, path: str) -> str | None:
        """The file on the remote's default branch now; None when it does not exist."""
        with self._clone(repository) as clone:
            name = _relative_path(clone, path)
            self._fetch(clone)
            return self._show(clone, name)

    def apply(self, change: GitChange) -> str:
        """Carry out ``change``; the sha of the merge commit on the default branch."""
        if change.branch == self._default or not self._is_branch_name(change.branch):
            raise ExecutionError(f"{change.branch!r} is not a branch a change may be made on")
        with self._clone(change.repository) as clone:
            name = _relative_path(clone, change.path)
            for _ in range(PUSH_ATTEMPTS):
                self._fetch(clone)
                merged = self._merge_of(clone, change.command_id)
                if merged is not None:
                    return merged
                current = self._show(clone, name)
                if current != change.before:
                    state = "absent" if current is None else "different"
                    raise ExecutionError(
                        f"{change.repository}:{name} changed since the plan was made (it is "
                        f"{state} now on {self._default}); plan again"
                    )
                merge = self._commit_and_merge(clone, change, name)
                if self._push(clone, change.branch):
                    return merge
            raise ExecutionError(
                f"{change.repository}: pushing {self._default} lost the race "
                f"{PUSH_ATTEMPTS} times (the branch keeps moving); try again"
            )

    def __str__(self) -> str:
        return "git repositories " + ", ".join(sorted(self._remotes)) + f" ({self._default})"

    # -- steps -----------------------------------------------------------------------------

    @contextmanager
    def _clone(self, repository: str) -> Iterator[Path]:
        remote = self._remotes.get(repository)
        if remote is None:
            raise ExecutionError(f"no GitOps repository named {repository!r} is configured")
        clone = self._workdir / repository
        with self._locks[repository]:
            if repository not in self._cloned:
                if (clone / ".git").is_dir():
                    self._git(clone, "remote", "set-url", "origin", remote)
                else:
                    self._workdir.mkdir(parents=True, exist_ok=True)
                    self._run(["git", "clone", "--quiet", "--", remote, str(clone)], repository)
                self._cloned.add(repository)
            yield clone

    def _fetch(self, clone: Path) -> None:
        self._git(
            clone,
            "fetch",
            "--quiet",
            "origin",
            f"+refs/heads/{self._default}:{self._tracking}",
        )

    def _show(self, clone: Path, name: str) -> str | None:
        kind = self._git(clone, "cat-file", "-t", f"{self._tracking}:{name}", check=False)
        if kind.returncode != 0:
            return None
        if kind.stdout.strip() != b"blob":
            raise ExecutionError(f"{clone.name}:{name} is not a file")
        content = self._git(clone, "cat-file", "blob", f"{self._tracking}:{name}").stdout
        try:
            return content.decode("utf-8")
        except UnicodeDecodeError:
            raise ExecutionError(f"{clone.name}:{name} is not UTF-8 text") from None

    def _merge_of(self, clone: Path, command_id: str) -> str | None:
        """The default branch's commit that carries ``command_id``'s trailer, if any."""
        log = self._git(
            clone,
            "log",
            "--first-parent",
            "--fixed-strings",
            f"--grep={command_id}",
            f"--format=%H%x1f%(trailers:key={TRAILER},valueonly,separator=%x1f)%x1e",
            self._tracking,
        ).stdout.decode("utf-8", "replace")
        for entry in log.split("\x1e"):
            sha, *values = entry.strip().split("\x1f")
            if command_id in (value.strip() for value in values):
                return sha
        return None

    def _commit_and_merge(self, clone: Path, change: GitChange, name: str) -> str:
        trailer = f"{TRAILER}: {change.command_id}"
        branch = f"refs/heads/{change.branch}"
        self._git(clone, "checkout", "--quiet", "--force", "-B", change.branch, self._tracking)
        self._git(clone, "clean", "--quiet", "-ffdx")
        target = clone / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(change.after, encoding="utf-8", newline="")
        self._git(clone, "add", "--", name)
        # --allow-empty: a change whose after equals its before still records its trailer.
        self._git(clone, "commit", "--quiet", "--allow-empty", "-m", change.message, "-m", trailer)
        self._git(clone, "checkout", "--quiet", "--force", "-B", self._default, self._tracking)
        self._git(
            clone,
            "merge",
            "--quiet",
            "--no-ff",
            "-m",
            f"Merge {change.branch}: {change.message}",
            "-m",
            trailer,
            branch,
        )
        return self._git(clone, "rev-parse", "HEAD").stdout.decode().strip()

    def _push(self, clone: Path, branch: str) -> bool:
        """Push both branches at once; False when the default branch moved meanwhile."""
        pushed = self._git(
            clone,
            "push",
            "--quiet",
            "--atomic",
            "origin",
            f"refs/heads/{self._default}:refs/heads/{self._default}",
            # The change's branch is ours alone: a leftover of a failed attempt is replaced.
            f"+refs/heads/{branch}:refs/heads/{branch}",
            check=False,
        )
        if pushed.returncode == 0:
            return True
        said = pushed.stderr.decode("utf-8", "replace")
        if any(reason in said for reason in _LOST_RACE):
            return False
        raise ExecutionError(f"git push to {clone.name} failed: {said[-STDERR_EXCERPT_CHARS:]}")

    # -- plumbing --------------------------------------------------------------------------

    @property
    def _tracking(self) -> str:
        return f"refs/remotes/origin/{self._default}"

    def _is_branch_name(self, branch: str) -> bool:
        if not branch or branch.startswith("-"):
            return False
        checked = subprocess.run(
            ["git", "check-ref-format", f"refs/heads/{branch}"],
            capture_output=True,
            check=False,
            env=self._env,
            timeout=GIT_TIMEOUT_S,
        )
        return checked.returncode == 0

    def _git(
        self, clone: Path, *args: str, check: bool = True
    ) -> subprocess.CompletedProcess[bytes]:
        return self._run(["git", "-C", str(clone), *args], clone.name, check=check)

    def _run(
        self, command: list[str], repository: str, *, check: bool = True
    ) -> subprocess.CompletedProcess[bytes]:
        try:
            done = subprocess.run(
                command, capture_output=True, check=False, env=self._env, timeout=GIT_TIMEOUT_S
            )
        except subprocess.TimeoutExpired:
            raise ExecutionError(
                f"git {_verb(command)} on {repository} took over {GIT_TIMEOUT_S:g} s"
            ) from None
        if check and done.returncode != 0:
            said = done.stderr.decode("utf-8", "replace").strip()
            raise ExecutionError(
                f"git {_verb(command)} on {repository} failed: {said[-STDERR_EXCERPT_CHARS:]}"
            )
        return done


def _verb(command: list[str]) -> str:
    return command[3] if command[1] == "-C" else command[1]


def _relative_path(clone: Path, path: str) -> str:
    """``path`` as a clean relative path inside the clone, or an ExecutionError."""
    parts = PurePosixPath(path).parts
    if (
        not parts
        or PurePosixPath(path).is_absolute()
        or "\\" in path
        or any(part in {"..", "."} for part in parts)
        or parts[0] == ".git"
    ):
        raise ExecutionError(f"{path!r} is not a relative path inside the repository")
    # A symbolic link in the repository must not lead outside it either.
    inside = (clone / Path(*parts)).resolve()
    if not inside.is_relative_to(clone.resolve()):
        raise ExecutionError(f"{path!r} leads outside the repository")
    return PurePosixPath(*parts).as_posix()
