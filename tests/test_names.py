"""Task names never become paths: folder names are unique, bounded, safe, and map back through run.json."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from multitask._names import SLUG_LENGTH, slug, task_dirs

_ODD = st.sampled_from(["..", ".", "/", "\\", "a/b", "a_b", "a\\b", "a b", "", " ", "名前", "1.0", "1", "CON", "x" * 1000])
names = st.lists(st.one_of(st.text(max_size=60), _ODD), min_size=1, max_size=40, unique=True)


@settings(max_examples=300, deadline=None)
@given(names)
def test_task_folders_are_unique_safe_bounded_and_reversible(tasks: list[str]) -> None:
    dirs = task_dirs(tasks)
    assert list(dirs) == tasks  # one per task, in order: run.json maps them back
    assert len(set(dirs.values())) == len(tasks)
    for folder in dirs.values():
        assert re.fullmatch(r"[0-9]{3,}-[A-Za-z0-9_-]+", folder), folder
        assert len(folder) <= SLUG_LENGTH + 8
        assert folder not in (".", "..") and "/" not in folder and "\\" not in folder


def test_names_equal_after_slugging_get_their_own_folders() -> None:
    dirs = task_dirs(["a/b", "a_b", "a\\b", "a b", ".."])
    assert slug("a/b") == slug("a\\b") == slug("a b") == "a-b"
    assert len(set(dirs.values())) == 5 and dirs[".."] == "004-task"
