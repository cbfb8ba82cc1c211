"""The portal in a real browser: Debian's Chromium driven by Playwright against a gateway that
gateway/tests/portal.rs seeded and started (`the_portal_works_in_a_real_browser`).

    browser.py BASE_URL SCREENSHOT_DIR

Checks what a person does: search 电池 and see highlights; click a province facet and find the
count it showed; open a record, follow its linked project and come back; see the statistics
charts with their tables; open the records whose title and abstract are XSS attempts and see
them as text, with no dialog; reach the results with the keyboard alone; page forward and back
through the results; see a record's version history. With JavaScript, htmx swaps the results
region in place (the document stays, the URL follows); with JavaScript off the same clicks load
whole pages and find the same results. Every page must load without a Content-Security-Policy
violation (listened for as `securitypolicyviolation` events and as console errors) or any other
console error. A screenshot of each page goes to SCREENSHOT_DIR for review. The browser is Debian's (RIX_CHROMIUM, default
/usr/bin/chromium): `playwright install` is never needed.

Prints one line per check and "N passed, M failed"; exits 1 on any failure.
"""

import os
import sys

from playwright.sync_api import sync_playwright

BASE, SHOTS = sys.argv[1], sys.argv[2]
CHROMIUM = os.environ.get("RIX_CHROMIUM", "/usr/bin/chromium")
XSS_TITLE = "<script>alert(1)</script>"

# Installed in every document before its own scripts (Playwright's init scripts are not subject
# to the page's policy): reports policy violations, counts settled htmx swaps.
WATCH = """
document.addEventListener('securitypolicyviolation', e =>
  window.__rixViolation(e.violatedDirective + ' ' + (e.blockedURI || 'inline') + ' ' + e.sourceFile
    + ':' + e.lineNumber + ' on ' + location.pathname + location.search + ' at '
    + (e.target && e.target.outerHTML ? e.target.outerHTML.slice(0, 160) : String(e.target))));
document.addEventListener('htmx:afterSettle', () => { window.__swaps = (window.__swaps || 0) + 1; });
"""

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
        context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN")
        violations = []
        context.expose_function("__rixViolation", lambda v: violations.append(v))
        context.add_init_script(WATCH)
        page = context.new_page()
        dialogs, errors = [], []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)

        def hx(action):
            """Runs a click or a key press that htmx answers with a swap of the results region;
            waits for the swap to settle. True when the document stayed (no full page load)."""
            before = page.evaluate("window.__swaps || 0")
            page.evaluate("window.__sameDocument = true")
            action()
            try:
                page.wait_for_function(f"() => (window.__swaps || 0) > {before}", timeout=10000)
            except Exception:
                return False
            return page.evaluate("window.__sameDocument === true")

        def hits(p):
            return p.locator("ol.hits h3 a").evaluate_all("as => as.map(a => a.getAttribute('href'))")

        def shot(name):
            page.screenshot(path=os.path.join(SHOTS, f"{name}.png"), full_page=True)

        # Search 电池 from the box, as a person types it.
        page.goto(BASE + "/")
        check("htmx is loaded, from this origin", page.evaluate("typeof htmx") == "object")
        page.fill("#q", "电池")
        stayed = hx(lambda: page.press("#q", "Enter"))
        check("the search form swaps the results in place (htmx)", stayed)
        marks = page.locator("ol.hits mark").count()
        check("search 电池 shows highlighted results", marks > 0, f"{marks} marks")
        check("the URL holds the query", "q=%E7%94%B5%E6%B1%A0" in page.url, page.url)
        check("the tab's title follows the swap", page.title().startswith("电池 · "), page.title())
        shot("search")

        # A province facet finds exactly the count it showed.
        facet = page.locator('a[data-facet="region"]').first
        shown = int(facet.locator(".count").inner_text())
        province = facet.locator(".label").inner_text()
        all_total = int(page.locator("#total").inner_text())
        stayed = hx(lambda: facet.click())
        check("a facet link swaps the results in place (htmx)", stayed)
        total = int(page.locator("#total").inner_text())
        check("a province facet's count matches its results", total == shown, f"{total} != {shown}")
        check("the province shows as a chip", province in page.locator(".chips").inner_text())
        check("the URL follows the swap", "region=" in page.url and "q=" in page.url, page.url)
        shot("search-province")
        # The pushed URL is a real page: loaded afresh it shows the same.
        page.goto(page.url)
        check("the pushed URL loads the same results", int(page.locator("#total").inner_text()) == shown)
        # Removing the chip, in place.
        stayed = hx(lambda: page.locator(".chips a.chip").last.click())
        check("a chip's removal swaps in place (htmx)", stayed)
        back_total = int(page.locator("#total").inner_text())
        check("removing the chip gives the search back", back_total == all_total,
              f"{back_total} != {all_total} at {page.url}")
        # Sort by date, in place.
        stayed = hx(lambda: page.locator("p.sort a").first.click())
        check("sorting swaps in place (htmx)", stayed and "sort=date" in page.url, page.url)

        # Paging through the cursor: next, next, previous is the second page again.
        page.goto(BASE + "/?limit=5&sort=date")
        first = hits(page)
        check("next page in place (htmx)", hx(lambda: page.locator("nav.pages a.next").click()))
        second, second_url = hits(page), page.url
        check("next page in place again (htmx)", hx(lambda: page.locator("nav.pages a.next").click()))
        third = hits(page)
        check("three different pages", len({tuple(first), tuple(second), tuple(third)}) == 3)
        check("previous page in place (htmx)", hx(lambda: page.locator("nav.pages a.prev").click()))
        check("previous is the page seen before", hits(page) == second, f"{hits(page)} != {second}")
        check("previous's URL is that page's", page.url == second_url, f"{page.url} != {second_url}")
        shot("search-page-2")
        hx(lambda: page.locator("nav.pages a.prev").click())
        check("previous again is the first page", hits(page) == first)
        # The browser's back button after swaps: the page before, whole.
        page.go_back()
        page.wait_for_load_state()
        page.wait_for_function("() => document.querySelector('ol.hits') !== null")
        check("back after swaps returns to the page before", hits(page) == second, page.url)

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

        # A record's version history.
        page.goto(BASE + "/records/prov-530000/a00003")
        versions = page.locator("section.history li.version")
        check("the version history lists both versions", versions.count() == 2, str(versions.count()))
        check("the history names what changed", "简介" in versions.nth(1).inner_text(),
              versions.nth(1).inner_text())
        shot("record-history")

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

        # JavaScript off: the same clicks load whole pages and find the same.
        plain = browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN",
                                    java_script_enabled=False)
        off = plain.new_page()
        off.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)
        off.goto(BASE + "/")
        off.fill("#q", "电池")
        with off.expect_navigation():
            off.press("#q", "Enter")
        check("JS off: the form loads the results page", off.locator("ol.hits mark").count() > 0
              and "q=%E7%94%B5%E6%B1%A0" in off.url, off.url)
        facet = off.locator('a[data-facet="region"]').first
        shown = int(facet.locator(".count").inner_text())
        with off.expect_navigation():
            facet.click()
        check("JS off: a facet link finds its count", int(off.locator("#total").inner_text()) == shown)
        with off.expect_navigation():
            off.locator(".chips a.chip").last.click()
        check("JS off: a chip's removal works", off.locator(".chips a.chip").count() == 1)
        off.goto(BASE + "/?limit=5&sort=date")
        with off.expect_navigation():
            off.locator("nav.pages a.next").click()
        check("JS off: next page", hits(off) == second, off.url)
        with off.expect_navigation():
            off.locator("nav.pages a.next").click()
        check("JS off: next page again", hits(off) == third)
        with off.expect_navigation():
            off.locator("nav.pages a.prev").click()
        check("JS off: previous page", hits(off) == second)
        off.screenshot(path=os.path.join(SHOTS, "search-no-js.png"), full_page=True)
        plain.close()

        check("no Content-Security-Policy violation", not violations, repr(violations[:5]))
        check("no console errors (CSP violations included)", not errors, repr(errors[:5]))
        browser.close()
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
