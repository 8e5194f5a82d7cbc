"""``browser``: the model drives the task's web app in a real (headless) Chromium.

One browser per run, started on the first call and kept open between calls, so the page,
its state and its console survive from one action to the next. The app is started on the
first call too (``lancer.sandbox.app``). Every action answers in a few lines: what happened, the
page's URL and title, and console errors that are new since the last action.

The browser opens only the app: a URL elsewhere is refused, and requests the page makes
to any other origin are blocked (with the side effect, wanted, that Chromium's HTTP cache
is off: an edited script is never served stale).
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path
from typing import ClassVar, Literal
from urllib.parse import urlsplit

from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Route,
)
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from pydantic import Field

from lancer.browser.chromium import Chromium, ChromiumNotFound
from lancer.core.config import BrowserConfig
from lancer.core.text import truncate_middle
from lancer.core.tool import ToolArgs, ToolError, ToolResult
from lancer.sandbox.app import App, AppError

Action = Literal["goto", "click", "fill", "press", "text", "screenshot", "console", "restart_app"]
_ERROR_TYPES = ("error", "pageerror")
_CONNECTION_ERRORS = ("ERR_CONNECTION_REFUSED", "ERR_EMPTY_RESPONSE", "ERR_CONNECTION_RESET", "ERR_CONNECTION_CLOSED")


class BrowserArgs(ToolArgs):
    action: Action = Field(
        description=(
            "goto (open url), click (selector), fill (selector, text), press (key, optional "
            "selector to focus first), text (visible text of the page, or of selector), "
            "screenshot (the page, or one element with selector), console (console messages "
            "and page errors since the last console call), restart_app (restart the app's "
            "server, e.g. after editing server code; then the page is reloaded)."
        )
    )
    url: str | None = Field(None, description="goto: a path of the app such as /settings, or a full URL of the app.")
    selector: str | None = Field(
        None,
        description=('A Playwright selector: CSS (#save, li.todo >> nth=0), text=Save, or role=button[name="Save"].'),
    )
    text: str | None = Field(None, description="fill: the text the field gets (it replaces the field's value).")
    key: str | None = Field(None, description="press: a key or chord, e.g. Enter, Tab, Escape, ArrowDown, Control+A.")


class BrowserTool:
    name: ClassVar[str] = "browser"
    description: ClassVar[str] = (
        "Use the task's web app in a headless Chromium, as a user would: open pages, click, "
        "type, press keys, read text, take screenshots, read the console. The app is started "
        "for you on the first call (goto takes a path such as /). The browser stays open "
        "between calls. Actions time out after a few seconds; each answers with the page's "
        "URL and title and any new console errors."
    )
    Args: ClassVar[type[ToolArgs]] = BrowserArgs

    def __init__(
        self, app: App, out_dir: Path, supports_images: bool, config: BrowserConfig, max_output_chars: int
    ) -> None:
        self._app = app
        self._shots_dir = out_dir / "screenshots"
        self._supports_images = supports_images
        self._config = config
        self._max_output = max_output_chars
        self._chromium: Chromium | None = None
        self._browser: Browser | None = None
        self._context: BrowserContext | None = None
        self._page: Page | None = None
        self._pages: list[Page] = []  # every page adopted, so none gets listeners twice
        # Console messages and page errors of every page, oldest first, as display lines
        # tagged with their type; two cursors: the console action's and the error report's.
        self._log: list[tuple[str, str]] = []
        self._console_seen = 0
        self._errors_seen = 0
        self._shots = 0

    def run(self, args: BrowserArgs) -> ToolResult:
        notes: list[str] = []
        # Whether the app still runs costs a sandbox command (tens of ms in docker): asked
        # when a page is opened and after a failure, not on every click.
        page = self._ensure_page(notes, check_app=args.action == "goto")
        action = args.action
        try:
            if action == "goto":
                what = self._goto(page, _require(args.url, "url", action))
            elif action == "click":
                selector = _require(args.selector, "selector", action)
                page.click(selector, timeout=self._action_ms)
                self._settle(page)
                what = f"clicked {selector}"
            elif action == "fill":
                selector = _require(args.selector, "selector", action)
                page.fill(selector, _require(args.text, "text", action), timeout=self._action_ms)
                self._settle(page)
                what = f"filled {selector} with {args.text!r}"
            elif action == "press":
                key = _require(args.key, "key", action)
                if args.selector:
                    page.press(args.selector, key, timeout=self._action_ms)
                else:
                    page.keyboard.press(key)
                self._settle(page)
                what = f"pressed {key}" + (f" in {args.selector}" if args.selector else "")
            elif action == "text":
                text = page.inner_text(args.selector or "body", timeout=self._action_ms)
                what = f"text of {args.selector or 'the page'}:\n{truncate_middle(text, self._max_output)}"
            elif action == "screenshot":
                return self._screenshot(page, args.selector, notes)
            elif action == "console":
                what = self._console()
            else:
                what = self._restart_app(page)
        except PlaywrightError as e:
            raise ToolError(self._failure(page, action, e)) from None
        return ToolResult(self._report(page, what, notes))

    # -- actions ---------------------------------------------------------------------------

    def _goto(self, page: Page, url: str) -> str:
        target = self._resolve(url)
        try:
            response = page.goto(target, timeout=self._config.navigation_timeout_s * 1000)
        except PlaywrightError as e:
            if any(code in str(e) for code in _CONNECTION_ERRORS) and not self._app.is_running():
                raise ToolError(
                    f"could not open {target}: the app is not running. Its last output:\n"
                    f"{self._app.log_tail()}\n(fix the cause, then use restart_app)"
                ) from None
            raise
        status = f" (HTTP {response.status})" if response is not None and response.status >= 400 else ""
        return f"opened {target}{status}"

    def _screenshot(self, page: Page, selector: str | None, notes: list[str]) -> ToolResult:
        self._shots_dir.mkdir(parents=True, exist_ok=True)
        self._shots += 1
        path = self._shots_dir / f"shot-{self._shots:03d}.png"
        timeout = self._config.navigation_timeout_s * 1000
        try:
            if selector:
                page.locator(selector).screenshot(path=str(path), timeout=self._action_ms)
            else:
                page.screenshot(path=str(path), timeout=timeout)
        except PlaywrightError as e:
            raise ToolError(self._failure(page, "screenshot", e)) from None
        what = f"screenshot{' of ' + selector if selector else ''} saved to {path}"
        if self._supports_images:
            return ToolResult(self._report(page, what + " (attached)", notes), images=[str(path)])
        # A text-only model gets what the picture would have told it, as text.
        try:
            text = page.inner_text(selector or "body", timeout=self._action_ms)
        except PlaywrightError:
            text = "(the page's text could not be read)"
        what += (
            f"\nThis model does not take images; the visible text instead:\n{truncate_middle(text, self._max_output)}"
        )
        return ToolResult(self._report(page, what, notes))

    def _console(self) -> str:
        new = self._log[self._console_seen :]
        self._console_seen = len(self._log)
        self._errors_seen = len(self._log)  # shown here, so not again as "new errors"
        if not new:
            return "no console messages since the last console call"
        lines = "\n".join(line for _, line in new)
        return f"{len(new)} console message(s):\n{truncate_middle(lines, self._max_output)}"

    def _restart_app(self, page: Page) -> str:
        try:
            url = self._app.restart()
        except AppError as e:
            raise ToolError(f"the app did not come back: {e}") from None
        if page.url.startswith(url):
            page.reload(timeout=self._config.navigation_timeout_s * 1000)
            return f"restarted the app at {url} and reloaded the page"
        return f"restarted the app at {url}"

    # -- browser and page state ----------------------------------------------------------------

    def _ensure_page(self, notes: list[str], check_app: bool) -> Page:
        if check_app or not self._app.started:
            try:
                note = self._app.ensure_started()
            except AppError as e:
                raise ToolError(f"the app could not be started: {e}") from None
            if note:
                notes.append(note)
        if self._page is not None and not self._page.is_closed():
            return self._page
        if self._browser is not None and not self._browser.is_connected():
            notes.append("the browser had crashed and was started again; page state is lost")
            self._shutdown_browser()
        if self._browser is None:
            try:
                self._chromium = Chromium()
                self._browser = self._chromium.browser
            except (ChromiumNotFound, PlaywrightError) as e:
                self._shutdown_browser()
                raise ToolError(f"the browser could not be started: {e}") from None
            notes.append(f"the app is at {self._app.url}; its output goes to {self._app.log_path} in the sandbox")
        try:
            if self._context is None:
                self._context = self._browser.new_context(
                    viewport={"width": self._config.viewport_width, "height": self._config.viewport_height}
                )
                self._context.route(_other_origins(self._app.url), _block)
                self._context.on("page", self._adopt)
            page = self._context.new_page()
        except PlaywrightError as e:  # the browser died under us: start afresh next time
            self._shutdown_browser()
            raise ToolError(f"the browser failed ({_describe(e)}); it is started again on the next call") from None
        self._adopt(page)  # usually done already, by the "page" event
        return page

    def _adopt(self, page: Page) -> None:
        """A new page (the first one, or a tab the app opened) becomes the current page."""
        if page in self._pages:
            return
        self._pages.append(page)
        page.set_default_timeout(self._action_ms)
        page.on("console", self._on_console)
        page.on("pageerror", self._on_page_error)
        if self._page is not None and not self._page.is_closed():
            self._log.append(("info", f"[lancer] a new page opened ({page.url}); actions now go to it"))
        self._page = page

    def _on_page_error(self, error: PlaywrightError) -> None:
        self._log.append(("pageerror", f"[page error] {error.name}: {error.message}"))

    def _on_console(self, message: ConsoleMessage) -> None:
        where = message.location.get("url", "")
        line = message.location.get("lineNumber")
        origin = f" ({where}:{line + 1})" if where and line is not None else ""
        self._log.append((message.type, f"[{message.type}] {message.text}{origin}"))

    def _settle(self, page: Page) -> None:
        if self._config.settle_ms:
            page.wait_for_timeout(self._config.settle_ms)

    def _resolve(self, url: str) -> str:
        """A path of the app, or a full URL of the app; anything else is refused."""
        base = self._app.url
        url = url.strip()
        if re.match(r"^(localhost|127\.0\.0\.1)(:|/|$)", url):
            url = "http://" + url
        if not re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", url):
            return base + "/" + url.lstrip("/")
        parts, app = urlsplit(url), urlsplit(base)
        if parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost") and parts.port == app.port:
            return url
        raise ToolError(f"the browser opens only the app, at {base}: give a path such as /settings, or a URL under it")

    def _report(self, page: Page, what: str, notes: list[str]) -> str:
        lines = [*(f"[{n}]" for n in notes), what]
        if not page.is_closed():
            lines.append(f"page: {page.url} {_title(page)}")
        new_errors = [line for kind, line in self._log[self._errors_seen :] if kind in _ERROR_TYPES]
        self._errors_seen = len(self._log)
        if new_errors:
            shown = "\n".join(new_errors[-20:])
            lines.append(f"new console errors ({len(new_errors)}):\n{shown}")
        return truncate_middle("\n".join(lines), self._max_output)

    def _failure(self, page: Page, action: str, error: PlaywrightError) -> str:
        if not self._browser or not self._browser.is_connected() or page.is_closed():
            self._page = None  # the next call opens a fresh page (or browser)
        hint = " (nothing matched in time: check the selector with text or screenshot)"
        message = _describe(error, hint if isinstance(error, PlaywrightTimeout) else "")
        notes = []
        if not self._app.is_running():
            notes.append(f"the app is not running; its last output:\n{self._app.log_tail()}\n(use restart_app)")
        return self._report(page, f"{action} failed: {message}", notes)

    @property
    def _action_ms(self) -> float:
        return self._config.action_timeout_s * 1000

    def _shutdown_browser(self) -> None:
        for step in (
            self._context.close if self._context else None,
            self._browser.close if self._browser else None,
            self._chromium.close if self._chromium else None,
        ):
            if step is not None:
                with contextlib.suppress(Exception):  # already gone: closing is best effort
                    step()
        self._chromium = self._browser = self._context = self._page = None
        self._pages = []

    def close(self) -> None:
        self._shutdown_browser()
        self._app.stop()


def _require(value: str | None, field: str, action: str) -> str:
    if value is None or value == "":
        raise ToolError(f"{action} needs {field}")
    return value


def _other_origins(app_url: str) -> re.Pattern[str]:
    """URLs that are not the app's (either loopback name, the app's port)."""
    port = urlsplit(app_url).port
    return re.compile(rf"^(?!https?://(127\.0\.0\.1|localhost):{port}(/|$))")


def _block(route: Route) -> None:
    route.abort("blockedbyclient")


def _title(page: Page) -> str:
    try:
        return repr(page.title())
    except PlaywrightError:  # mid-navigation
        return ""


def _describe(error: PlaywrightError, hint: str = "") -> str:
    """Playwright's message without the API prefix, then ``hint``, then a few call-log lines."""
    lines = [line for line in error.message.splitlines() if line.strip()]
    first = re.sub(r"^\w+\.\w+: ", "", lines[0]) if lines else str(error)
    log = [line.strip() for line in lines[1:] if line.strip().startswith("-")][:3]
    return first + hint + "".join(f"\n  {line}" for line in log)
