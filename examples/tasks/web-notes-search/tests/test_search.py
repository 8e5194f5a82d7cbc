"""Hidden browser test: the grader runs it against APP_URL with lancer's page fixture."""

from playwright.sync_api import Page, expect

TIMEOUT_MS = 3000


def search(page: Page, app_url: str, query: str) -> None:
    page.goto(app_url + "/")
    page.fill("#search", query)
    page.press("#search", "Enter")


def test_search_ignores_case_in_titles(page: Page, app_url: str) -> None:
    for query in ("milk", "MILK", "mIlK"):
        search(page, app_url, query)
        expect(page.locator(".note h2")).to_have_text(["Buy Milk"], timeout=TIMEOUT_MS)


def test_search_ignores_case_in_bodies(page: Page, app_url: str) -> None:
    search(page, app_url, "middlemarch")
    expect(page.locator(".note h2")).to_have_text(["Book club"], timeout=TIMEOUT_MS)


def test_no_match_still_says_so(page: Page, app_url: str) -> None:
    search(page, app_url, "zebra")
    expect(page.locator("#status")).to_have_text("No notes match zebra.", timeout=TIMEOUT_MS)
    expect(page.locator(".note")).to_have_count(0, timeout=TIMEOUT_MS)
