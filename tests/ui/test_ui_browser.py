"""The web UI in a real browser (Debian's chromium through Selenium), against a real server.

Covers what the issue lists: repositories listed, search filtering as you type, sorting and
paging, a repository page with its tags, an image page with layers, config and referrers,
deletes (allowed for an admin, refused for a reader), per-user visibility, XSS probes
staying text, keyboard use, phone width, dark mode, and pages with auth on and off.
Screenshots of each main page go to ``test-artifacts/ui/``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from auth_helpers import client_for, serving, write_htpasswd
from browser_helpers import chrome, console_errors, go, one, screenshot, stamp, texts, wait
from conftest import Server, start_server
from search_helpers import OCI_MANIFEST, SEARCH, push_referrer, push_rich_image, search_config
from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from spec_helpers import list_tags

XSS = "<img src=x onerror=\"document.title='pwned'\">"
SBOM = "application/vnd.example.sbom.v1+json"


@pytest.fixture(scope="module")
def open_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A registry with search and the UI on, no auth, and content pushed once."""
    tmp = tmp_path_factory.mktemp("ui-open")
    server = start_server(tmp / "data", config=search_config(tmp / "config.json"))
    with httpx.Client(base_url=server.url, timeout=30) as c:
        image = push_rich_image(
            c,
            "library/alpine",
            "3.20",
            [os.urandom(2000), os.urandom(5000)],
            labels={"org.example.probe": XSS},
            env=["PATH=/usr/bin", f"PROBE={XSS}"],
            entrypoint=["/bin/probe", "--flag"],
            annotations={"org.opencontainers.image.description": XSS},
        )
        push_rich_image(c, "library/alpine", "3.19", [os.urandom(700)])
        subject = {"mediaType": OCI_MANIFEST, "digest": image["digest"], "size": len(image["body"])}
        push_referrer(c, "library/alpine", subject, SBOM, {"org.example.note": XSS})
        for i in range(60):
            push_rich_image(c, f"fleet/svc{i:02d}", "v1", [os.urandom(100 + i * 50)])
    server.image = image  # type: ignore[attr-defined]
    yield server
    server.stop()


@pytest.fixture(scope="module")
def driver() -> Iterator[webdriver.Chrome]:
    d = chrome()
    yield d
    d.quit()


def _type(driver: webdriver.Chrome, css: str, text: str) -> None:
    before = stamp(driver)
    field = one(driver, css)
    field.clear()
    field.send_keys(text)
    wait(driver, lambda d: stamp(d) != before)


def test_home_lists_searches_sorts_and_pages(open_server: Server, driver: webdriver.Chrome) -> None:
    go(driver, open_server.url + "/")
    names = texts(driver, "#repo-table .repo-link")
    assert len(names) == 50  # one page
    assert names[0] == "fleet/svc00" and "library/alpine" not in names
    assert "61 repositories" in one(driver, "#page-info").text
    screenshot(driver, "home")

    go(driver, one(driver, "#next").get_attribute("href") or "")
    page2 = texts(driver, "#repo-table .repo-link")
    assert page2 == [*(f"fleet/svc{i}" for i in range(50, 60)), "library/alpine"]

    go(driver, open_server.url + "/#/")
    _type(driver, "#search", "alp")
    wait(driver, lambda d: texts(d, "#repo-table .repo-link") == ["library/alpine"])
    assert "q=alp" in driver.current_url  # the filtered view is bookmarkable
    screenshot(driver, "home-search")
    _type(driver, "#search", "svc5")
    wait(driver, lambda d: len(texts(d, "#repo-table .repo-link")) == 10)

    go(driver, open_server.url + "/#/?sort=size")
    by_size = texts(driver, "#repo-table .repo-link")
    assert by_size[0] == "library/alpine"  # the biggest
    assert by_size[1:4] == ["fleet/svc59", "fleet/svc58", "fleet/svc57"]
    assert not console_errors(driver)


def test_repository_page_shows_tags(open_server: Server, driver: webdriver.Chrome) -> None:
    go(driver, open_server.url + "/#/repo/library/alpine")
    rows = driver.find_elements(By.CSS_SELECTOR, "#tag-table .tag-row")
    assert [r.find_element(By.CSS_SELECTOR, ".tag-link").text for r in rows] == ["3.19", "3.20"]
    row = rows[1]
    digest = open_server.image["digest"]  # type: ignore[attr-defined]
    shown = row.find_element(By.CSS_SELECTOR, ".digest")
    assert shown.text == digest[:19]  # sha256: and 12 hex digits
    shown.click()
    assert shown.text == digest  # the full digest, one click away
    cells = [c.text for c in row.find_elements(By.TAG_NAME, "td")]
    assert "KiB" in cells[2] and cells[3] == "linux/amd64" and cells[4] not in ("", "—")
    screenshot(driver, "repository")


def test_image_page_shows_config_layers_history_and_referrers(
    open_server: Server, driver: webdriver.Chrome
) -> None:
    go(driver, open_server.url + "/#/image/library/alpine:3.20")
    layers = driver.find_elements(By.CSS_SELECTOR, ".layers .layer-row")
    assert [r.find_elements(By.TAG_NAME, "td")[2].text for r in layers] == ["2.0 KiB", "4.9 KiB"]
    assert texts(driver, ".history li") == ["RUN step 0 · 2.0 KiB", "RUN step 1 · 4.9 KiB"]
    assert texts(driver, "#referrers .artifact-type") == [SBOM]
    assert one(driver, ".entrypoint").text == '["/bin/probe","--flag"]'
    assert "PATH" in one(driver, "#env").text
    assert one(driver, ".pull-docker").text == f"docker pull {open_server.host}/library/alpine:3.20"
    assert one(driver, ".pull-oras").text.startswith("oras pull --plain-http ")
    assert one(driver, ".pull-skopeo").text.startswith(
        "skopeo copy --src-tls-verify=false docker://"
    )
    assert one(driver, ".pull-podman").text.startswith("podman pull --tls-verify=false ")
    assert '"schemaVersion": 2' in one(driver, "#manifest-json").text
    screenshot(driver, "image")

    # A referrer links to its own page, by digest: an artifact, pulled with oras or skopeo.
    before = stamp(driver)
    one(driver, ".referrer-link").click()
    wait(driver, lambda d: stamp(d) != before and "#/image/library/alpine@sha256:" in d.current_url)
    assert SBOM in one(driver, "#image-facts").text
    assert driver.find_elements(By.CSS_SELECTOR, ".pull-docker") == []
    assert one(driver, ".pull-oras").text.endswith(
        "/library/alpine@" + driver.current_url.split("@")[1]
    )
    screenshot(driver, "referrer")


def test_xss_probes_in_labels_annotations_and_env_stay_text(
    open_server: Server, driver: webdriver.Chrome
) -> None:
    go(driver, open_server.url + "/#/image/library/alpine:3.20")
    main = one(driver, "#main")
    assert XSS in one(driver, "#labels").text
    assert f"PROBE\n{XSS}" in one(driver, "#env").text or XSS in one(driver, "#env").text
    assert XSS in one(driver, "#referrers").text
    assert main.find_elements(By.TAG_NAME, "img") == []
    assert driver.title == "dockyard"
    try:
        driver.switch_to.alert.dismiss()
        pytest.fail("an alert opened")
    except NoAlertPresentException:
        pass


def test_keyboard_phone_width_and_dark_mode(open_server: Server, tmp_path: Path) -> None:
    phone = chrome(width=390, height=844)
    try:
        go(phone, open_server.url + "/")
        width = phone.execute_script("return [document.documentElement.scrollWidth, innerWidth]")
        assert width[1] == 390, width
        assert width[0] <= width[1], f"page wider than the phone: {width}"
        screenshot(phone, "home-phone")
        # Keyboard: from the search field, Tab reaches the sort control and then the first
        # repository link; Enter follows it.
        search = one(phone, "#search")
        search.send_keys("alpine")
        wait(phone, lambda d: texts(d, "#repo-table .repo-link") == ["library/alpine"])
        before = stamp(phone)
        active = phone.switch_to.active_element
        for _ in range(6):
            active.send_keys(Keys.TAB)
            active = phone.switch_to.active_element
            if active.get_attribute("class") == "repo-link":
                break
        assert active.text == "library/alpine"
        active.send_keys(Keys.ENTER)
        wait(phone, lambda d: stamp(d) != before and "#/repo/library/alpine" in d.current_url)
        assert texts(phone, "#tag-table .tag-link") == ["3.19", "3.20"]
        screenshot(phone, "repository-phone")

        phone.execute_cdp_cmd(
            "Emulation.setEmulatedMedia",
            {"features": [{"name": "prefers-color-scheme", "value": "dark"}]},
        )
        background = phone.execute_script("return getComputedStyle(document.body).backgroundColor")
        rgb = [int(x) for x in background[background.index("(") + 1 : -1].split(",")[:3]]
        assert sum(rgb) < 150, background
        screenshot(phone, "repository-phone-dark")
    finally:
        phone.quit()


def test_delete_with_confirmation_when_auth_is_off(
    open_server: Server, driver: webdriver.Chrome
) -> None:
    with httpx.Client(base_url=open_server.url, timeout=30) as c:
        push_rich_image(c, "scratch/gone", "old", [os.urandom(50)])
        push_rich_image(c, "scratch/gone", "keep", [os.urandom(50)])
    go(driver, open_server.url + "/#/repo/scratch/gone")
    button = one(driver, 'button[aria-label="Delete tag old"]')
    button.click()
    driver.switch_to.alert.dismiss()  # cancelled: nothing happens
    with httpx.Client(base_url=open_server.url) as c:
        assert sorted(list_tags(c, "scratch/gone")) == ["keep", "old"]
    before = stamp(driver)
    one(driver, 'button[aria-label="Delete tag old"]').click()
    driver.switch_to.alert.accept()
    wait(driver, lambda d: stamp(d) != before)
    assert texts(driver, "#tag-table .tag-link") == ["keep"]
    with httpx.Client(base_url=open_server.url) as c:
        assert list_tags(c, "scratch/gone") == ["keep"]

    # Delete the image itself (by digest) from its page.
    go(driver, open_server.url + "/#/image/scratch/gone:keep")
    digest = one(driver, "#image-facts .digest").get_attribute("data-full")
    before = stamp(driver)
    one(driver, "#delete-image").click()
    driver.switch_to.alert.accept()
    wait(driver, lambda d: stamp(d) != before and d.current_url.endswith("#/repo/scratch/gone"))
    assert texts(driver, "#tag-table .tag-link") == []
    with httpx.Client(base_url=open_server.url) as c:
        assert c.get(f"/v2/scratch/gone/manifests/{digest}").status_code == 404


# -- with auth on ---------------------------------------------------------------------------

PASSWORDS = {"reader": "reader-pw", "admin": "admin-pw"}
ACCESS: dict[str, Any] = {
    "repositories": {
        "public/**": {"anonymousPolicy": ["read"], "defaultPolicy": ["read"]},
        "team/**": {"policies": [{"users": ["reader"], "actions": ["read"]}]},
    },
    "adminPolicy": {"users": ["admin"], "actions": ["read", "create", "update", "delete"]},
}


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("ui-auth")
    htpasswd = write_htpasswd(tmp / "htpasswd", PASSWORDS)
    http = {"auth": {"htpasswd": {"path": str(htpasswd)}}, "accessControl": ACCESS}
    with serving(tmp / "data", search_config(tmp / "config.json", http)) as server:
        with client_for(server, "admin", "admin-pw") as admin:
            for repo in ("public/web", "team/api", "secret/keys"):
                push_rich_image(admin, repo, "1", [os.urandom(80)])
                push_rich_image(admin, repo, "2", [os.urandom(80)])
        yield server


def _login(driver: webdriver.Chrome, server: Server, user: str) -> None:
    go(driver, server.url + "/#/login")
    one(driver, "#username").send_keys(user)
    one(driver, "#password").send_keys(PASSWORDS[user] + Keys.ENTER)
    wait(driver, lambda d: d.find_elements(By.ID, "whoami"))
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#repo-table, #empty"))


def _fetch(driver: webdriver.Chrome, method: str, path: str, csrf: bool = True) -> int:
    """A request made by the page's own origin with its cookie (what a forged click would do)."""
    script = """
      const [method, path, csrf, done] = arguments;
      fetch('/ui/session').then(r => r.json()).then(s => {
        const headers = csrf ? {'X-Dockyard-CSRF': s.csrf || 'none'} : {};
        return fetch(path, {method, headers, credentials: 'same-origin'});
      }).then(r => done(r.status), e => done(String(e)));
    """
    return driver.execute_async_script(script, method, path, csrf)  # type: ignore[no-any-return]


def test_auth_login_visibility_and_deletes(auth_server: Server, tmp_path: Path) -> None:
    browser = chrome()
    try:
        # Anonymous: only what anonymousPolicy allows, and a way to log in.
        go(browser, auth_server.url + "/")
        assert texts(browser, "#repo-table .repo-link") == ["public/web"]
        assert one(browser, "#login-link").text == "Log in"
        screenshot(browser, "auth-anonymous")

        # The reader: public and team, never secret; no delete buttons; a forged delete
        # through the API is refused by the server.
        _login(browser, auth_server, "reader")
        assert texts(browser, "#repo-table .repo-link") == ["public/web", "team/api"]
        screenshot(browser, "auth-reader-home")
        cookies = {c["name"]: c for c in browser.get_cookies()}
        session = cookies["dockyard_session"]
        assert session["httpOnly"] is True and session["secure"] is True
        assert session["sameSite"] == "Strict"
        stored = browser.execute_script(
            "return [document.cookie, JSON.stringify(localStorage), JSON.stringify(sessionStorage)]"
        )
        assert "reader-pw" not in "".join(stored) and "dockyard_session" not in stored[0]
        go(browser, auth_server.url + "/#/image/team/api:1")
        assert browser.find_elements(By.ID, "delete-image") == []
        go(browser, auth_server.url + "/#/repo/team/api")
        assert browser.find_elements(By.CSS_SELECTOR, ".delete-tag") == []
        assert _fetch(browser, "DELETE", "/v2/team/api/manifests/1") == 403
        go(browser, auth_server.url + "/#/repo/secret/keys")
        assert "No such repository" in one(browser, "#main").text
        with client_for(auth_server, "admin", "admin-pw") as admin:
            assert sorted(list_tags(admin, "team/api")) == ["1", "2"]

        # Log out: the cookie no longer identifies anyone.
        before = stamp(browser)
        one(browser, "#logout").click()
        wait(browser, lambda d: stamp(d) != before and d.find_elements(By.ID, "login-link"))
        assert texts(browser, "#repo-table .repo-link") == ["public/web"]

        # The admin sees everything and deletes, with a confirmation; a write without the
        # CSRF token is refused even with the admin's cookie.
        _login(browser, auth_server, "admin")
        assert texts(browser, "#repo-table .repo-link") == ["public/web", "secret/keys", "team/api"]
        assert _fetch(browser, "DELETE", "/v2/secret/keys/manifests/2", csrf=False) == 403
        go(browser, auth_server.url + "/#/image/secret/keys:2")
        screenshot(browser, "auth-admin-image")
        before = stamp(browser)
        one(browser, "#delete-tag").click()
        browser.switch_to.alert.accept()
        wait(browser, lambda d: stamp(d) != before and "#/repo/secret/keys" in d.current_url)
        assert texts(browser, "#tag-table .tag-link") == ["1"]
        with client_for(auth_server, "admin", "admin-pw") as admin:
            assert list_tags(admin, "secret/keys") == ["1"]
        # Refused requests (the forged ones above) log network errors; no script may fail.
        assert not [e for e in console_errors(browser) if e["source"] != "network"]
    finally:
        browser.quit()


def test_login_refuses_wrong_passwords_and_forms(auth_server: Server) -> None:
    with httpx.Client(base_url=auth_server.url) as c:
        wrong = c.post("/ui/session", json={"username": "admin", "password": "nope"})
        assert wrong.status_code == 401 and "set-cookie" not in wrong.headers
        form = c.post("/ui/session", data={"username": "admin", "password": "admin-pw"})
        assert form.status_code == 415  # a cross-site form cannot log anyone in
        ok = c.post("/ui/session", json={"username": "admin", "password": "admin-pw"})
        assert ok.status_code == 200 and ok.json()["user"] == "admin"
        cookie = ok.headers["set-cookie"]
        for attribute in ("HttpOnly", "Secure", "SameSite=Strict", "Path=/"):
            assert attribute in cookie
        assert "admin-pw" not in ok.text


def test_ui_is_off_unless_configured(registry: Server) -> None:
    assert httpx.get(registry.url + "/").status_code == 404
    assert httpx.get(registry.url + "/ui/static/app.js").status_code == 404


def test_ui_page_headers_forbid_inline_script(open_server: Server) -> None:
    page = httpx.get(open_server.url + "/")
    assert page.status_code == 200
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    assert httpx.get(open_server.url + "/ui/static/../__init__.py").status_code == 404
    assert httpx.get(open_server.url + "/ui/static/session.py").status_code == 404
    script = httpx.get(open_server.url + "/ui/static/app.js").text
    assert "innerHTML" not in script.replace("no innerHTML", "")
    unique = uuid.uuid4().hex  # keep the fixture's content untouched by this test
    assert unique


def test_a_new_password_ends_open_sessions(tmp_path: Path) -> None:
    """Sessions remember the password hash they were opened with; a change logs them out."""
    htpasswd = write_htpasswd(tmp_path / "htpasswd", PASSWORDS)
    http = {"auth": {"htpasswd": {"path": str(htpasswd)}}, "accessControl": ACCESS}
    query = {"query": '{ GlobalSearch(query: "") { Repos { Name } } }'}
    with serving(tmp_path / "data", search_config(tmp_path / "config.json", http)) as server:
        with client_for(server, "admin", "admin-pw") as admin:
            push_rich_image(admin, "team/api", "1", [os.urandom(80)])
            push_rich_image(admin, "public/web", "1", [os.urandom(80)])
        with httpx.Client(base_url=server.url) as browser:
            login = browser.post(
                "/ui/session", json={"username": "reader", "password": "reader-pw"}
            )
            assert login.status_code == 200
            # Sent by hand: httpx, unlike browsers, never sends Secure cookies over http.
            browser.headers["Cookie"] = f"dockyard_session={login.cookies['dockyard_session']}"
            browser.cookies.clear()
            browser.headers["X-Dockyard-CSRF"] = login.json()["csrf"]  # POST needs it too
            names = [
                r["Name"]
                for r in browser.post(SEARCH, json=query).json()["data"]["GlobalSearch"]["Repos"]
            ]
            assert names == ["public/web", "team/api"]
            write_htpasswd(htpasswd, {**PASSWORDS, "reader": "a-new-password"})
            after = browser.post(SEARCH, json=query).json()["data"]["GlobalSearch"]["Repos"]
            assert [r["Name"] for r in after] == ["public/web"]  # anonymous now
            assert browser.get("/ui/session").json()["user"] is None
