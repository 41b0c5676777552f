"""Real git for the GitOps tests: a command runner and a seeded bare repository."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

GIT_ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "seed",
    "GIT_AUTHOR_EMAIL": "seed@localhost",
    "GIT_COMMITTER_NAME": "seed",
    "GIT_COMMITTER_EMAIL": "seed@localhost",
    "GIT_TERMINAL_PROMPT": "0",
}


def git(*args: str) -> str:
    done = subprocess.run(["git", *args], capture_output=True, text=True, env=GIT_ENV, check=True)
    return done.stdout.strip()


def seeded_bare_repository(folder: Path, path: str, text: str, message: str) -> Path:
    """``folder/deploy.git``, whose main holds one commit: ``path`` with ``text``."""
    bare = folder / "deploy.git"
    git("init", "--quiet", "--bare", "--initial-branch=main", str(bare))
    seed = folder / "seed"
    git("clone", "--quiet", str(bare), str(seed))
    (seed / path).parent.mkdir(parents=True, exist_ok=True)
    (seed / path).write_text(text)
    git("-C", str(seed), "add", ".")
    git("-C", str(seed), "commit", "--quiet", "-m", message)
    git("-C", str(seed), "push", "--quiet", "origin", "HEAD:main")
    return bare
