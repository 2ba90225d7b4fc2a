"""Clones: ``apis/<name>`` at the provider's pinned ref, through GitPython.

:func:`ensure_checkout` makes the clone exist and point at the ref, touching the network only
when it must:

1. the clone exists and HEAD already is the ref's commit → nothing to do (no network);
2. the clone exists and knows the ref → check it out;
3. the clone exists but does not know the ref → fetch, then check it out;
4. no clone → clone (no checkout), then check out the ref. A failed clone is removed, so the
   next try starts clean. A folder that exists but is not a git repository is never touched.

GitPython blocks, so each git operation runs in a worker thread; progress lines hop back to the
event loop. On timeout or cancellation the git processes working on that folder are killed, so
the thread ends and nothing keeps writing there. Git never prompts (``GIT_TERMINAL_PROMPT=0``):
a repository that is gone from GitHub fails at once instead of asking for a user name.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import git
import psutil
from git.exc import BadName, BadObject, GitCommandError, InvalidGitRepositoryError

from supervisor.proc.process import stop_tree

T = TypeVar("T")
GIT_ENV = {"GIT_TERMINAL_PROMPT": "0", "GCM_INTERACTIVE": "never", "GIT_LFS_SKIP_SMUDGE": "1"}
_STAGES = {
    git.RemoteProgress.COUNTING: "counting objects",
    git.RemoteProgress.COMPRESSING: "compressing objects",
    git.RemoteProgress.WRITING: "writing objects",
    git.RemoteProgress.RECEIVING: "receiving objects",
    git.RemoteProgress.RESOLVING: "resolving deltas",
    git.RemoteProgress.FINDING_SOURCES: "finding sources",
    git.RemoteProgress.CHECKING_OUT: "checking out files",
}


class RepoError(Exception):
    """The clone cannot be brought to the ref; ``str(exc)`` is the reason, with git's words."""


class _Progress(git.RemoteProgress):
    """Turns git's progress into a few lines (each stage, every 25 %), sent to ``emit``."""

    def __init__(self, emit: Callable[[str], None]) -> None:
        super().__init__()
        self.say = emit
        self._last: tuple[int, int] = (-1, -1)

    def update(
        self, op_code: int, cur_count: Any, max_count: Any = None, message: str = ""
    ) -> None:
        stage = op_code & self.OP_MASK
        pct = int(float(cur_count) * 100 / float(max_count)) if max_count else -1
        key = (stage, pct // 25)
        if key == self._last:
            return
        self._last = key
        text = _STAGES.get(stage, "working")
        self.say(f"{text}: {pct}%{' ' + message if message else ''}" if pct >= 0 else text)


async def ensure_checkout(
    url: str, ref: str, dest: Path, *, timeout: float, emit: Callable[[str], None]
) -> str:
    """Bring ``dest`` to ``ref`` (cloning from ``url`` if needed); return the commit's sha."""
    loop = asyncio.get_running_loop()

    def emit_threadsafe(line: str) -> None:
        loop.call_soon_threadsafe(emit, line)

    progress = _Progress(emit_threadsafe)
    if (dest / ".git").exists():
        return await _in_thread(lambda: _update(url, ref, dest, progress), dest, timeout, "fetch")
    if dest.exists() and any(dest.iterdir()):
        raise RepoError(f"{dest} exists and is not a git clone; move it away to clone into it")
    emit(f"cloning {url} into {dest}")
    try:
        return await _in_thread(lambda: _clone(url, ref, dest, progress), dest, timeout, "clone")
    except BaseException:
        await asyncio.to_thread(shutil.rmtree, dest, True)  # a half clone must not be reused
        raise


def _clone(url: str, ref: str, dest: Path, progress: _Progress) -> str:
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        repo = git.Repo.clone_from(
            url, dest, progress=progress, env=GIT_ENV, no_checkout=True  # type: ignore[arg-type]
        )
    except GitCommandError as exc:
        raise RepoError(f"clone failed: {_git_words(exc, progress)}") from None
    with repo:
        return _checkout(repo, ref, url, progress)


def _update(url: str, ref: str, dest: Path, progress: _Progress) -> str:
    try:
        repo = git.Repo(dest)
    except InvalidGitRepositoryError:
        raise RepoError(f"{dest} is not a valid git clone; remove it to clone again") from None
    with repo:
        sha = _local_commit(repo, ref)
        if sha is not None and repo.head.is_valid() and repo.head.commit.hexsha == sha:
            return sha
        return _checkout(repo, ref, url, progress)


def _checkout(repo: git.Repo, ref: str, url: str, progress: _Progress) -> str:
    """Check out ``ref`` (detached), fetching first if the clone does not know it."""
    sha = _local_commit(repo, ref)
    if sha is None:
        _fetch(repo, ref, url, progress)
        sha = _local_commit(repo, ref)
    if sha is None:
        raise RepoError(f"ref {ref} not found in {url}")
    progress.say(f"checking out {ref}")
    try:
        with repo.git.custom_environment(**GIT_ENV):
            repo.git.checkout("--detach", "--quiet", sha)
    except GitCommandError as exc:
        raise RepoError(f"checkout of {ref} failed: {_git_words(exc, progress)}") from None
    return sha


def _fetch(repo: git.Repo, ref: str, url: str, progress: _Progress) -> None:
    """Fetch every branch and tag; then the ref itself if it is a commit no branch reaches."""
    if "origin" not in [r.name for r in repo.remotes]:
        repo.create_remote("origin", url)
    origin = repo.remotes.origin
    if origin.url != url:
        origin.set_url(url)
    progress.say(f"fetching {url}")
    with repo.git.custom_environment(**GIT_ENV):
        try:
            origin.fetch(progress=progress, tags=True)
        except GitCommandError as exc:
            raise RepoError(f"fetch failed: {_git_words(exc, progress)}") from None
        if _local_commit(repo, ref) is not None:
            return
        try:
            origin.fetch(ref, progress=progress)
        except GitCommandError as exc:
            words = _git_words(exc, progress)
            raise RepoError(f"ref {ref} not found in {url} ({words})") from None


def _local_commit(repo: git.Repo, ref: str) -> str | None:
    """The sha ``ref`` names in this clone (a sha, tag, branch or origin branch), or None."""
    for candidate in (ref, f"origin/{ref}"):
        try:
            return repo.commit(candidate).hexsha
        except (BadName, BadObject, ValueError, GitCommandError):
            continue
    return None


def _git_words(exc: GitCommandError, progress: _Progress) -> str:
    """git's own error lines (``fatal: ...``), without GitPython's wrapping."""
    raw = str(exc.stderr or "").strip()
    raw = raw.removeprefix("stderr:").strip().strip("'").strip()
    lines = [ln.strip() for ln in raw.splitlines() if ln.strip()]
    lines += [ln.strip() for ln in progress.error_lines if ln.strip()]
    picked = [ln for ln in lines if ln.startswith(("fatal:", "error:", "remote:"))] or lines[-3:]
    text = "; ".join(dict.fromkeys(picked)) or f"git exited with {exc.status}"
    if "could not read Username" in text:
        text += " (the repository does not exist or is not public)"
    return text


async def _in_thread(fn: Callable[[], T], dest: Path, timeout: float, what: str) -> T:
    """Run blocking git work in a thread; on timeout or cancel, kill its git processes."""
    fut = asyncio.ensure_future(asyncio.to_thread(fn))
    try:
        return await asyncio.wait_for(asyncio.shield(fut), timeout)
    except asyncio.TimeoutError:
        await _abort(fut, dest)
        raise RepoError(f"{what} timed out after {timeout:g}s") from None
    except asyncio.CancelledError:
        await _abort(fut, dest)
        raise


async def _abort(fut: asyncio.Future[Any], dest: Path) -> None:
    """Kill (at once) our git processes that work on ``dest`` and what they started."""
    pids = await asyncio.to_thread(_git_on, dest)
    await asyncio.gather(*(stop_tree(pid, grace=0) for pid in pids))
    with contextlib.suppress(git.exc.GitError, RepoError, OSError, asyncio.TimeoutError):
        await asyncio.wait_for(fut, 10.0)


def _git_on(dest: Path) -> list[int]:
    """Our processes that work on ``dest`` (by argument or working directory). Blocking."""
    target, found = str(dest), []
    for p in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if target in p.cmdline() or p.cwd() == target:
                found.append(p.pid)
    return found
