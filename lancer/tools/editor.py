"""``editor``: view, create and edit files in the repository, with undo.

Paths are relative to the repository root; anything that resolves outside it (``..``,
an absolute path, a symlink pointing out) is refused, so the agent edits only its tree.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from lancer.core.sandbox import Sandbox
from lancer.core.text import truncate_middle
from lancer.core.tool import ToolArgs, ToolError, ToolResult

_SNIPPET_CONTEXT = 4
# Prints the kind (dir/file/none) and the real path of $1, following symlinks.
_STAT_SCRIPT = (
    'p=$(realpath -m -- "$1") || exit 1; '
    'if [ -d "$p" ]; then t=dir; elif [ -e "$p" ]; then t=file; else t=none; fi; '
    'printf \'%s\\n%s\' "$t" "$p"'
)


class EditorArgs(ToolArgs):
    command: Literal["view", "create", "str_replace", "insert", "undo_edit"]
    path: str = Field(description="Path relative to the repository root, e.g. src/app.js.")
    view_range: list[int] | None = Field(
        None, description="view: [start, end] line numbers, 1-based and inclusive; end -1 means to the end."
    )
    file_text: str | None = Field(None, description="create: the content of the new file.")
    old_str: str | None = Field(None, description="str_replace: text that occurs exactly once in the file.")
    new_str: str | None = Field(None, description="str_replace: the replacement; insert: the text to insert.")
    insert_line: int | None = Field(None, ge=0, description="insert: insert after this line (0: at the top).")


class EditorTool:
    name: ClassVar[str] = "editor"
    description: ClassVar[str] = (
        "View, create and edit files. Commands: view (a file with line numbers, optionally "
        "view_range; a directory lists two levels), create (a new file with file_text), "
        "str_replace (replace old_str, which must occur exactly once, with new_str), insert "
        "(new_str after line insert_line), undo_edit (revert the last edit of path). Paths are "
        "relative to the repository root."
    )
    Args: ClassVar[type[ToolArgs]] = EditorArgs

    def __init__(self, sandbox: Sandbox, max_output_chars: int) -> None:
        self._sandbox = sandbox
        self._max_output = max_output_chars
        self._root: str | None = None
        # Earlier contents per file, newest last; None: the file did not exist.
        self._history: dict[str, list[bytes | None]] = {}

    def run(self, args: EditorArgs) -> ToolResult:
        kind, real = self._resolve(args.path)
        if args.command == "view":
            return ToolResult(self._view(args, kind, real))
        if args.command == "create":
            return ToolResult(self._create(args, kind, real))
        if args.command == "undo_edit":
            return ToolResult(self._undo(args.path, real))
        if kind != "file":
            raise ToolError(f"{args.path} is not a file" if kind == "dir" else f"{args.path} does not exist")
        text = self._read_text(args.path, real)
        if args.command == "str_replace":
            new_text, line = self._replace(args, text)
        else:
            new_text, line = self._insert(args, text)
        self._write(real, new_text.encode())
        return ToolResult(f"Edited {args.path}. {self._snippet(new_text, line)}")

    def _resolve(self, path: str) -> tuple[str, str]:
        if not path.strip():
            raise ToolError("path is empty; give a path relative to the repository root")
        if path.startswith("/"):
            raise ToolError(f"{path} is absolute; give a path relative to the repository root, e.g. src/app.js")
        if self._root is None:
            self._root = self._stat(".")[1]
        kind, real = self._stat(path)
        if real != self._root and not real.startswith(self._root.rstrip("/") + "/"):
            raise ToolError(f"{path} resolves outside the repository; only files inside it can be used")
        return kind, real

    def _stat(self, path: str) -> tuple[str, str]:
        result = self._sandbox.exec(["sh", "-c", _STAT_SCRIPT, "stat", path], timeout=30)
        if result.exit_code != 0:
            raise ToolError(f"cannot resolve {path}: {result.text.strip()}")
        kind, real = result.stdout.decode().split("\n", 1)
        return kind, real

    def _read_text(self, path: str, real: str) -> str:
        data = self._sandbox.read_file(real)
        try:
            return data.decode()
        except UnicodeDecodeError:
            raise ToolError(f"{path} is not a UTF-8 text file; inspect it with bash instead") from None

    def _write(self, real: str, data: bytes, existed: bool = True) -> None:
        previous = self._sandbox.read_file(real) if existed else None
        self._history.setdefault(real, []).append(previous)
        self._sandbox.write_file(real, data)

    def _view(self, args: EditorArgs, kind: str, real: str) -> str:
        if kind == "none":
            raise ToolError(f"{args.path} does not exist")
        if kind == "dir":
            if args.view_range:
                raise ToolError("view_range works on files, not directories")
            listing = self._sandbox.exec(
                ["sh", "-c", 'cd "$1" && find . -maxdepth 2 -not -path "*/.git*" -not -name "." | sort', "ls", real],
                timeout=30,
            )
            return truncate_middle(f"Files in {args.path} (two levels):\n{listing.text}", self._max_output)
        lines = self._read_text(args.path, real).split("\n")
        start, end = 1, len(lines)
        if args.view_range:
            if len(args.view_range) != 2:
                raise ToolError("view_range takes two numbers: [start, end]")
            start, end = args.view_range
            end = len(lines) if end == -1 else end
            if not 1 <= start <= len(lines) or end < start or end > len(lines):
                raise ToolError(f"view_range {args.view_range} is outside the file's 1..{len(lines)} lines")
        numbered = _number(lines[start - 1 : end], start)
        return truncate_middle(numbered, self._max_output)

    def _create(self, args: EditorArgs, kind: str, real: str) -> str:
        if args.file_text is None:
            raise ToolError("create needs file_text")
        if kind != "none":
            raise ToolError(f"{args.path} already exists; edit it with str_replace or insert")
        self._write(real, args.file_text.encode(), existed=False)
        return f"Created {args.path} ({len(args.file_text.splitlines())} lines)."

    def _replace(self, args: EditorArgs, text: str) -> tuple[str, int]:
        if args.old_str is None:
            raise ToolError("str_replace needs old_str")
        if args.old_str == "":
            raise ToolError("old_str is empty; give text that occurs exactly once in the file")
        count = text.count(args.old_str)
        if count != 1:
            where = ""
            if count > 1:
                lines = [str(text[:i].count("\n") + 1) for i in _find_all(text, args.old_str)]
                where = f" (lines {', '.join(lines[:10])})"
            raise ToolError(
                f"old_str occurs {count} times in {args.path}{where}; it must occur exactly once"
                + ("; include more surrounding lines to make it unique" if count else "")
            )
        line = text[: text.index(args.old_str)].count("\n") + 1
        return text.replace(args.old_str, args.new_str or ""), line

    def _insert(self, args: EditorArgs, text: str) -> tuple[str, int]:
        if args.insert_line is None or args.new_str is None:
            raise ToolError("insert needs insert_line and new_str")
        lines = text.split("\n")
        if args.insert_line > len(lines):
            raise ToolError(f"insert_line {args.insert_line} is past the end of the file ({len(lines)} lines)")
        new_lines = args.new_str.split("\n")
        return "\n".join(lines[: args.insert_line] + new_lines + lines[args.insert_line :]), args.insert_line + 1

    def _undo(self, path: str, real: str) -> str:
        history = self._history.get(real)
        if not history:
            raise ToolError(f"no edit of {path} to undo")
        previous = history.pop()
        if previous is None:
            self._sandbox.exec(["rm", "-f", "--", real], timeout=30)
            return f"Undid the creation of {path}; it no longer exists."
        self._sandbox.write_file(real, previous)
        return f"Undid the last edit of {path}. {self._snippet(previous.decode(errors='replace'), 1, whole=True)}"

    def _snippet(self, text: str, line: int, whole: bool = False) -> str:
        lines = text.split("\n")
        first = 1 if whole else max(1, line - _SNIPPET_CONTEXT)
        last = len(lines) if whole else min(len(lines), line + _SNIPPET_CONTEXT + 8)
        body = truncate_middle(_number(lines[first - 1 : last], first), self._max_output)
        return f"Lines {first}-{last} now read:\n{body}"

    def close(self) -> None:
        pass


def _number(lines: list[str], first: int) -> str:
    return "\n".join(f"{n:6}\t{line}" for n, line in enumerate(lines, first))


def _find_all(text: str, needle: str) -> list[int]:
    found, start = [], text.find(needle)
    while start != -1:
        found.append(start)
        start = text.find(needle, start + 1)
    return found
