"""The notes app: serves static/ and a JSON search API.

    python3 server.py PORT

GET /api/notes?q=TEXT -> the notes whose title or body contain TEXT, as JSON.
"""

import json
import sys
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from notes import NOTES

STATIC = Path(__file__).resolve().parent / "static"


def search(query):
    """Notes whose title or body contain ``query``; all notes for an empty query."""
    query = query.strip()
    if not query:
        return list(NOTES)
    return [note for note in NOTES if query in note["title"] or query in note["body"]]


class Handler(SimpleHTTPRequestHandler):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, directory=str(STATIC), **kwargs)

    def end_headers(self):
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def do_GET(self):
        parts = urlsplit(self.path)
        if parts.path != "/api/notes":
            return super().do_GET()
        query = parse_qs(parts.query).get("q", [""])[0]
        body = json.dumps(search(query)).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8000
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    print(f"notes app on http://127.0.0.1:{port}", flush=True)
    server.serve_forever()
