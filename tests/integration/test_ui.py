"""The admin page under /ui/: served by both fronts with its security and
cache headers, and driven in Debian's chromium (playwright-core, pinned by
tests/ui/package-lock.json) against a real stack through lighttpd: sign in,
create a key, call chat with it, its spend and log row in the page, block,
delete, a viewer's page without write buttons, an XSS alias as text, no
console error or failed request, screenshots in tests/ui/artifacts/."""
import json
import os
import re
import subprocess

import pytest

from conftest import MASTER_KEY, TREE, apache_missing

UI_TESTS = os.path.join(TREE, "tests", "ui")
CHROMIUM = "/usr/bin/chromium"
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; "
       "img-src 'self' data:; connect-src 'self'; base-uri 'none'; "
       "form-action 'none'; frame-ancestors 'none'")
OVERRIDES = [
    # Priced so one chat moves the key's spend (USD per 1M tokens).
    "prices.qwen3-30b-a3b=150 600",
    "spend.flush_ms=100",
]


@pytest.fixture(scope="module")
def ui_stack(make_stack, mock, pg):
    """Its own database: the page lists only what this test made (the
    session's shared database holds every other test's keys and rows)."""
    pg.createdb("llmgw_ui")
    r = subprocess.run([os.path.join(TREE, "bin", "llmgw-migrate"), "-d",
                        pg.conninfo("llmgw_ui"), "-m", os.path.join(TREE, "migrations")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return make_stack("ui", mock.url, OVERRIDES, db="llmgw_ui")


@pytest.fixture
def front_ui(ui_stack, front, twin):
    return twin(ui_stack, front)


def assert_page_headers(r):
    assert r.headers["content-security-policy"] == CSP
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "no-referrer"


def test_ui_served(front_ui):
    """index.html: text/html, strict CSP, no-cache; its assets under a
    content hash, kept a year; /ui redirects; the API beside it is
    untouched."""
    r = front_ui.get("/ui/")
    assert r.status == 200, r
    assert r.headers["content-type"].startswith("text/html")
    assert_page_headers(r)
    assert r.headers["cache-control"] == "no-cache"
    html = r.body.decode()
    assert "<script>" not in html and "style=" not in html and "http" not in html
    assets = re.findall(r'(?:src|href)="(assets/[0-9a-f]{12}/[^"]+)"', html)
    assert {"app.js", "app.css", "vendor/uPlot.iife.min.js"} <= {a.split("/", 2)[2] for a in assets}
    for a in assets:
        r = front_ui.get("/ui/" + a)
        assert r.status == 200, (a, r)
        assert_page_headers(r)
        assert r.headers["cache-control"] == "public, max-age=31536000, immutable"
        want = {"js": "text/javascript", "css": "text/css", "svg": "image/svg+xml"}[a.rsplit(".", 1)[1]]
        assert r.headers["content-type"].startswith(want), (a, r.headers)
    r = front_ui.get("/ui")
    assert r.status == 301 and r.headers["location"].endswith("/ui/"), r
    # An unknown file under /ui/ is a plain 404; the API is not behind it.
    assert front_ui.get("/ui/assets/nope.js").status == 404
    r = front_ui.get("/health")
    assert r.status == 200 and "content-security-policy" not in r.headers
    assert r.headers["content-type"].startswith("application/json")


def ensure_playwright():
    if not os.path.exists(os.path.join(UI_TESTS, "node_modules", "playwright-core", "package.json")):
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=UI_TESTS,
                       check=True, capture_output=True, timeout=300)


def test_ui_browser(ui_stack, twin):
    """The whole run behind lighttpd; then, in the same browser, every view
    behind Apache (where it is installed)."""
    assert os.path.exists(CHROMIUM), \
        "chromium is missing: deploy/install-deps.sh --test installs it"
    ensure_playwright()
    env = dict(os.environ, BASE_URL="http://127.0.0.1:%d" % ui_stack.port,
               MASTER_KEY=MASTER_KEY)
    if apache_missing() is None:
        env["SMOKE_URL"] = "http://127.0.0.1:%d" % twin(ui_stack, "apache").port
    r = subprocess.run(["node", "ui.mjs"], cwd=UI_TESTS, capture_output=True,
                       text=True, timeout=150, env=env)
    assert r.returncode == 0, r.stderr + r.stdout
    out = json.loads(r.stdout)
    assert "the XSS alias renders as text" in out["steps"]
    assert "its spend shows in the keys table" in out["steps"]
    for view in ("keys", "teams", "users", "usage", "logs", "models"):
        for width in (1280, 390):
            assert os.path.getsize(os.path.join(UI_TESTS, "artifacts",
                                                "%s-%d.png" % (view, width))) > 5000
    assert "it sees only its own key" in out["steps"]
    if "SMOKE_URL" in env:
        assert out["steps"][-2].startswith("behind the other front too")
    # The key never went into a URL the gateway saw.
    for family in ("keys", "spend", "chat", "health"):
        assert MASTER_KEY not in ui_stack.log(family)

