"""Issue 14 item 1: the signing-key step of a first deploy. `verifier keys generate --out keys/signing.pem` makes
the missing `keys/` (0700) instead of a traceback, and a key the process may not read (the container's uid 10001
facing a root-owned 0600 file) stops it with one line, SIGNING_KEY_UNREADABLE, naming the path, the file's owner
and mode and the process's uid, exit 64 like every other configuration error.

Tests run as root here, where chmod 000 does not stop a read: the always-run tests make the read fail with a
PermissionError (as the kernel would), one test chmods for real when not root, and as root a forked child drops to
uid 10001 so that the kernel itself refuses the read.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import os
import select
import signal
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from verifier.cli.common import EXIT_USAGE
from verifier.cli.main import main
from verifier.errors import ConfigError
from verifier.results.keyring import Keyring
from verifier.results.keys import access_summary, generate_key_file, load_key_file, load_keys

CONTAINER_UID = 10001


def _run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_generate_makes_the_missing_parent_directories_private(tmp_path: Path) -> None:
    out = tmp_path / "deploy" / "keys" / "signing.pem"
    code, stdout, stderr = _run(["keys", "generate", "--out", str(out)])
    assert (code, stderr) == (0, "")
    assert f"wrote {out}" in stdout
    assert _mode(out) == 0o600
    assert _mode(out.parent) == 0o700 and _mode(out.parent.parent) == 0o700  # each made one, not the umask's
    [key] = load_key_file(out)
    assert key.kid in stdout


def test_generate_into_an_existing_directory_keeps_its_mode(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.mkdir(mode=0o750)
    keys.chmod(0o750)
    assert _run(["keys", "generate", "--out", str(keys / "signing.pem")])[0] == 0
    assert _mode(keys) == 0o750


@pytest.mark.parametrize("where", ["under_a_file", "existing_key"])
def test_generate_failures_are_one_line_not_a_traceback(tmp_path: Path, where: str) -> None:
    if where == "under_a_file":
        (tmp_path / "keys").write_text("not a directory")
        target, code_expected = tmp_path / "keys" / "signing.pem", "SIGNING_KEY_UNWRITABLE"
    else:
        target, code_expected = tmp_path / "signing.pem", "SIGNING_KEY_EXISTS"
        generate_key_file(target)
    code, _, stderr = _run(["keys", "generate", "--out", str(target)])
    assert code == EXIT_USAGE
    assert stderr.count("\n") == 1 and stderr.startswith(f"verifier: {code_expected}: ")
    assert "Traceback" not in stderr


@contextlib.contextmanager
def _reads_refused(path: Path) -> Iterator[None]:
    """`path` exists, but reading it fails as it does for a process whose uid may not read the file."""
    real = Path.read_bytes

    def read_bytes(self: Path) -> bytes:
        if self == path:
            raise PermissionError(13, "Permission denied", str(self))
        return real(self)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Path, "read_bytes", read_bytes)
        yield


def _assert_names_owner_and_uid(message: str, path: Path) -> None:
    st = path.stat()
    assert str(path) in message
    assert f"owned by uid {st.st_uid} gid {st.st_gid} mode {stat.S_IMODE(st.st_mode):04o}" in message
    assert f"this process runs as uid {os.geteuid()} gid {os.getegid()}" in message
    assert "\n" not in message


def test_unreadable_key_is_signing_key_unreadable_naming_owner_mode_and_uid(tmp_path: Path) -> None:
    path = tmp_path / "signing.pem"
    generate_key_file(path)
    with _reads_refused(path), pytest.raises(ConfigError) as caught:
        load_keys([path])
    assert caught.value.code == "SIGNING_KEY_UNREADABLE"
    _assert_names_owner_and_uid(caught.value.message, path)
    assert "Permission denied" in caught.value.message and "-----BEGIN" not in caught.value.message


def test_the_cli_says_so_in_one_line_with_the_configuration_exit_code(tmp_path: Path) -> None:
    path = tmp_path / "signing.pem"
    generate_key_file(path)
    with _reads_refused(path):
        code, stdout, stderr = _run(["keys", "show", "--signing-key", str(path)])
    assert (code, stdout) == (EXIT_USAGE, "")
    assert stderr.startswith("verifier: SIGNING_KEY_UNREADABLE: cannot read signing key file ")
    assert stderr.count("\n") == 1 and "Traceback" not in stderr
    _assert_names_owner_and_uid(stderr.strip(), path)


def test_access_summary_names_the_directory_that_blocks_when_the_file_cannot_be_examined(tmp_path: Path) -> None:
    hidden = tmp_path / "private" / "signing.pem"  # does not exist: stat fails, as it does behind a 0700 dir
    (tmp_path / "private").mkdir(mode=0o700)
    summary = access_summary(hidden)
    assert summary.startswith(f"its directory {tmp_path / 'private'} is owned by uid {os.geteuid()}")
    assert "mode 0700" in summary


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a chmod 000 file; the forked test below covers root")
def test_chmod_000_key_is_unreadable_for_a_normal_user(tmp_path: Path) -> None:
    path = tmp_path / "signing.pem"
    generate_key_file(path)
    path.chmod(0)
    code, _, stderr = _run(["keys", "show", "--signing-key", str(path)])
    assert code == EXIT_USAGE and "SIGNING_KEY_UNREADABLE" in stderr and "mode 0000" in stderr


def _as_uid(uid: int, action: Callable[[], str]) -> str:
    """Run `action` in a forked child that dropped to `uid` (and gid `uid`), and return what it returned: the kernel
    decides what the child may read. Root only."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop privileges, act, report, leave without running any cleanup of the parent's
        status = 0
        try:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            os.write(write_end, action().encode())
        except BaseException as error:
            os.write(write_end, f"child failed: {error!r}".encode())
            status = 1
        finally:
            os._exit(status)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        if not select.select([pipe], [], [], 60)[0]:  # a child stuck on a lock copied mid-use: fail, do not hang
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("the uid-10001 child did not answer within 60 s")
        reply = pipe.read().decode()
    os.waitpid(pid, 0)
    return reply


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to become uid 10001")
def test_as_the_container_uid_a_root_owned_key_and_a_private_keyring_say_why() -> None:
    base = Path(tempfile.mkdtemp(prefix="verifier-uid-"))
    try:
        base.chmod(0o755)
        key = base / "signing.pem"
        generate_key_file(key)  # root-owned, 0600: what `verifier keys generate` as root writes
        ring = base / "ring"
        Keyring.init(ring, now=dt.datetime.now(dt.UTC))  # root-owned 0700 directory

        def attempt() -> str:
            lines = []
            for argv in (["keys", "show", "--signing-key", str(key)], ["keys", "list", "--dir", str(ring)]):
                code, _, stderr = _run(argv)
                lines.append(f"{code} {stderr.strip()}")
            return "\n".join(lines)

        key_line, ring_line = _as_uid(CONTAINER_UID, attempt).split("\n")
    finally:
        for path in sorted(base.rglob("*"), reverse=True):
            path.unlink() if not path.is_dir() else path.rmdir()
        base.rmdir()
    assert key_line.startswith(f"{EXIT_USAGE} verifier: SIGNING_KEY_UNREADABLE: cannot read signing key file {key}")
    assert "it is owned by uid 0 gid 0 mode 0600" in key_line
    assert f"this process runs as uid {CONTAINER_UID} gid {CONTAINER_UID}" in key_line
    assert ring_line.startswith(f"{EXIT_USAGE} verifier: KEYRING_UNREADABLE: ")
    assert f"its directory {ring} is owned by uid 0 gid 0 mode 0700" in ring_line
    assert f"runs as uid {CONTAINER_UID}" in ring_line
