"""The key policy: hostile keys refused, ordinary ones kept, prefixes normalised. No I/O but tmp_path."""

from __future__ import annotations

import os
import re
import unicodedata
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from taskcreds import KeyOutsidePrefixError, UploadError
from taskcreds.upload.keys import MAX_KEY_BYTES, join_key, normalize_prefix, relative_key_for_path

PREFIX = "app-a/"
BUCKET = "app-a-bucket"

# (relative key, a word the message must contain: which rule failed)
HOSTILE: list[tuple[str, str]] = [
    ("", "empty"),
    (".", "'.' segment"),
    ("..", "'..' segment"),
    ("../x", "'..' segment"),
    ("../other-app/x", "'..' segment"),
    ("a/../../b", "'..' segment"),
    ("a/..", "'..' segment"),
    ("./a", "'.' segment"),
    ("a/./b", "'.' segment"),
    ("a/.", "'.' segment"),
    ("/abs", "starts with '/'"),
    ("/", "starts with '/'"),
    ("//x", "starts with '/'"),
    ("a//b", "empty segment"),
    ("a/", "empty segment"),
    ("a\\b", "backslash"),
    ("..\\x", "backslash"),
    ("a\\..\\..\\b", "backslash"),
    ("a\x00b", "U+0000"),
    ("a/\x00", "U+0000"),
    ("a\nb", "U+000A"),
    ("a\rb", "U+000D"),
    ("a\tb", "U+0009"),
    ("\x1b[31mred", "U+001B"),
    ("\x7f", "U+007F"),
    ("a\x80b", "U+0080"),
    ("\u0085", "U+0085"),
    ("a\x9f", "U+009F"),
    ("\u2028", "U+2028"),
    ("a\u2029b", "U+2029"),
    ("\ufeff", "U+FEFF"),
    ("\ufeffreport.csv", "U+FEFF"),
    ("bad\udcffname", "surrogate"),
    ("x" * (MAX_KEY_BYTES - len(PREFIX) + 1), "bytes"),
    ("x" * 1025, "bytes"),
    ("é" * 513, "bytes"),
    ("e\u0301" * 513, "bytes"),  # short in code points before NFC, still 1,026 bytes after
    ("😀" * 256, "bytes"),
]

BENIGN: list[str] = [
    "x",
    "report.csv",
    "reports/2026/11/29/report.csv",
    "name with spaces.txt",
    "a+b=c&d,e;f@g$h!i'(j)",
    "a.b/c..d",
    "..hidden",
    "...",
    ".env",
    "dir./.file",
    "Ünïcödé/日本語/файл.txt",
    "emoji😀/🚀.bin",
    "x" * (MAX_KEY_BYTES - len(PREFIX)),  # exactly 1,024 bytes with the prefix
    "a%2F..%2Fb",  # percent signs are just characters to S3
    "~user/$HOME/*?[x]",
]


@pytest.mark.parametrize(("relative", "rule"), HOSTILE, ids=[repr(k)[:40] for k, _ in HOSTILE])
def test_hostile_keys_are_refused(relative: str, rule: str) -> None:
    with pytest.raises(KeyOutsidePrefixError) as caught:
        join_key(PREFIX, relative, bucket=BUCKET)
    error = caught.value
    assert isinstance(error, UploadError)
    assert isinstance(error, ValueError)
    assert rule in error.message
    assert error.bucket == BUCKET
    assert error.hint
    assert error.key is not None
    assert error.key.startswith(PREFIX)
    assert len(error.key) <= 80


@pytest.mark.parametrize("relative", BENIGN, ids=[repr(k)[:40] for k in BENIGN])
def test_benign_keys_pass_unchanged(relative: str) -> None:
    assert join_key(PREFIX, relative, bucket=BUCKET) == PREFIX + relative


def test_tables_are_big_enough() -> None:
    assert len(HOSTILE) >= 25
    assert len(BENIGN) >= 10


def test_key_is_nfc_normalised() -> None:
    assert join_key(PREFIX, "caf" + "e\u0301.txt") == PREFIX + "caf\u00e9.txt"
    assert join_key(PREFIX, "caf\u00e9.txt") == join_key(PREFIX, "cafe\u0301.txt")


def test_empty_prefix_is_the_whole_bucket() -> None:
    assert join_key("", "x/y") == "x/y"
    assert join_key("", "x" * MAX_KEY_BYTES) == "x" * MAX_KEY_BYTES
    with pytest.raises(KeyOutsidePrefixError):
        join_key("", "x" * (MAX_KEY_BYTES + 1))


def test_exactly_1024_bytes_of_two_byte_characters_pass() -> None:
    assert join_key("", "é" * 512) == "é" * 512


def test_unnormalised_prefix_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="normalize_prefix"):
        join_key("app", "x")


def test_message_shows_the_key_safely_and_briefly() -> None:
    hostile = "\x1b]0;pwned\x07" + "x" * 5000
    with pytest.raises(KeyOutsidePrefixError) as caught:
        join_key(PREFIX, hostile, bucket=BUCKET)
    message = str(caught.value)
    assert "\x1b" not in message
    assert "\x07" not in message
    assert "\\x1b" in message  # shown through repr
    assert len(caught.value.message) < 250


def test_message_names_the_rule_for_dotdot() -> None:
    with pytest.raises(KeyOutsidePrefixError, match=r"'\.\.' segment") as caught:
        join_key(PREFIX, "../other-app/secret", bucket=BUCKET)
    assert caught.value.key == "app-a/../other-app/secret"
    assert "'app-a/../other-app/secret'" in caught.value.message


# --- prefixes ---------------------------------------------------------------------------------

GOOD_PREFIXES: list[tuple[str, str]] = [
    ("", ""),
    ("app", "app/"),
    ("app/", "app/"),
    ("a/b", "a/b/"),
    ("a/b/", "a/b/"),
    ("..hidden", "..hidden/"),
    ("e\u0301", "\u00e9/"),
    ("logs/2026-11", "logs/2026-11/"),
]

BAD_PREFIXES: list[tuple[str, str]] = [
    ("/", "starts with '/'"),
    ("/app", "starts with '/'"),
    ("app//", "empty segment"),
    ("a//b", "empty segment"),
    (".", "'.' segment"),
    ("./", "'.' segment"),
    ("..", "'..' segment"),
    ("../app", "'..' segment"),
    ("a/../b", "'..' segment"),
    ("a\\b", "backslash"),
    ("app\n", "U+000A"),
    ("\ufeffapp", "U+FEFF"),
    ("app\u2028", "U+2028"),
    ("x" * (MAX_KEY_BYTES - 1), "no room"),
]


@pytest.mark.parametrize(("prefix", "expected"), GOOD_PREFIXES)
def test_prefix_normalisation(prefix: str, expected: str) -> None:
    assert normalize_prefix(prefix) == expected
    assert normalize_prefix(expected) == expected  # idempotent


@pytest.mark.parametrize(
    ("prefix", "rule"), BAD_PREFIXES, ids=[repr(p)[:40] for p, _ in BAD_PREFIXES]
)
def test_bad_prefixes_are_refused(prefix: str, rule: str) -> None:
    with pytest.raises(KeyOutsidePrefixError) as caught:
        normalize_prefix(prefix, bucket=BUCKET)
    assert rule in caught.value.message
    assert "prefix" in caught.value.message
    assert caught.value.bucket == BUCKET
    assert caught.value.hint


def test_prefix_without_slash_never_glues_to_the_key() -> None:
    assert join_key(normalize_prefix("app"), "x") == "app/x"


def test_longest_prefix_still_leaves_room_for_one_byte() -> None:
    prefix = normalize_prefix("x" * (MAX_KEY_BYTES - 2))
    assert len(prefix) == MAX_KEY_BYTES - 1
    assert join_key(prefix, "y") == prefix + "y"
    with pytest.raises(KeyOutsidePrefixError, match="bytes"):
        join_key(prefix, "yy")


# --- properties --------------------------------------------------------------------------------

TRICKY = st.sampled_from(
    ["/", ".", "..", "\\", "a", "é", "e\u0301", "\x00", "\n", "\x85", "\u2028", "\ufeff", "\udcff"]
)
ANY_TEXT = st.one_of(
    st.text(),
    st.text(st.characters(exclude_categories=())),  # surrogates included
    st.lists(TRICKY, max_size=12).map("".join),
    st.text(st.sampled_from("ab/."), max_size=1100),
)
FORBIDDEN = {chr(c) for c in [*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029, 0xFEFF]}


@given(prefix=st.sampled_from(["", "app/", "a/b/", "é/"]), relative=ANY_TEXT)
@example(prefix="app/", relative="a/../../b")
@example(prefix="app/", relative="x" * 1021)
def test_join_key_refuses_or_stays_inside(prefix: str, relative: str) -> None:
    try:
        key = join_key(prefix, relative)
    except KeyOutsidePrefixError:
        return
    assert key.startswith(prefix)
    rest = key[len(prefix) :]
    assert all(segment not in {"", ".", ".."} for segment in rest.split("/"))
    assert "\\" not in key
    assert not FORBIDDEN & set(key)
    assert len(key.encode("utf-8")) <= MAX_KEY_BYTES
    assert unicodedata.is_normalized("NFC", key)
    assert join_key(prefix, rest) == key  # stable


SAFE_SEGMENT = st.text(
    st.characters(categories=["L", "N", "Zs"], exclude_characters="\u2028\u2029\ufeff")
    | st.sampled_from(".-_+=,@"),
    min_size=1,
    max_size=20,
).filter(lambda s: s not in {".", ".."})


@given(segments=st.lists(SAFE_SEGMENT, min_size=1, max_size=10))
def test_ordinary_keys_are_accepted(segments: list[str]) -> None:
    relative = "/".join(segments)
    assert join_key(PREFIX, relative) == PREFIX + unicodedata.normalize("NFC", relative)


@given(prefix=ANY_TEXT)
def test_normalize_prefix_refuses_or_gives_a_joinable_prefix(prefix: str) -> None:
    try:
        normalized = normalize_prefix(prefix)
    except KeyOutsidePrefixError:
        return
    assert normalized == "" or normalized.endswith("/")
    assert join_key(normalized, "x").startswith(normalized)


# --- paths under a directory ------------------------------------------------------------------


def test_nested_files_get_slash_keys(tmp_path: Path) -> None:
    nested = tmp_path / "a" / "b" / "c.txt"
    nested.parent.mkdir(parents=True)
    nested.write_text("x")
    (tmp_path / "top.txt").write_text("x")
    assert relative_key_for_path(tmp_path, nested) == "a/b/c.txt"
    assert relative_key_for_path(tmp_path, tmp_path / "top.txt") == "top.txt"


def test_relative_paths_work_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "root" / "d").mkdir(parents=True)
    (tmp_path / "root" / "d" / "f").write_text("x")
    monkeypatch.chdir(tmp_path)
    assert relative_key_for_path(Path("root"), Path("root/d/f")) == "d/f"
    assert relative_key_for_path(Path("root"), tmp_path / "root" / "d" / "f") == "d/f"


def test_symlinked_file_leading_out_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    secret = tmp_path / "secret.txt"
    secret.write_text("x")
    (root / "link.txt").symlink_to(secret)
    with pytest.raises(KeyOutsidePrefixError, match="resolves outside"):
        relative_key_for_path(root, root / "link.txt")


def test_symlinked_dir_leading_out_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "f").write_text("x")
    (root / "sub").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    with pytest.raises(KeyOutsidePrefixError, match="resolves outside"):
        relative_key_for_path(root, root / "sub" / "f")


def test_symlink_staying_inside_keeps_its_own_name(tmp_path: Path) -> None:
    (tmp_path / "real.txt").write_text("x")
    (tmp_path / "alias.txt").symlink_to(tmp_path / "real.txt")
    assert relative_key_for_path(tmp_path, tmp_path / "alias.txt") == "alias.txt"


def test_root_reached_through_a_symlink(tmp_path: Path) -> None:
    (tmp_path / "real" / "d").mkdir(parents=True)
    (tmp_path / "real" / "d" / "f").write_text("x")
    (tmp_path / "via").symlink_to(tmp_path / "real", target_is_directory=True)
    assert relative_key_for_path(tmp_path / "via", tmp_path / "via" / "d" / "f") == "d/f"


def test_dotdot_in_the_path_is_refused(tmp_path: Path) -> None:
    (tmp_path / "root" / "a").mkdir(parents=True)
    (tmp_path / "root" / "b").write_text("x")
    root = tmp_path / "root"
    with pytest.raises(KeyOutsidePrefixError, match=r"'\.\.' segment"):
        relative_key_for_path(root, root / "a" / ".." / "b")
    with pytest.raises(KeyOutsidePrefixError):
        relative_key_for_path(root, root / ".." / "root" / "b")


def test_path_not_under_root_is_refused(tmp_path: Path) -> None:
    (tmp_path / "root").mkdir()
    (tmp_path / "other").write_text("x")
    with pytest.raises(KeyOutsidePrefixError, match="not under"):
        relative_key_for_path(tmp_path / "root", tmp_path / "other")


def test_root_itself_is_not_a_key(tmp_path: Path) -> None:
    with pytest.raises(KeyOutsidePrefixError, match="root itself"):
        relative_key_for_path(tmp_path, tmp_path)


@pytest.mark.parametrize(
    ("name", "rule"),
    [("a\\b", "backslash"), ("line\nbreak", "U+000A"), ("\ufeffbom", "U+FEFF")],
)
def test_hostile_file_names_are_refused(tmp_path: Path, name: str, rule: str) -> None:
    (tmp_path / name).write_text("x")
    with pytest.raises(KeyOutsidePrefixError, match=re.escape(rule)):
        relative_key_for_path(tmp_path, tmp_path / name)


def test_file_name_not_in_utf8_is_refused(tmp_path: Path) -> None:
    name = os.fsdecode(b"bad\xffname")  # Linux file systems take any bytes but '/' and NUL
    (tmp_path / name).write_text("x")
    with pytest.raises(KeyOutsidePrefixError, match="surrogate"):
        relative_key_for_path(tmp_path, tmp_path / name)


def test_decomposed_file_name_becomes_nfc(tmp_path: Path) -> None:
    (tmp_path / "cafe\u0301.txt").write_text("x")
    assert relative_key_for_path(tmp_path, tmp_path / "cafe\u0301.txt") == "caf\u00e9.txt"
