"""Every editor command and its errors, over every backend."""

from __future__ import annotations

from typing import Any

import pytest

from lancer.core.tool import ToolError
from lancer.sandbox import Sandbox
from lancer.tools.editor import EditorArgs, EditorTool


@pytest.fixture
def editor(sandbox: Sandbox) -> EditorTool:
    return EditorTool(sandbox, max_output_chars=10_000)


def edit(editor: EditorTool, **arguments: Any) -> str:
    return editor.run(EditorArgs(**arguments)).output


def read(sandbox: Sandbox, path: str) -> str:
    return sandbox.read_file(f"{sandbox.workdir}/{path}").decode()


def test_view_numbers_lines_and_honours_ranges(editor: EditorTool) -> None:
    assert edit(editor, command="view", path="hello.txt") == "     1\thello\n     2\tworld\n     3\t"
    assert edit(editor, command="view", path="hello.txt", view_range=[2, 2]) == "     2\tworld"
    assert edit(editor, command="view", path="hello.txt", view_range=[2, -1]).startswith("     2\tworld")


def test_view_bad_range_and_missing_file(editor: EditorTool) -> None:
    with pytest.raises(ToolError, match=r"outside the file's 1\.\.3 lines"):
        edit(editor, command="view", path="hello.txt", view_range=[2, 9])
    with pytest.raises(ToolError, match=r"nope\.txt does not exist"):
        edit(editor, command="view", path="nope.txt")


def test_view_lists_a_directory(editor: EditorTool) -> None:
    listing = edit(editor, command="view", path=".")
    assert "./src/app.py" in listing and "./hello.txt" in listing and ".git" not in listing


def test_create_writes_a_new_file_and_refuses_to_overwrite(editor: EditorTool, sandbox: Sandbox) -> None:
    assert "Created docs/notes.md" in edit(editor, command="create", path="docs/notes.md", file_text="# notes\n")
    assert read(sandbox, "docs/notes.md") == "# notes\n"
    with pytest.raises(ToolError, match="already exists"):
        edit(editor, command="create", path="hello.txt", file_text="x")
    with pytest.raises(ToolError, match="create needs file_text"):
        edit(editor, command="create", path="other.md")


def test_str_replace_edits_and_shows_a_snippet(editor: EditorTool, sandbox: Sandbox) -> None:
    output = edit(editor, command="str_replace", path="src/app.py", old_str="'hi '", new_str="'hello '")
    assert "Edited src/app.py" in output and "return 'hello ' + name" in output
    assert read(sandbox, "src/app.py") == "def greet(name):\n    return 'hello ' + name\n"


def test_str_replace_needs_exactly_one_match(editor: EditorTool, sandbox: Sandbox) -> None:
    with pytest.raises(ToolError, match="occurs 0 times"):
        edit(editor, command="str_replace", path="hello.txt", old_str="absent", new_str="x")
    edit(editor, command="create", path="twice.txt", file_text="a\nb\na\n")
    with pytest.raises(ToolError, match=r"occurs 2 times in twice.txt \(lines 1, 3\)"):
        edit(editor, command="str_replace", path="twice.txt", old_str="a", new_str="c")
    assert read(sandbox, "twice.txt") == "a\nb\na\n"


def test_insert_after_a_line(editor: EditorTool, sandbox: Sandbox) -> None:
    edit(editor, command="insert", path="hello.txt", insert_line=1, new_str="there")
    assert read(sandbox, "hello.txt") == "hello\nthere\nworld\n"
    edit(editor, command="insert", path="hello.txt", insert_line=0, new_str="top")
    assert read(sandbox, "hello.txt").startswith("top\nhello")
    with pytest.raises(ToolError, match="past the end"):
        edit(editor, command="insert", path="hello.txt", insert_line=99, new_str="x")


def test_undo_edit_reverts_edits_one_at_a_time_and_creations(editor: EditorTool, sandbox: Sandbox) -> None:
    edit(editor, command="str_replace", path="hello.txt", old_str="world", new_str="there")
    edit(editor, command="insert", path="hello.txt", insert_line=0, new_str="top")
    edit(editor, command="undo_edit", path="hello.txt")
    assert read(sandbox, "hello.txt") == "hello\nthere\n"
    edit(editor, command="undo_edit", path="hello.txt")
    assert read(sandbox, "hello.txt") == "hello\nworld\n"
    with pytest.raises(ToolError, match=r"no edit of hello\.txt to undo"):
        edit(editor, command="undo_edit", path="hello.txt")
    edit(editor, command="create", path="new.txt", file_text="x")
    assert "no longer exists" in edit(editor, command="undo_edit", path="new.txt")
    with pytest.raises(ToolError, match="does not exist"):
        edit(editor, command="view", path="new.txt")


@pytest.mark.parametrize("path", ["../outside.txt", "src/../../outside.txt", "/etc/passwd"])
def test_paths_outside_the_repository_are_refused(editor: EditorTool, path: str) -> None:
    with pytest.raises(ToolError, match=r"outside the repository|is absolute"):
        edit(editor, command="view", path=path)


def test_a_symlink_pointing_outside_is_refused(editor: EditorTool, sandbox: Sandbox) -> None:
    sandbox.exec(["ln", "-s", "/etc", "escape"])
    with pytest.raises(ToolError, match="outside the repository"):
        edit(editor, command="view", path="escape/passwd")
    with pytest.raises(ToolError, match="outside the repository"):
        edit(editor, command="create", path="escape/evil", file_text="x")


def test_binary_files_are_not_shown_as_text(editor: EditorTool, sandbox: Sandbox) -> None:
    sandbox.write_file(f"{sandbox.workdir}/blob.bin", bytes(range(256)))
    with pytest.raises(ToolError, match="not a UTF-8 text file"):
        edit(editor, command="view", path="blob.bin")
