"""Directory selection and planning (``taskcreds.upload._directory`` and ``_tree``), on a local
tree, without S3: ``plan_dir`` lists what ``upload_dir`` would send, with keys and sizes."""

from __future__ import annotations

from pathlib import Path

import pytest

from taskcreds import UploadError
from taskcreds.upload import PlannedFile, Uploader
from taskcreds.upload._directory import selected
from taskcreds.upload._tree import SymlinkOnTheWay, Tree

ENVIRON = {"AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://127.0.0.1:9/creds"}


@pytest.mark.parametrize(
    ("relative", "include", "exclude", "expected"),
    [
        ("a.html", (), (), True),
        ("a.html", ("*.html",), (), True),
        ("a.css", ("*.html",), (), False),
        ("tmp/x.html", ("*.html",), ("tmp/*",), False),
        ("css/a.css", ("*.html", "*.css"), ("tmp/*",), True),
        ("debug.log", (), ("*.log",), False),
    ],
)
def test_selected(
    relative: str, include: tuple[str, ...], exclude: tuple[str, ...], expected: bool
) -> None:
    assert selected(relative, include, exclude) is expected


def make_tree(root: Path) -> Path:
    (root / "css").mkdir(parents=True)
    (root / "index.html").write_text("<h1>hi</h1>")
    (root / "css" / "a.css").write_text("body{}")
    (root / "debug.log").write_text("noise")
    (root / "link.html").symlink_to(root / "index.html")
    (root / "dangling").symlink_to(root / "nowhere")
    (root / "bad\\name.txt").write_text("a name the key rules refuse")
    return root


def test_plan_dir_lists_files_keys_and_sizes(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "site")
    with Uploader("app-a", "p/", environ=ENVIRON) as uploader:
        plan = uploader.plan_dir(root, exclude=["*.log"])
    assert plan == [
        PlannedFile(str(root / "css" / "a.css"), "p/css/a.css", 6),
        PlannedFile(str(root / "index.html"), "p/index.html", 11),
        PlannedFile(str(root / "link.html"), "p/link.html", 11),
    ]


def test_plan_dir_include(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "site")
    with Uploader("app-a", "", environ=ENVIRON) as uploader:
        assert [p.key for p in uploader.plan_dir(root, include=["*.css"])] == ["css/a.css"]


def test_plan_dir_of_a_missing_directory(tmp_path: Path) -> None:
    with (
        Uploader("app-a", "", environ=ENVIRON) as uploader,
        pytest.raises(UploadError, match="does not exist"),
    ):
        uploader.plan_dir(tmp_path / "none")


def test_tree_refuses_a_directory_swapped_for_a_symlink(tmp_path: Path) -> None:
    root = tmp_path / "site"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "f").write_text("x")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "f").write_text("secret")
    with Tree(root) as tree:
        entries = [parts for parts, _ in tree.entries()]
        assert entries == [("sub", "f")]
        (root / "sub").rename(tmp_path / "old")
        (root / "sub").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
        with pytest.raises(SymlinkOnTheWay) as raised:
            tree.open(("sub", "f"))
    assert raised.value.where == str(root / "sub")
