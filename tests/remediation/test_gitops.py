"""GitOps against a real bare repository on disk: commit, merge, push, exactly once."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from gitkit import git, seeded_bare_repository

from revleak.remediation.executors.base import ExecutionError, Executors
from revleak.remediation.executors.gitops import GitOps
from revleak.remediation.model import GitChange

SERVICE = "services/checkout.yaml"
CURRENT = "# checkout service\nspec:\n  version: 1.4.2  # pinned\n  replicas: 3\n"
PREVIOUS = "# checkout service\nspec:\n  version: 1.4.1  # pinned\n  replicas: 3\n"
@pytest.fixture
def remote(tmp_path: Path) -> Path:
    """A bare repository whose main holds the checkout service file."""
    return seeded_bare_repository(tmp_path, SERVICE, CURRENT, "Checkout 1.4.2")


def gitops(remote: Path, workdir: Path) -> GitOps:
    return GitOps({"deploy": str(remote)}, workdir=workdir, author=("revleak", "bot@revleak.test"))


def rollback(
    command_id: str = "INC-7:rollback", before: str | None = CURRENT, after: str = PREVIOUS
) -> GitChange:
    return GitChange(
        command_id=command_id,
        repository="deploy",
        path=SERVICE,
        before=before,
        after=after,
        branch=f"revleak/{command_id.replace(':', '/')}",
        message="Roll checkout back to 1.4.1",
    )


def on_main(remote: Path, path: str = SERVICE) -> str:
    return git("--git-dir", str(remote), "show", f"main:{path}") + "\n"


def commits(remote: Path) -> int:
    return int(git("--git-dir", str(remote), "rev-list", "--count", "main"))


def test_apply_merges_a_branch_commit_into_main_and_pushes_both(
    remote: Path, tmp_path: Path
) -> None:
    sha = gitops(remote, tmp_path / "work").apply(rollback())
    bare = str(remote)
    assert git("--git-dir", bare, "rev-parse", "main") == sha
    assert on_main(remote) == PREVIOUS
    parents = git("--git-dir", bare, "rev-list", "--parents", "-n", "1", sha).split()[1:]
    assert len(parents) == 2  # a merge, not a fast-forward
    assert git("--git-dir", bare, "rev-parse", "refs/heads/revleak/INC-7/rollback") == parents[1]
    message = git("--git-dir", bare, "log", "-1", "--format=%B", parents[1])
    assert message == "Roll checkout back to 1.4.1\n\nRevleak-Command: INC-7:rollback"
    assert git("--git-dir", bare, "log", "-1", "--format=%an <%ae>", sha) == (
        "revleak <bot@revleak.test>"
    )
    assert git("--git-dir", bare, "log", "-1", "--format=%(trailers:valueonly)", sha) == (
        "INC-7:rollback"
    )


def test_read_shows_main_as_it_is_now(remote: Path, tmp_path: Path) -> None:
    ops = gitops(remote, tmp_path / "work")
    assert ops.read("deploy", SERVICE) == CURRENT
    assert ops.read("deploy", "services/missing.yaml") is None
    gitops(remote, tmp_path / "elsewhere").apply(rollback())
    assert ops.read("deploy", SERVICE) == PREVIOUS  # fetched, not the old clone


def test_applying_twice_makes_one_commit(remote: Path, tmp_path: Path) -> None:
    ops = gitops(remote, tmp_path / "work")
    first = ops.apply(rollback())
    assert ops.apply(rollback()) == first
    assert commits(remote) == 3  # seed, change, merge


def test_concurrent_applies_of_one_change_make_one_commit(remote: Path, tmp_path: Path) -> None:
    ops = gitops(remote, tmp_path / "work")
    start = threading.Barrier(2)
    results: list[str] = []

    def apply() -> None:
        start.wait(10)
        results.append(ops.apply(rollback()))

    threads = [threading.Thread(target=apply) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(results) == 2
    assert results[0] == results[1]
    assert commits(remote) == 3


def test_a_replica_that_loses_the_push_race_returns_the_winners_merge(
    remote: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    winner = gitops(remote, tmp_path / "winner")
    # Another author: identical commits made in the same second would share their sha.
    loser = GitOps(
        {"deploy": str(remote)}, workdir=tmp_path / "loser", author=("replica-2", "r2@revleak.test")
    )
    fetch = GitOps._fetch
    raced: list[str] = []

    def fetch_then_lose_the_race(self: GitOps, clone: Path) -> None:
        fetch(self, clone)
        if self is loser and not raced:
            # The winner pushes between the loser's fetch and the loser's push.
            raced.append(winner.apply(rollback()))

    monkeypatch.setattr(GitOps, "_fetch", fetch_then_lose_the_race)
    assert loser.apply(rollback()) == raced[0]
    assert commits(remote) == 3
    assert on_main(remote) == PREVIOUS


def test_a_stale_before_is_refused_and_main_is_untouched(remote: Path, tmp_path: Path) -> None:
    head = git("--git-dir", str(remote), "rev-parse", "main")
    stale = rollback(before=CURRENT.replace("3", "5"))
    with pytest.raises(ExecutionError, match=r"deploy:services/checkout.yaml changed since"):
        gitops(remote, tmp_path / "work").apply(stale)
    assert git("--git-dir", str(remote), "rev-parse", "main") == head


def test_the_inverse_change_restores_the_file(remote: Path, tmp_path: Path) -> None:
    ops = gitops(remote, tmp_path / "work")
    applied = ops.apply(rollback())
    # The inverse swaps before and after, on the same branch name.
    undo = rollback(before=PREVIOUS, after=CURRENT).model_copy(
        update={"command_id": "INC-7:rollback:undo"}
    )
    reverted = ops.apply(undo)
    assert reverted != applied
    assert on_main(remote) == CURRENT
    assert commits(remote) == 5
    branch = git("--git-dir", str(remote), "rev-parse", "refs/heads/revleak/INC-7/rollback")
    assert git("--git-dir", str(remote), "rev-parse", f"{reverted}^2") == branch


def test_a_new_file_is_created_in_a_new_folder(remote: Path, tmp_path: Path) -> None:
    flags = GitChange(
        command_id="INC-8:flag",
        repository="deploy",
        path="flags/checkout.yaml",
        before=None,
        after="flags:\n  new_checkout: false\n",
        branch="revleak/INC-8/flag",
        message="Disable new_checkout",
    )
    ops = gitops(remote, tmp_path / "work")
    ops.apply(flags)
    assert ops.read("deploy", "flags/checkout.yaml") == flags.after
    assert on_main(remote) == CURRENT  # the other file is as it was


@pytest.mark.parametrize(
    "path", ["../outside.yaml", "/etc/passwd", ".git/config", "services/../../x", "", "a\\b"]
)
def test_paths_must_stay_inside_the_repository(remote: Path, tmp_path: Path, path: str) -> None:
    change = rollback().model_copy(update={"path": path})
    with pytest.raises(ExecutionError, match="repository"):
        gitops(remote, tmp_path / "work").apply(change)
    assert commits(remote) == 1


def test_a_symbolic_link_out_of_the_clone_is_refused(remote: Path, tmp_path: Path) -> None:
    ops = gitops(remote, tmp_path / "work")
    ops.read("deploy", SERVICE)  # makes the clone
    (tmp_path / "work" / "deploy" / "escape").symlink_to(tmp_path)
    with pytest.raises(ExecutionError, match="leads outside the repository"):
        ops.apply(rollback().model_copy(update={"path": "escape/owned.yaml"}))


def test_bad_branches_and_unknown_repositories_are_refused(remote: Path, tmp_path: Path) -> None:
    ops = gitops(remote, tmp_path / "work")
    for branch in ["main", "-x", "bad..name", "ends.lock"]:
        with pytest.raises(ExecutionError, match="not a branch a change may be made on"):
            ops.apply(rollback().model_copy(update={"branch": branch}))
    with pytest.raises(ExecutionError, match="no GitOps repository named 'infra'"):
        ops.read("infra", SERVICE)
    with pytest.raises(ValueError, match="repository name"):
        GitOps({"../x": str(remote)}, workdir=tmp_path)


def test_an_unreachable_remote_is_an_execution_error(tmp_path: Path) -> None:
    ops = GitOps({"deploy": str(tmp_path / "missing.git")}, workdir=tmp_path / "work")
    with pytest.raises(ExecutionError, match="git clone on deploy failed"):
        ops.read("deploy", SERVICE)


def test_executors_dispatch_git_changes(remote: Path, tmp_path: Path) -> None:
    executors = Executors(gitops=gitops(remote, tmp_path / "work"))
    result = executors.execute(rollback())
    assert result.ref == git("--git-dir", str(remote), "rev-parse", "main")
    assert result.kind == "gitops"
    assert result.detail == "deploy:services/checkout.yaml via revleak/INC-7/rollback"
    assert executors.describe()["gitops"] == "git repositories deploy (main)"
