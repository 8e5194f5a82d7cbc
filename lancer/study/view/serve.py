"""``lancer view --serve``: the pages on 127.0.0.1, rebuilt as the eval writes new results.

A watcher thread rebuilds what changed every second; each page asks ``/__stamp?PAGE``
every two seconds and reloads itself when its stamp moved. Only loopback is bound.
"""

from __future__ import annotations

import sys
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

from lancer.study.view import ViewBuilder

WATCH_INTERVAL_S = 1.0


def make_server(builder: ViewBuilder, port: int = 0) -> ThreadingHTTPServer:
    """A server for builder's pages (not started); port 0 picks a free one."""
    root = builder.out.parent

    class Handler(SimpleHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path == "/__stamp":
                page = unquote(url.query).lstrip("/")
                self._text(builder.stamps.get(page, ""))
                return
            if url.path == "/":
                self.send_response(302)
                self.send_header("Location", "/" + builder.out.name)
                self.end_headers()
                return
            super().do_GET()

        def _text(self, text: str) -> None:
            body = text.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Cache-Control", "no-store")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # requests are not news
            pass

    return ThreadingHTTPServer(("127.0.0.1", port), partial(Handler, directory=str(root)))


def watch(builder: ViewBuilder, stop: threading.Event) -> None:
    """Rebuilds changed pages until ``stop`` is set; a failed rebuild is retried next tick."""
    said = ""
    while not stop.wait(WATCH_INTERVAL_S):
        try:
            builder.build()
            said = ""
        except Exception as e:  # a file caught mid-write: the next tick reads it whole
            # One that lasts (the folder removed, a bug) is said once, not hidden for good.
            if f"{e}" != said:
                said = f"{e}"
                why = f"{type(e).__name__}: {e}"
                print(f"lancer view: the page could not be rebuilt ({why}); retrying", file=sys.stderr)


def serve(builder: ViewBuilder, port: int = 0) -> None:
    """Serves until Ctrl-C; prints the URL."""
    server = make_server(builder, port)
    stop = threading.Event()
    watcher = threading.Thread(target=watch, args=(builder, stop), daemon=True)
    watcher.start()
    host, bound = server.server_address[:2]
    print(f"serving on http://{host!s}:{bound}/{builder.out.name} (Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        server.server_close()
        watcher.join(timeout=5)
