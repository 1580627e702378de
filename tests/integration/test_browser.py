"""The one-click unsubscribe link, followed in a real browser.

A campaign is delivered to a dir: outbox by a server whose public_url is
its own address (http://127.0.0.1:PORT), so the List-Unsubscribe URL of a
delivered message can be opened as is.  Headless Chromium (Debian's
chromium, driven through Debian's chromedriver with selenium) opens it,
shows the address, and a click on the page's button unsubscribes it: the
suppression list then has the address (source "link"), and a campaign sent
afterwards to the same list does not mail it.

SQLite only: the page and its form are the same whatever the store, and
the store's side of a link unsubscribe is covered on both stores by
test_unsubscribe_link.py.

Nothing is skipped: without chromium, chromedriver or selenium the test
fails and says how to install them (scripts/deps.sh --test).  No tool may
download a browser or a driver: both are given by path.
"""

import email
import email.policy
import os
import re
import shutil

import pytest

import harness
from campaignhelp import Tenant, db_query
from harness import free_port

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
INSTALL = ("install them with `scripts/deps.sh --test` (Debian packages chromium, "
           "chromium-driver, python3-selenium)")

TARGET = "Carol.Browser@example.org"
OTHERS = ["dan@example.org", "erin@example.net"]
TENANT_NAME = "Browser & Sons"

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def store():
    """SQLite only (see the module's docstring)."""
    return "sqlite"


def browser_tools():
    """selenium's webdriver module, once chromium and chromedriver are known to be there."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if missing:
        pytest.fail(f"{', '.join(missing)} missing: {INSTALL}", pytrace=False)
    try:
        from selenium import webdriver
    except ImportError as e:
        pytest.fail(f"selenium cannot be imported by {shutil.which('python3')} ({e}): {INSTALL}",
                    pytrace=False)
    return webdriver


@pytest.fixture
def chrome(tmp_path):
    """A headless Chromium with a fresh profile, quit at teardown."""
    webdriver = browser_tools()
    from selenium.webdriver.chrome.service import Service

    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", f"--user-data-dir={profile}", "--window-size=1000,700"):
        opts.add_argument(arg)
    log = tmp_path / "chromedriver.log"
    service = Service(executable_path=CHROMEDRIVER, log_path=str(log))
    try:
        driver = webdriver.Chrome(service=service, options=opts)
    except Exception as e:  # the driver's own message says what is wrong
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        pytest.fail(f"cannot start headless Chromium through {CHROMEDRIVER}: {e}\n{tail}",
                    pytrace=False)
    driver.set_page_load_timeout(60)  # a loaded machine's Chromium is slow
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def server(server_factory, tmp_path, monkeypatch):
    """A delivering server whose public_url is its own address.  The port
    must be known before the server starts, so it is chosen here and
    handed to Server.start (which otherwise picks one itself)."""
    port = free_port()
    outbox = tmp_path / "outbox"
    srv = server_factory(start=False, args=[
        "--relay", f"dir:{outbox}", "--public-url", f"http://127.0.0.1:{port}",
        "--engine-poll-ms", "50", "--idle-poll-max-ms", "400", "--delivery-poll-ms", "50"])
    monkeypatch.setattr(harness, "free_port", lambda: port)
    srv.start()
    monkeypatch.undo()
    assert srv.port == port
    srv.outbox = outbox
    return srv


def send_and_wait(t, cid, timeout=30):
    t.do(cid, "send")
    return t.wait_for(cid, lambda c: c["status"] in ("completed", "failed"), timeout,
                      "the campaign to finish")


def eml_files(server):
    return set(server.outbox.glob("*.eml")) if server.outbox.exists() else set()


def recipient_of(path):
    msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    return msg["To"].addresses[0].addr_spec, msg


def png_ok(path):
    data = path.read_bytes()
    assert len(data) > 1000 and data.startswith(PNG_MAGIC), (path, len(data), data[:8])


def test_unsubscribe_in_a_browser(server, chrome, tmp_path):
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    t = Tenant(server, name=TENANT_NAME)
    lst = t.make_list()
    for addr in [TARGET] + OTHERS:
        t.add(lst["id"], addr, name=addr.split("@")[0])
    c1 = t.create(recipient_list_id=lst["id"], subject="News for {{name}}",
                  text_body="Hi {{name}}\nUnsubscribe: {{unsubscribe_url}}\n",
                  html_body="<p>Hi {{name}}</p><a href=\"{{{unsubscribe_url}}}\">Unsubscribe</a>")
    done = send_and_wait(t, c1["id"])
    assert done["status"] == "completed" and done["sent_count"] == 3, done

    # The link, from the List-Unsubscribe header of the delivered message.
    first = eml_files(server)
    by_to = dict(recipient_of(p) for p in first)
    assert set(by_to) == {TARGET, *OTHERS}, by_to.keys()
    header = str(by_to[TARGET]["List-Unsubscribe"])
    links = re.findall(r"<(http://127\.0\.0\.1:\d+/u/[A-Za-z0-9_-]{87})>", header)
    assert len(links) == 1, header
    url = links[0]
    assert url.startswith(server.base + "/u/"), (url, server.base)

    # The page: the address and the tenant, and a button; nothing changed yet.
    chrome.get(url)
    wait = WebDriverWait(chrome, 15)
    wait.until(lambda d: d.find_elements(By.TAG_NAME, "h1"))
    assert chrome.find_element(By.TAG_NAME, "h1").text == "Unsubscribe"
    assert chrome.find_element(By.CSS_SELECTOR, ".addr").text == TARGET
    body = chrome.find_element(By.TAG_NAME, "body").text
    assert TENANT_NAME in body and TARGET in body, body
    shot = tmp_path / "unsubscribe-page.png"
    assert chrome.save_screenshot(str(shot)), "the screenshot was not written"
    png_ok(shot)
    assert t.server.get(f"{t.base}/unsubscribes", headers=t.h).json()["total"] == 0

    # The click, and the confirmation, on the same URL (no redirect).
    button = chrome.find_element(By.CSS_SELECTOR, "form button[type=submit]")
    assert button.text == "Unsubscribe"
    button.click()
    # While the answer loads, the h1 found may belong to the page being left:
    # reading it then raises StaleElementReferenceException; look again.
    WebDriverWait(chrome, 15, ignored_exceptions=(StaleElementReferenceException,)).until(
        lambda d: d.find_element(By.TAG_NAME, "h1").text == "You are unsubscribed")
    assert chrome.find_element(By.CSS_SELECTOR, ".addr").text == TARGET
    assert TENANT_NAME in chrome.find_element(By.TAG_NAME, "body").text
    assert chrome.current_url == url
    done_shot = tmp_path / "unsubscribed-page.png"
    assert chrome.save_screenshot(str(done_shot))
    png_ok(done_shot)

    # The store: the suppression, from the link, naming the campaign.
    r = t.server.get(f"{t.base}/unsubscribes", headers=t.h)
    assert r.status_code == 200, r.text
    entries = r.json()["data"]
    assert [(e["email"], e["source"], e["campaign_id"]) for e in entries] == \
        [(TARGET, "link", c1["id"])], entries
    r = t.server.get(t.rcpt_path(lst["id"]), headers=t.h)
    statuses = {x["email"]: x["status"] for x in r.json()["data"]}
    assert statuses == {TARGET: "unsubscribed", **{a: "active" for a in OTHERS}}, statuses

    # A campaign sent afterwards to the same list skips the address.
    c2 = t.create(recipient_list_id=lst["id"], subject="More news",
                  text_body="Hi again {{name}}\n{{unsubscribe_url}}\n")
    done = send_and_wait(t, c2["id"])
    assert done["status"] == "completed" and done["sent_count"] == 2, done
    rows = db_query(server.database, "SELECT to_address, status FROM scheduled_messages "
                                     "WHERE campaign_id = %s", (c2["id"],))
    got = dict(rows)
    assert got.get(TARGET) in (None, "suppressed"), got
    assert {a: s for a, s in got.items() if a != TARGET} == {a: "sent" for a in OTHERS}
    new = eml_files(server) - first
    assert sorted(recipient_of(p)[0] for p in new) == sorted(OTHERS)
