"""Provider log files: size rotation, tail across backups, follow across rotation."""

from __future__ import annotations

import threading
from pathlib import Path

from supervisor.proc.logs import ProviderLog, follow, log_path, tail


def test_log_rotates_by_size_and_keeps_only_the_backups(tmp_path: Path) -> None:
    log = ProviderLog(log_path(tmp_path, "p"), max_bytes=4096, backups=2)
    for i in range(2000):
        log.write(f"line {i:05d} {'x' * 40}\n".encode())
    log.close()
    files = sorted(p.name for p in (tmp_path / "logs").iterdir())
    assert files == ["p.log", "p.log.1", "p.log.2"]
    assert all((tmp_path / "logs" / f).stat().st_size <= 4096 for f in files)
    assert tail(log.path, 1) == [f"line 01999 {'x' * 40}"]


def test_tail_reaches_into_the_rotated_file(tmp_path: Path) -> None:
    log = ProviderLog(log_path(tmp_path, "p"), max_bytes=1024, backups=1)
    for i in range(30):
        log.write(f"{i:02d}-{'y' * 50}\n".encode())
    log.close()
    current = log.path.read_text().splitlines()
    lines = tail(log.path, len(current) + 3)
    assert len(lines) == len(current) + 3
    assert lines[-1].startswith("29-")
    assert [int(x[:2]) for x in lines] == list(range(30 - len(lines), 30))


def test_one_huge_chunk_is_cut_to_the_cap(tmp_path: Path) -> None:
    log = ProviderLog(log_path(tmp_path, "p"), max_bytes=2048, backups=0)
    log.write(b"z" * 100_000 + b"\nend\n")
    log.close()
    assert log.path.stat().st_size <= 2048
    assert tail(log.path, 1) == ["end"]


def test_notes_are_marked_and_not_counted_as_output(tmp_path: Path) -> None:
    log = ProviderLog(log_path(tmp_path, "p"), max_bytes=10_000, backups=1)
    log.write(b"hello\nworld\npartial")
    log.note("started pid 1")
    assert log.last_lines(3) == ["hello", "world", "partial"]
    assert tail(log.path, 1)[0].startswith("[unigw ")
    assert tail(log.path, 1)[0].endswith("] started pid 1")


def test_follow_yields_new_lines_across_a_rotation(tmp_path: Path) -> None:
    log = ProviderLog(log_path(tmp_path, "p"), max_bytes=1024, backups=1)
    log.write(b"before\n")
    seen: list[str] = []
    done = threading.Event()

    def reader() -> None:
        for line in follow(log.path, poll=0.02, stop=done.is_set):
            seen.append(line)
            if line == "last":
                done.set()

    t = threading.Thread(target=reader)
    t.start()
    try:
        threading.Event().wait(0.2)
        for i in range(60):  # several rotations
            log.write(f"n{i:02d} {'q' * 40}\n".encode())
            threading.Event().wait(0.002)
        log.write(b"last\n")
        t.join(10)
    finally:
        done.set()
        t.join(5)
    assert "before" not in seen
    assert seen[-1] == "last"
    assert "n59 " + "q" * 40 in seen


def test_a_secret_split_at_any_byte_is_scrubbed_from_file_and_tail(tmp_path: Path) -> None:
    secret = b"tok-0123456789abcdef"
    text = b"say " + secret + b" once\nlong " + b"x" * 40 + secret + b" end"
    for cut in range(1, len(text)):
        log = ProviderLog(log_path(tmp_path, f"p{cut}"), max_bytes=100_000, backups=0,
                          line_max=16)  # the long line is passed on in pieces
        log.secrets = (secret,)
        log.write(text[:cut])
        assert secret[:4] not in "".join(log.last_lines(5)).encode()
        log.write(text[cut:])
        log.end_output()
        log.close()
        data = log.path.read_bytes()
        assert data == b"say *** once\nlong " + b"x" * 40 + b"*** end", cut
        assert log.last_lines(2) == ["say *** once", "long " + "x" * 40 + "*** end"]


def test_a_multi_line_secret_is_scrubbed_line_by_line(tmp_path: Path) -> None:
    key = b"-----BEGIN KEY-----\nAAAABBBBCCCCDDDD\nEEEEFFFF\n-----END KEY-----"
    log = ProviderLog(log_path(tmp_path, "p"), max_bytes=100_000, backups=0)
    log.secrets = (key,)
    for line in key.split(b"\n"):
        log.write(b"key line: " + line + b"\n")
    log.close()
    data = log.path.read_bytes()
    assert b"AAAABBBBCCCCDDDD" not in data and b"EEEEFFFF" not in data
    assert data.count(b"key line: ***\n") == 4
