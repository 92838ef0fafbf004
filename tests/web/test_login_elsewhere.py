"""Login CSRF in a real browser: a page on another server (here another port on the same
host, which the browser counts as the same site and sends SameSite=Strict cookies to)
posts someone's own token to ``gameday serve``'s ``/login`` as soon as it opens. The
browser must not come out signed in as them; the server's own page still signs in."""

from __future__ import annotations

import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from chromium import browser, needs_chromium, sign_in
from people import TOKEN, add_user

from gameday.store import Store


def elsewhere(page: str) -> ThreadingHTTPServer:
    """Another server on loopback answering every GET with ``page``."""
    body = page.encode()

    class Page(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the handler's name
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@needs_chromium
def test_a_page_elsewhere_cannot_sign_a_browser_in_as_someone(tmp_path: Path,
                                                                gameday_serve):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    mallory, vic = add_user("mallory", "viewer"), add_user("vic", "viewer")
    base = gameday_serve({**os.environ, "GAMEDAY_TOKEN": TOKEN}, "--no-scheduler",
                         "--data-dir", str(tmp_path / "data")).base
    other = elsewhere(f"""<!doctype html><title>cat pictures</title>
<form method="post" action="{base}/login"><input name="token" value="{mallory}"></form>
<script>document.forms[0].submit()</script>""")
    driver = None
    try:
        driver = browser(tmp_path)
        driver.get(f"http://127.0.0.1:{other.server_port}/")
        WebDriverWait(driver, 30).until(lambda d: d.current_url.startswith(base))
        assert driver.current_url.startswith(f"{base}/login"), driver.current_url
        assert "sent from another site" in driver.find_element(By.CLASS_NAME, "error").text
        driver.get(f"{base}/incidents")  # not signed in: the sign-in page, nobody's name
        assert driver.current_url.startswith(f"{base}/login")
        assert "mallory" not in driver.page_source
        sign_in(driver, vic, "incidents")  # this server's own page signs in
        assert "signed in as vic" in driver.page_source
    finally:
        if driver:
            driver.quit()
        other.shutdown()
        other.server_close()
    store = Store(Path(os.environ["GAMEDAY_DB"]))
    try:
        audit = [(r["who"], r["action"], r["data"]) for r in store.audit_log()]
    finally:
        store.close()
    assert ("?", "login.failed", {"why": "sent from another site's page",
                                  "origin": f"http://127.0.0.1:{other.server_port}"}) in audit
    assert [who for who, action, _ in audit if action == "login"] == ["vic"]
