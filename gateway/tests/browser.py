"""The portal in a real browser: Debian's Chromium driven by Playwright against a gateway that
gateway/tests/portal.rs seeded and started (`the_portal_works_in_a_real_browser`).

    browser.py BASE_URL SCREENSHOT_DIR

Checks what a person does: search 电池 and see highlights; click a province facet and find the
count it showed; open a record, follow its linked project and come back; see the statistics
charts with their tables; open the records whose title and abstract are XSS attempts and see
them as text, with no dialog; reach the results with the keyboard alone. Every page must load
without a Content-Security-Policy violation or any other console error. A screenshot of each
page goes to SCREENSHOT_DIR for review. The browser is Debian's (RIX_CHROMIUM, default
/usr/bin/chromium): `playwright install` is never needed.

Prints one line per check and "N passed, M failed"; exits 1 on any failure.
"""

import os
import sys

from playwright.sync_api import sync_playwright

BASE, SHOTS = sys.argv[1], sys.argv[2]
CHROMIUM = os.environ.get("RIX_CHROMIUM", "/usr/bin/chromium")
XSS_TITLE = "<script>alert(1)</script>"

passed, failed = 0, 0


def check(name, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print(f"ok   {name}")
    else:
        failed += 1
        print(f"FAIL {name} {detail}")


def main():
    os.makedirs(SHOTS, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="zh-CN")
        dialogs, errors = [], []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)

        def shot(name):
            page.screenshot(path=os.path.join(SHOTS, f"{name}.png"), full_page=True)

        # Search 电池 from the box, as a person types it.
        page.goto(BASE + "/")
        page.fill("#q", "电池")
        page.press("#q", "Enter")
        page.wait_for_load_state()
        marks = page.locator("ol.hits mark").count()
        check("search 电池 shows highlighted results", marks > 0, f"{marks} marks")
        check("the URL holds the query", "q=%E7%94%B5%E6%B1%A0" in page.url, page.url)
        shot("search")

        # A province facet finds exactly the count it showed.
        facet = page.locator('a[data-facet="region"]').first
        shown = int(facet.locator(".count").inner_text())
        province = facet.locator(".label").inner_text()
        facet.click()
        page.wait_for_load_state()
        total = int(page.locator("#total").inner_text())
        check("a province facet's count matches its results", total == shown, f"{total} != {shown}")
        check("the province shows as a chip", province in page.locator(".chips").inner_text())
        shot("search-province")

        # A record, its linked project, and back.
        page.goto(BASE + "/records/prov-530000/a00001")
        title = page.locator("h1").inner_text()
        shot("record")
        page.locator("ul.links a").first.click()
        page.wait_for_load_state()
        check("the linked project opens", "项目编号" in page.locator("main").inner_text())
        shot("project")
        page.go_back()
        page.wait_for_load_state()
        check("back returns to the record", page.locator("h1").inner_text() == title)

        # Statistics: four charts, each with its table.
        page.goto(BASE + "/stats")
        check("four charts", page.locator("svg.bars").count() == 4)
        check("four tables", page.locator("table").count() == 4)
        check("the bars are drawn", page.locator("svg.bars rect").count() > 4)
        shot("stats")

        # The XSS records render as text; nothing runs.
        page.goto(BASE + "/records/prov-530000/a00002")
        check("an XSS title is text", page.locator("h1").inner_text() == XSS_TITLE)
        check("an XSS abstract adds no image", page.locator("img").count() == 0)
        shot("xss-record")
        page.goto(BASE + "/?q=alert")
        check("the XSS result's title is text", XSS_TITLE in page.locator("ol.hits").inner_text())
        shot("xss-search")
        check("no dialog opened", not dialogs, repr(dialogs))

        # Keyboard only: from the top of the page, Tab reaches the first result.
        page.goto(BASE + "/?q=%E7%94%B5%E6%B1%A0")
        reached = False
        for _ in range(60):
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement.closest('ol.hits') !== null"):
                reached = True
                break
        check("the keyboard reaches the results", reached)
        with page.expect_navigation():
            page.keyboard.press("Enter")
        check("Enter opens the focused result", "/entries/" in page.url, page.url)

        # The rest, for the screenshots: about, English, a phone.
        page.goto(BASE + "/about")
        shot("about")
        page.goto(BASE + "/?lang=en&q=%E7%94%B5%E6%B1%A0")
        check("the English interface", page.locator("label[for=q]").inner_text() == "Search terms")
        shot("search-en")
        phone = browser.new_page(viewport={"width": 390, "height": 844})
        phone.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        phone.goto(BASE + "/?q=%E7%94%B5%E6%B1%A0")
        width = phone.evaluate("document.documentElement.scrollWidth")
        check("no sideways scrolling at a phone's width", width <= 390, f"{width}px")
        phone.screenshot(path=os.path.join(SHOTS, "search-phone.png"), full_page=True)

        check("no console errors (CSP violations included)", not errors, repr(errors[:5]))
        browser.close()
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
