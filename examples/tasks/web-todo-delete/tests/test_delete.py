"""Hidden browser test: the grader runs it against APP_URL with lancer's page fixture."""

from playwright.sync_api import Page, expect

TIMEOUT_MS = 3000


def add(page: Page, title: str) -> None:
    page.fill("#title", title)
    page.press("#title", "Enter")


def test_delete_removes_the_clicked_todo(page: Page, app_url: str) -> None:
    page.goto(app_url + "/")
    for title in ("milk", "eggs", "bread"):
        add(page, title)
    page.click("role=button[name='Delete eggs']")
    expect(page.locator(".todo .title")).to_have_text(["milk", "bread"], timeout=TIMEOUT_MS)
    expect(page.locator("#counter")).to_have_text("2 items left", timeout=TIMEOUT_MS)


def test_delete_the_last_todo(page: Page, app_url: str) -> None:
    page.goto(app_url + "/")
    for title in ("milk", "eggs"):
        add(page, title)
    page.click("role=button[name='Delete eggs']")
    expect(page.locator(".todo .title")).to_have_text(["milk"], timeout=TIMEOUT_MS)
    page.click("role=button[name='Delete milk']")
    expect(page.locator(".todo")).to_have_count(0, timeout=TIMEOUT_MS)
    expect(page.locator("#counter")).to_have_text("0 items left", timeout=TIMEOUT_MS)
