"""The cookie: explicit, read from the cookie file, created as erts does, refused when unsafe."""

from __future__ import annotations

import hashlib
import os
import stat
from typing import TYPE_CHECKING

import pytest

from server.dist.cookie import cookie_path, digest, digest_matches, load_cookie
from server.errors import CookieError

if TYPE_CHECKING:
    from pathlib import Path


def write(path: Path, data: bytes, mode: int = 0o400) -> Path:
    path.write_bytes(data)
    path.chmod(mode)
    return path


def test_an_explicit_cookie_wins_and_the_file_is_not_touched(tmp_path: Path) -> None:
    path = tmp_path / ".erlang.cookie"
    assert load_cookie("secret", path=path) == "secret"
    assert not path.exists()


def test_the_file_is_read(tmp_path: Path) -> None:
    path = write(tmp_path / ".erlang.cookie", b"ABCDEF  \nignored\n")
    assert load_cookie(path=path) == "ABCDEF"


def test_a_missing_file_is_created_as_erts_does(tmp_path: Path) -> None:
    path = tmp_path / ".erlang.cookie"
    cookie = load_cookie(path=path)
    assert len(cookie) == 20
    assert cookie.isalpha()
    assert cookie.isupper()
    assert stat.S_IMODE(path.stat().st_mode) == 0o400
    assert path.read_text() == cookie
    assert load_cookie(path=path) == cookie  # the next start reads the same one


def test_the_default_path_is_in_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cookie_path() == tmp_path / ".erlang.cookie"
    cookie = load_cookie()
    assert (tmp_path / ".erlang.cookie").read_text() == cookie


@pytest.mark.parametrize("mode", [0o440, 0o404, 0o644, 0o600 | 0o004], ids=oct)
def test_a_file_readable_by_others_is_refused_and_left_alone(tmp_path: Path, mode: int) -> None:
    path = write(tmp_path / ".erlang.cookie", b"SECRET", mode)
    with pytest.raises(CookieError, match=r"accessible by its owner only.*chmod 400") as caught:
        load_cookie(path=path)
    assert caught.value.path == str(path)
    assert stat.S_IMODE(path.stat().st_mode) == mode
    assert path.read_bytes() == b"SECRET"


def test_mode_600_is_fine(tmp_path: Path) -> None:
    assert load_cookie(path=write(tmp_path / "c", b"SECRET", 0o600)) == "SECRET"


def test_a_directory_is_refused(tmp_path: Path) -> None:
    path = tmp_path / ".erlang.cookie"
    path.mkdir(mode=0o700)
    with pytest.raises(CookieError, match="not a regular file"):
        load_cookie(path=path)


def test_a_symlink_is_followed_and_its_target_checked(tmp_path: Path) -> None:
    target = write(tmp_path / "real", b"SECRET")
    link = tmp_path / ".erlang.cookie"
    link.symlink_to(target)
    assert load_cookie(path=link) == "SECRET"
    target.chmod(0o444)
    with pytest.raises(CookieError, match="owner only"):
        load_cookie(path=link)


@pytest.mark.parametrize(
    ("data", "fragment"),
    [(b"", "empty"), (b"\nSECRET", "empty"), (b"SE\x01CRET", "printable"), ("é".encode(), "ASCII")],
)
def test_a_malformed_file_is_refused(tmp_path: Path, data: bytes, fragment: str) -> None:
    with pytest.raises(CookieError, match=fragment):
        load_cookie(path=write(tmp_path / "c", data))


@pytest.mark.parametrize("cookie", ["", "a" * 256, "tab\there"])
def test_a_malformed_explicit_cookie_is_refused(cookie: str) -> None:
    with pytest.raises(CookieError) as caught:
        load_cookie(cookie)
    assert caught.value.path is None


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores the directory's permissions")
def test_an_uncreatable_file_is_an_error(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir(mode=0o500)
    with pytest.raises(CookieError, match="cannot be created"):
        load_cookie(path=folder / ".erlang.cookie")
    assert list(folder.iterdir()) == []


@pytest.mark.parametrize("challenge", [0, 1, 1795604135, 0xFFFFFFFF])
def test_the_digest_is_md5_of_cookie_and_decimal_challenge(challenge: int) -> None:
    expected = hashlib.md5(f"secret{challenge}".encode()).digest()
    assert digest("secret", challenge) == expected
    assert digest_matches("secret", challenge, expected)
    assert not digest_matches("other", challenge, expected)


def test_the_challenge_is_read_as_unsigned_32_bit() -> None:
    assert digest("c", -1) == digest("c", 0xFFFFFFFF) == hashlib.md5(b"c4294967295").digest()


def test_a_short_digest_does_not_match() -> None:
    assert not digest_matches("c", 1, digest("c", 1)[:8])
