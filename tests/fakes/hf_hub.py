"""A Hugging Face Hub stand-in on loopback: what ``huggingface_hub.hf_hub_download`` asks of
the real Hub for a file of a dataset repository, answered as the Hub answers it.

``HEAD`` and ``GET /datasets/{owner}/{name}/resolve/{revision}/{path}`` of a file it holds:
200 with the headers the client reads (``X-Repo-Commit``, the file's ``ETag``,
``Content-Length``), then the bytes. An unknown repository is the Hub's 404 with
``X-Error-Code: RepoNotFound`` (the client raises RepositoryNotFoundError), an unknown
file in a known one ``X-Error-Code: EntryNotFound``. Every request is recorded, so a test
can tell a download from a cache hit.

Point the client at it with ``HF_ENDPOINT=server.url``.
"""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FakeHub:
    def __init__(self, host: str = "127.0.0.2") -> None:
        self.host = host
        self.files: dict[tuple[str, str], bytes] = {}  # (repo_id, path) -> bytes
        self.requests: list[tuple[str, str]] = []  # (method, path)
        self._server: ThreadingHTTPServer | None = None

    def add_dataset_file(self, repo_id: str, path: str, data: bytes) -> None:
        self.files[repo_id, path] = data

    def commit(self, repo_id: str) -> str:
        """The repository's one commit: a hash of what it holds, as stable as a real one."""
        digest = hashlib.sha1(repo_id.encode())
        for (repo, path), data in sorted(self.files.items()):
            if repo == repo_id:
                digest.update(path.encode() + hashlib.sha256(data).digest())
        return digest.hexdigest()

    @property
    def url(self) -> str:
        assert self._server is not None, "not started"
        return f"http://{self.host}:{self._server.server_address[1]}"

    def __enter__(self) -> FakeHub:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def do_HEAD(self) -> None:
                self._answer(body=False)

            def do_GET(self) -> None:
                self._answer(body=True)

            def _answer(self, body: bool) -> None:
                hub.requests.append((self.command, self.path))
                parts = self.path.split("?")[0].split("/")
                # ['', 'datasets', owner, name, 'resolve', revision, *path]
                if len(parts) < 7 or parts[1] != "datasets" or parts[4] != "resolve":
                    return self._error(404, "EntryNotFound", "Not a file URL")
                repo_id, path = f"{parts[2]}/{parts[3]}", "/".join(parts[6:])
                if not any(repo == repo_id for repo, _ in hub.files):
                    return self._error(404, "RepoNotFound", "Repository not found")
                if (repo_id, path) not in hub.files:
                    return self._error(404, "EntryNotFound", f"{path} does not exist on 'main'")
                data = hub.files[repo_id, path]
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
                self.send_header("X-Repo-Commit", hub.commit(repo_id))
                self.end_headers()
                if body:
                    self.wfile.write(data)

            def _error(self, status: int, code: str, message: str) -> None:
                payload = json.dumps({"error": message}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.send_header("X-Error-Code", code)
                self.send_header("X-Error-Message", message)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer((self.host, 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()
