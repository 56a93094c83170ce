#!/usr/bin/env python3
"""Browser test of the dashboard (GET /), driving Debian's headless Chromium.

    python3 scripts/live/dashboard_check.py --base http://127.0.0.1:5000 \
        [--screenshot docs/dashboard.png] [--api-pid PID] [--size 1280x900] \
        [--key ADMIN_KEY [--write-key WRITE_KEY]]

The caller has started Redis and gene-api (`serve`, so workers run) and
loaded the data set. Each check prints one `ok: ...` line; the first that
fails prints `FAIL: ...` (what was expected, what the page showed, the
browser's console) and the script exits 1.

When the server wants API keys (GET /whoami says auth_required), --key (an
admin key) is needed, and the page is checked signed out first (no write
button offered, #key-button shown), then with a stored key the server does
not know (dropped, asked again), a wrong key (#key-error, nothing stored),
the --write-key if given (write controls offered, admin ones not; a plot
queued with it), and last the admin key (name and scope in #key-status,
every control offered, remembered across a reload), with which all the
other checks run. When the server also protects reads, the page must show
nothing before signing in, and read the event stream and the images with
the key (fetch, blob: URLs). Without keys on the server, --key is unused.

Needs: apt-get install -y chromium chromium-driver (/usr/bin/chromium,
/usr/bin/chromedriver) and pip install selenium (4.x). Nothing is
downloaded: the driver and browser are given by path, so Selenium Manager
is never used.
"""

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import urllib.error
import urllib.request

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
STATES = ("queued", "running", "retrying", "done", "failed", "cancelled")


class CheckFailed(Exception):
    pass


def ok(msg):
    print(f"ok: {msg}", flush=True)


# ------------------------------------------------------------------ the API, directly
class Api:
    def __init__(self, base):
        self.base = base.rstrip("/")
        self.key = None  # sent as Authorization: Bearer when set

    def call(self, method, path, body=None, timeout=10, key=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if key or self.key:
            req.add_header("Authorization", f"Bearer {key or self.key}")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                raw = r.read()
                return r.status, (json.loads(raw) if raw and "json" in r.headers.get("Content-Type", "") else raw)
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                return e.code, json.loads(raw)
            except ValueError:
                return e.code, raw
        except (urllib.error.URLError, OSError) as e:
            raise CheckFailed(f"the API at {self.base} does not answer {method} {path}: {e}") from e

    def get(self, path):
        return self.call("GET", path)

    def whoami(self, key=None):
        """GET /whoami (with `key`); a server without the route runs open."""
        status, body = self.call("GET", "/whoami", key=key)
        if status in (404, 405):
            return {"auth_required": False, "protect_reads": False, "key": None}
        if status != 200 or not isinstance(body, dict):
            raise CheckFailed(f"GET /whoami answered {status}: {str(body)[:200]}")
        return body

    def record_count(self):
        """What the API says the data set holds: /data/info, else the length of /genes."""
        status, body = self.get("/data/info")
        if status == 200 and isinstance(body, dict) and "records" in body:
            return int(body["records"])
        if status == 404 and isinstance(body, dict) and body.get("error") == "no_data":
            raise CheckFailed("no data set is loaded: load the sample (POST /data) before running this check")
        status, body = self.get("/genes")
        if status == 404:
            raise CheckFailed("no data set is loaded: load the sample (POST /data) before running this check")
        if status != 200 or not isinstance(body, list):
            raise CheckFailed(f"GET /genes answered {status}: {str(body)[:200]}")
        return len(body)


# ------------------------------------------------------------------ the browser
def make_driver(profile, width, height):
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        raise CheckFailed("selenium is not installed: pip install selenium")
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.path.exists(path):
            raise CheckFailed(f"{path} is missing: apt-get install -y chromium chromium-driver")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--hide-scrollbars", f"--user-data-dir={profile}",
                 f"--window-size={width},{height + 200}"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    # The viewport itself is width x height (a phone size emulates a phone).
    mobile = width < 600
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile})
    if mobile:
        driver.execute_cdp_cmd("Emulation.setTouchEmulationEnabled", {"enabled": True})
    driver.set_page_load_timeout(30)
    return driver


class Page:
    def __init__(self, driver):
        self.d = driver

    def js(self, script, *args):
        return self.d.execute_script(script, *args)

    def wait(self, what, fn, timeout, state=None, interval=0.2):
        """Polls fn() until it returns something truthy; fails saying what and the last state seen."""
        deadline = time.monotonic() + timeout
        last_err = None
        while True:
            try:
                v = fn()
                if v:
                    return v
            except CheckFailed:
                raise
            except Exception as e:  # stale element, script error while the page changes
                last_err = e
            if time.monotonic() >= deadline:
                seen = ""
                if state:
                    try:
                        seen = f"; the page showed: {state()}"
                    except Exception as e:
                        seen = f"; (could not read the page: {e})"
                elif last_err:
                    seen = f"; last error: {last_err}"
                raise CheckFailed(f"{what}: not within {timeout:g} s{seen}")
            time.sleep(interval)

    def text(self, css):
        return self.js("const e = document.querySelector(arguments[0]); return e ? e.textContent.trim() : null;", css)

    def visible(self, css):
        return self.js("""const e = document.querySelector(arguments[0]);
            if (!e) return false; const r = e.getBoundingClientRect(); const s = getComputedStyle(e);
            return !e.closest('[hidden]') && s.display !== 'none' && s.visibility !== 'hidden' && r.width > 0 && r.height > 0;""", css)

    def offered(self, css):
        """Visible and enabled: a control the user can use."""
        return self.visible(css) and not self.js(
            "const e = document.querySelector(arguments[0]); return !e || e.disabled;", css)

    def needs_controls(self, need=None):
        """Every [data-needs] control (of `need`, else all): what it is, and whether it is offered."""
        return self.js("""
            const sel = arguments[0] ? '[data-needs="' + arguments[0] + '"]' : '[data-needs]';
            return [...document.querySelectorAll(sel)].map(e => {
              const r = e.getBoundingClientRect(), s = getComputedStyle(e);
              const visible = !e.closest('[hidden]') && s.display !== 'none' && s.visibility !== 'hidden' && r.width > 0 && r.height > 0;
              return {what: (e.id ? '#' + e.id : e.dataset.action ? '[data-action=' + e.dataset.action + ']' : e.tagName.toLowerCase())
                        + ' (' + e.textContent.trim().slice(0, 20) + ')',
                      needs: e.dataset.needs, offered: visible && !e.disabled, title: e.title};
            });""", need)

    def auth(self):
        return self.js("return document.body && document.body.dataset.auth")

    def stored_key(self):
        return self.js("return {local: localStorage.getItem('gene-api.key'), session: sessionStorage.getItem('gene-api.key')}")

    def attr(self, css, name):
        return self.js("const e = document.querySelector(arguments[0]); return e ? e.getAttribute(arguments[1]) : null;", css, name)

    def row_state(self, job_id):
        return self.text(f'tr[data-job-id="{job_id}"] .state')

    def fill_plot_form(self, kind, width, height):
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import Select
        form = self.d.find_element(By.CSS_SELECTOR, "#plot-form")
        Select(form.find_element(By.CSS_SELECTOR, "select[name=kind]")).select_by_value(kind)
        for name, value in (("width", width), ("height", height)):
            field = form.find_element(By.CSS_SELECTOR, f"input[name={name}]")
            field.clear()
            field.send_keys(str(value))
        button = form.find_element(By.CSS_SELECTOR, "button[type=submit]")
        self.js("arguments[0].scrollIntoView({block: 'center'})", button)
        button.click()

    def console(self):
        try:
            return [f"{e.get('level')}: {e.get('message')}" for e in self.d.get_log("browser")]
        except Exception:
            return []


# ------------------------------------------------------------------ the checks
def submit_plot(page, api, kind, width, height, timeout):
    """Submits the form; returns the new job's id (as the page reports it, confirmed by the API)."""
    before = page.attr("#plot-status", "data-job-id")
    page.fill_plot_form(kind, width, height)
    job_id = page.wait(
        f"the form shows the queued {kind} job", lambda: (
            page.visible("#plot-status") and page.attr("#plot-status", "data-job-id") not in (None, "", before)
            and page.attr("#plot-status", "data-job-id")),
        timeout, state=lambda: {"status": page.text("#plot-status"), "error": page.text("#plot-error")
                                if page.visible("#plot-error") else None})
    status, job = api.get(f"/jobs/{job_id}")
    if status != 200:
        raise CheckFailed(f"the page says it queued job {job_id}, but GET /jobs/{job_id} answers {status}: {job}")
    p = job.get("params", {})
    if (job.get("kind"), p.get("plot"), p.get("width"), p.get("height")) != ("plot", kind, width, height):
        raise CheckFailed(f"job {job_id} was submitted as {kind} {width}x{height}, the API has {job}")
    return job_id


def wait_done(page, api, job_id, timeout):
    def state():
        s = page.row_state(job_id)
        if s in ("failed", "cancelled"):
            _, job = api.get(f"/jobs/{job_id}")
            raise CheckFailed(f"job {job_id} ended {s} instead of done: {job.get('error') if isinstance(job, dict) else job}")
        return s == "done"

    def seen():
        _, job = api.get(f"/jobs/{job_id}")
        return (f"row state {page.row_state(job_id)!r}, connection {page.attr('#conn', 'data-state')!r}; "
                f"the API says {job.get('status') if isinstance(job, dict) else job!r}")

    page.wait(f"the row of job {job_id} turns 'done'", state, timeout, state=seen)


def wait_thumbnail(page, job_id, timeout):
    sel = f'img[data-job-id="{job_id}"]'
    return page.wait(
        f"the thumbnail of job {job_id} loads", lambda: page.js(
            "const i = document.querySelector(arguments[0]);"
            "return i && i.complete && i.naturalWidth > 0 ? [i.naturalWidth, i.naturalHeight] : null;", sel),
        timeout, state=lambda: page.js(
            "const i = document.querySelector(arguments[0]);"
            "return i ? {src: i.src, complete: i.complete, naturalWidth: i.naturalWidth} : 'no such img';", sel))


def auth_setup(args, api):
    """What GET /whoami says; with keys on the server, checks the given keys' scopes. None: the server runs open."""
    who = api.whoami()
    if not who.get("auth_required"):
        return None
    if not args.key:
        raise CheckFailed("the server wants API keys (GET /whoami says auth_required): pass --key ADMIN_KEY "
                          "(and --write-key WRITE_KEY to check a write key too)")
    admin = api.whoami(args.key).get("key")
    if not admin or admin.get("scope") != "admin":
        raise CheckFailed(f"--key must be an admin key the server knows; GET /whoami with it says key = {admin}")
    writer = None
    if args.write_key:
        writer = api.whoami(args.write_key).get("key")
        if not writer or writer.get("scope") != "write":
            raise CheckFailed(f"--write-key must be a write-scope key the server knows; GET /whoami with it says key = {writer}")
    api.key = args.key
    return {"protect_reads": bool(who.get("protect_reads")), "admin": admin, "writer": writer}


def run(args):  # noqa: C901 (one linear script)
    api = Api(args.base)
    t0 = time.monotonic()
    width, height = (int(x) for x in args.size.lower().split("x"))
    status, _ = api.get("/health")
    if status != 200:
        raise CheckFailed(f"GET {args.base}/health answered {status}")
    auth = auth_setup(args, api)
    expected = api.record_count()

    try:
        from selenium.common.exceptions import WebDriverException
    except ImportError:
        raise CheckFailed("selenium is not installed: pip install selenium")
    profile = tempfile.mkdtemp(prefix="dashboard-check-")
    driver = None
    page = None
    try:
        try:
            driver = make_driver(profile, width, height)
        except WebDriverException as e:
            raise CheckFailed(f"could not start Chromium through chromedriver: {(e.msg or str(e)).splitlines()[0]}") from e
        page = Page(driver)
        try:
            try:
                return checks(args, api, page, expected, width, height, t0, auth)
            except WebDriverException as e:
                # e.g. no #plot-form on the page: say which element, not a traceback.
                raise CheckFailed(f"the browser could not do a step: {(e.msg or str(e)).splitlines()[0]}") from e
        except CheckFailed as e:
            shot = os.path.join(tempfile.gettempdir(), "dashboard_check_failure.png")
            try:
                driver.save_screenshot(shot)
                e.args = (f"{e.args[0]}\n  (screenshot of the page: {shot})",)
            except Exception:
                pass
            console = page.console()
            if console:
                e.args = (e.args[0] + "\n  browser console:\n    " + "\n    ".join(console[-15:]),)
            raise
    finally:
        if driver is not None:
            driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def sign_in(page, key, remember, T):
    """Opens the key form (if it is not open), types `key`, ticks "remember" or not, submits."""
    from selenium.webdriver.common.by import By
    d = page.d
    if not page.visible("#key-form"):
        page.wait("#key-button is offered", lambda: page.offered("#key-button"), T,
                  state=lambda: {"data-auth": page.auth()})
        d.find_element(By.CSS_SELECTOR, "#key-button").click()
    page.wait("#key-form opens, with #key-input and #key-remember", lambda: page.visible("#key-form")
              and page.visible("#key-input") and page.js("return !!document.querySelector('#key-remember')"), T)
    box = d.find_element(By.CSS_SELECTOR, "#key-remember")
    if box.is_selected() != remember:
        box.click()
    field = d.find_element(By.CSS_SELECTOR, "#key-input")
    if field.get_attribute("type") != "password":
        raise CheckFailed(f"#key-input is type={field.get_attribute('type')!r}, expected password")
    field.clear()
    field.send_keys(key)
    d.find_element(By.CSS_SELECTOR, "#key-submit").click()


def offered_controls(page, need=None):
    return [c["what"] for c in page.needs_controls(need) if c["offered"]]


def key_checks(args, api, page, auth, T):
    """The server wants keys: signed out, a stale key, a wrong key, the write key, then the admin key."""
    from selenium.webdriver.common.by import By
    d = page.d
    reads = "protected" if auth["protect_reads"] else "open"

    def signed_out_state():
        return {"data-auth": page.auth(), "key-button": page.visible("#key-button"),
                "offered": offered_controls(page), "stored": page.stored_key()}

    # a. Signed out: nothing that writes is offered, the key button is.
    page.wait("the page learns from GET /whoami that it must sign in (body[data-auth=signed-out])",
              lambda: page.auth() == "signed-out", T, state=signed_out_state)
    if not page.visible("#key-button"):
        raise CheckFailed("signed out, but #key-button (Sign in with an API key) is not visible")
    for css, what in (("#plot-submit", "the plot form's submit"), ("#load-btn", "the Load data button")):
        if page.js("return !document.querySelector(arguments[0])", css):
            raise CheckFailed(f"{what} ({css}) is not on the page at all")
        if page.offered(css):
            raise CheckFailed(f"signed out, {what} ({css}) is offered (visible and enabled): it needs a write key")
    wrong = offered_controls(page)
    if wrong:
        raise CheckFailed(f"signed out, these [data-needs] controls are offered: {wrong}")
    if page.visible("#key-status"):
        raise CheckFailed(f"signed out, #key-status shows {page.text('#key-status')!r}")
    tip = page.attr("#plot-submit", "title") or ""
    if "write key" not in tip:
        raise CheckFailed(f"the disabled plot submit's tooltip is {tip!r}, expected it to say it needs a write key")
    n = len(page.needs_controls())
    if auth["protect_reads"]:
        page.wait("reads are protected: the page shows #locked, no job rows, #conn 'locked'", lambda: page.visible("#locked")
                  and page.attr("#conn", "data-state") == "locked"
                  and page.js("return document.querySelectorAll('tr[data-job-id]').length") == 0, T,
                  state=lambda: {"locked": page.visible("#locked"), "conn": page.attr("#conn", "data-state"),
                                 "rows": page.js("return document.querySelectorAll('tr[data-job-id]').length")})
    ok(f"signed out (the server wants keys; reads {reads}): #key-button shown, Load data and Queue plot "
       f"not offered (tooltip {tip!r}), none of {n} [data-needs] controls offered"
       + ("; the page shows nothing but #locked" if auth["protect_reads"] else ""))

    # b. A stored key the server does not know: dropped at start, and the form asks again.
    stale = "gak_" + "0" * 64
    page.js("localStorage.setItem('gene-api.key', arguments[0])", stale)
    d.refresh()
    page.wait("with an unknown key in localStorage, a reload drops it and opens #key-form",
              lambda: page.auth() == "signed-out" and page.stored_key() == {"local": None, "session": None}
              and page.visible("#key-form"), T, state=signed_out_state)
    ok("a stored key the server does not know is dropped on load, and #key-form asks for a key again")

    # c. A wrong key: #key-error, still signed out, nothing stored.
    sign_in(page, "gak_" + "f" * 64, True, T)
    err = page.wait("a wrong key shows #key-error", lambda: page.visible("#key-error") and page.text("#key-error"), T,
                    state=lambda: {"key-error": page.text("#key-error"), **signed_out_state()})
    if "not valid" not in err:
        raise CheckFailed(f"#key-error says {err!r}, expected it to say the key is not valid")
    time.sleep(0.3)
    if page.auth() != "signed-out" or page.stored_key() != {"local": None, "session": None} or page.visible("#key-status"):
        raise CheckFailed(f"after a wrong key the page should stay signed out with nothing stored: {signed_out_state()}")
    if offered_controls(page):
        raise CheckFailed(f"after a wrong key, these controls are offered: {offered_controls(page)}")
    ok(f"a wrong key is refused in the form: {err!r}; still signed out, nothing stored")

    # d. The write key: write controls offered, admin ones not.
    if auth["writer"]:
        name = auth["writer"]["name"]
        sign_in(page, args.write_key, False, T)
        page.wait(f"signing in with the write key {name!r} (body[data-auth=write])", lambda: page.auth() == "write", T,
                  state=lambda: {"data-auth": page.auth(), "key-error": page.text("#key-error") if page.visible("#key-error") else None})
        status = page.text("#key-status") or ""
        if not page.visible("#key-status") or name not in status or "write" not in status:
            raise CheckFailed(f"#key-status shows {status!r} (visible: {page.visible('#key-status')}), expected {name!r} and 'write'")
        for css in ("#plot-submit", "#load-btn", "#sign-out"):
            if not page.offered(css):
                raise CheckFailed(f"signed in with a write key, {css} is not offered (title {page.attr(css, 'title')!r})")
        if page.stored_key() != {"local": None, "session": args.write_key}:
            raise CheckFailed(f"without 'remember' the key belongs in sessionStorage only; the page has {page.stored_key()}")
        wjob = submit_plot(page, api, "approval_year", 800, 500, T)
        wait_done(page, api, wjob, T)
        cell = d.find_element(By.CSS_SELECTOR, f'tr[data-job-id="{wjob}"] td.job')
        page.js("arguments[0].scrollIntoView({block: 'center'})", cell)
        cell.click()
        page.wait("the details of the write key's plot open, with a Delete image button",
                  lambda: page.visible("#job-details") and page.js(
                      "return !!document.querySelector('#job-details [data-action=delete-image]')"), T,
                  state=lambda: (page.text("#job-details") or "")[:200])
        admin_offered = offered_controls(page, "admin")
        if admin_offered:
            raise CheckFailed(f"signed in with a write key, admin controls are offered: {admin_offered}")
        admin_all = page.needs_controls("admin")
        tip = page.attr("#job-details [data-action=delete-image]", "title") or ""
        if "admin" not in tip:
            raise CheckFailed(f"the disabled Delete image's tooltip is {tip!r}, expected it to say it needs an admin key")
        page.js("document.querySelector('#details-close').click()")
        page.wait("the details panel closes", lambda: not page.visible("#job-details"), T)
        ok(f"signed in with the write key: #key-status {status!r}, key in sessionStorage only; Queue plot and "
           f"Load data offered, queued plot {wjob} and it turned done live; none of {len(admin_all)} admin controls "
           f"offered (Delete image: {tip!r})")
        d.find_element(By.CSS_SELECTOR, "#sign-out").click()
        page.wait("#sign-out signs out: key forgotten, #key-button back, write controls withdrawn",
                  lambda: page.auth() == "signed-out" and page.visible("#key-button") and not page.offered("#plot-submit")
                  and not page.offered("#load-btn") and page.stored_key() == {"local": None, "session": None}, T,
                  state=signed_out_state)
        ok("#sign-out forgets the key: signed out again, Queue plot and Load data withdrawn")

    # e. The admin key, remembered: every control offered; the other checks run with it.
    name = auth["admin"]["name"]
    sign_in(page, args.key, True, T)
    page.wait(f"signing in with the admin key {name!r} (body[data-auth=admin])", lambda: page.auth() == "admin", T,
              state=lambda: {"data-auth": page.auth(), "key-error": page.text("#key-error") if page.visible("#key-error") else None})
    if page.stored_key() != {"local": args.key, "session": None}:
        raise CheckFailed(f"with 'remember' ticked the key belongs in localStorage only; the page has {page.stored_key()}")
    d.refresh()
    page.wait("after a reload the page is still signed in with the remembered admin key", lambda: page.auth() == "admin", T,
              state=lambda: {"data-auth": page.auth(), "stored": page.stored_key()})
    status = page.text("#key-status") or ""
    if not page.visible("#key-status") or name not in status or "admin" not in status:
        raise CheckFailed(f"#key-status shows {status!r} (visible: {page.visible('#key-status')}), expected {name!r} and 'admin'")
    if page.visible("#key-button"):
        raise CheckFailed("signed in, but #key-button is still shown")
    for css in ("#plot-submit", "#load-btn", "#sign-out"):
        if not page.offered(css):
            raise CheckFailed(f"signed in with the admin key, {css} is not offered (title {page.attr(css, 'title')!r})")
    withheld = [c["what"] for c in page.needs_controls() if not c["offered"] and c["what"]]
    hidden_rows = page.js("return [...document.querySelectorAll('[data-needs][data-gate=hide]')].filter(e => e.hidden).length")
    if page.js("return [...document.querySelectorAll('[data-needs]')].some(e => e.disabled && !e.dataset.busy)") or hidden_rows:
        raise CheckFailed(f"signed in with the admin key, some controls are still withheld: {withheld}")
    ok(f"signed in with the admin key: #key-status {status!r}, remembered across a reload (localStorage); "
       f"write and admin controls offered ({len(page.needs_controls())} [data-needs] on the page)")


def checks(args, api, page, expected, width, height, t0, auth):
    T = args.timeout
    d = page.d
    d.get(args.base.rstrip("/") + "/")

    # 1. The page, and the data set's record count as the API has it.
    page.wait(f"GET {args.base.rstrip('/')}/ is the dashboard (its title names gene-api)",
              lambda: "gene-api" in (d.title or ""), T,
              state=lambda: {"title": d.title, "body": page.js("return document.body ? document.body.innerText.slice(0, 200) : ''")})
    if auth:
        key_checks(args, api, page, auth, T)
    else:
        page.wait("the page learns from GET /whoami that the server runs open (body[data-auth=open])",
                  lambda: page.auth() == "open", T, state=lambda: {"data-auth": page.auth()})
    page.wait(f"the data set card shows {expected} records", lambda: page.attr("#dataset-records", "data-count") == str(expected),
              T, state=lambda: {"records": page.text("#dataset-records"), "data-count": page.attr("#dataset-records", "data-count"),
                                "banner": page.text("#unreachable") if page.visible("#unreachable") else None})
    ok(f"page loads and shows the data set: {page.text('#dataset-records')} records (the API says {expected}), "
       f"source {page.text('#dataset-source')!r}")

    # The live release, as GET /releases names it, in the data set card and
    # in the Releases table (with its live badge); the schedule line as
    # GET /schedules has it.
    status, releases = api.call("GET", "/releases")
    if status != 200 or not releases.get("live"):
        raise CheckFailed(f"GET /releases answered {status}: {releases}")
    live = releases["live"]
    page.wait(f"the data set card names the live release {live}", lambda: page.text("#dataset-release") == live, T,
              state=lambda: {"release": page.text("#dataset-release")})
    rows = page.wait("the Releases table lists every kept release", lambda: (
        page.js("return Array.from(document.querySelectorAll('#releases-body tr[data-release]')).map(r => r.dataset.release)")
        == [r["id"] for r in releases["releases"]]) and page.js(
        "return Array.from(document.querySelectorAll('#releases-body tr[data-release]')).map(r => r.dataset.release)"), T,
        state=lambda: {"rows": page.text("#releases-body")})
    live_row = page.js("return document.querySelector('#releases-body tr[data-release] .badge')?.closest('tr').dataset.release")
    if live_row != live:
        raise CheckFailed(f"the row badged live is {live_row!r}, GET /releases says {live!r}")
    status, schedules = api.call("GET", "/schedules")
    want = "off" if status == 200 and schedules == [] else "next refresh"
    page.wait(f"the Releases card's schedule line says {want!r}", lambda: want in page.text("#releases-refresh"), T,
              state=lambda: {"line": page.text("#releases-refresh")})
    ok(f"the Releases card lists {len(rows)} kept release(s), {live} badged live; schedule: {page.text('#releases-refresh')!r}")

    # 2. Job counts and throughput.
    def counts_match():
        _, stats = api.get("/jobs/stats")
        shown = {s: page.attr(f"#count-{s}", "data-count") for s in STATES}
        return all(shown[s] == str(stats["jobs"].get(s, 0)) for s in STATES) and shown

    shown = page.wait("the job counts match GET /jobs/stats", counts_match, T,
                      state=lambda: {"page": {s: page.attr(f"#count-{s}", "data-count") for s in STATES},
                                     "api": api.get("/jobs/stats")[1].get("jobs")})
    ok("job counts panel renders, equal to /jobs/stats: " + ", ".join(f"{k} {v}" for k, v in shown.items()))
    bars = page.wait("the throughput sparkline renders 60 buckets", lambda: page.js(
        "return document.querySelectorAll('#throughput-chart svg > g').length") == 60 and page.text("#tp-sub"), T,
        state=lambda: page.js("return document.querySelector('#throughput-chart').outerHTML.slice(0, 300)"))
    ok(f"throughput panel renders (60 x 10 s buckets): {bars}")

    # 3. Live events connected.
    page.wait("the connection indicator says live (GET /events open)",
              lambda: page.attr("#conn", "data-state") == "live", T,
              state=lambda: {"conn": page.attr("#conn", "data-state"), "label": page.text("#conn")})
    transport = page.attr("#conn", "data-transport")
    if auth and auth["protect_reads"] and transport != "fetch":
        raise CheckFailed(f"reads are protected, but the page reads /events with {transport!r} (EventSource cannot send the key)")
    ok("event stream connected: indicator says " + repr(page.text("#conn") or page.attr("#conn", "data-state"))
       + (f" (read with {transport}, sending the key)" if auth else ""))

    # 4. A plot through the form: a new row, 'done' without a reload, its thumbnail.
    page.js("window.__marker = 1;")
    nav_before = page.js("return performance.timeOrigin")
    rows_before = set(page.js("return [...document.querySelectorAll('tr[data-job-id]')].map(r => r.dataset.jobId)"))
    job_id = submit_plot(page, api, "chromosome", 640, 400, T)
    if job_id in rows_before:
        raise CheckFailed(f"job {job_id} was already listed before the submission")
    page.wait(f"a row for the new job {job_id} appears", lambda: page.row_state(job_id), T,
              state=lambda: page.js("return [...document.querySelectorAll('tr[data-job-id]')].slice(0, 5).map(r => r.dataset.jobId)"))
    ok(f"the plot form queued job {job_id} (chromosome 640x400) and its row appeared")
    wait_done(page, api, job_id, T)
    if page.js("return window.__marker") != 1 or page.js("return performance.timeOrigin") != nav_before:
        raise CheckFailed("the page was reloaded while the job ran (window.__marker is gone)")
    ok(f"the row of job {job_id} turned 'done' live, without a page reload")
    nat = wait_thumbnail(page, job_id, T)
    if list(nat) != [640, 400]:
        raise CheckFailed(f"the thumbnail of job {job_id} is {nat[0]}x{nat[1]}, the plot was 640x400")
    src = page.attr(f'img[data-job-id="{job_id}"]', "src") or ""
    if auth and auth["protect_reads"] and not src.startswith("blob:"):
        raise CheckFailed(f"reads are protected, but the thumbnail's src is {src!r}, not a blob: URL fetched with the key")
    ok(f"its thumbnail img[data-job-id] loaded: the PNG is {nat[0]}x{nat[1]}"
       + (" (fetched with the key, shown from a blob: URL)" if src.startswith("blob:") else ""))

    # 5. Details on click.
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    cell = d.find_element(By.CSS_SELECTOR, f'tr[data-job-id="{job_id}"] td.job')
    page.js("arguments[0].scrollIntoView({block: 'center'})", cell)
    cell.click()
    page.wait("the details panel opens showing the job's id",
              lambda: page.visible("#job-details") and job_id in (page.text("#job-details") or ""), T,
              state=lambda: {"visible": page.visible("#job-details"), "text": (page.text("#job-details") or "")[:200]})
    detail_state = page.text("#job-details .badge")
    if detail_state != "done":
        raise CheckFailed(f"the details panel shows state {detail_state!r}, expected 'done'")
    if auth:
        if not page.offered("#job-details [data-action=delete-image]"):
            raise CheckFailed(f"signed in with the admin key, the details' Delete image button is not offered: "
                              f"{page.needs_controls('admin')}")
    ok(f"clicking the row opens the details of job {job_id} (state {detail_state})"
       + ("; its admin-only Delete image is offered" if auth else ""))
    d.find_element(By.TAG_NAME, "body").send_keys(Keys.ESCAPE)
    page.wait("the details panel closes on Escape", lambda: not page.visible("#job-details"), T)

    # 6. An invalid size: the API's 400 message is shown on the page.
    api_status, api_err = api.call("POST", "/jobs", {"kind": "plot", "plot": "chromosome", "width": 5, "height": 400})
    if api_status != 400:
        raise CheckFailed(f"POST /jobs with width 5 answered {api_status}, expected 400: {api_err}")
    n_jobs_before = page.js("return document.querySelectorAll('tr[data-job-id]').length")
    page.fill_plot_form("chromosome", 5, 400)
    msg = page.wait("an error message for width 5 is shown in the form",
                    lambda: page.visible("#plot-error") and page.text("#plot-error"), T,
                    state=lambda: {"error": page.text("#plot-error"), "status": page.text("#plot-status")})
    if api_err.get("message") not in msg:
        raise CheckFailed(f"the form shows {msg!r}, the API's message is {api_err.get('message')!r}")
    if page.js("return document.querySelectorAll('tr[data-job-id]').length") != n_jobs_before:
        raise CheckFailed("a job row appeared for the rejected size")
    ok(f"an invalid size (width 5) is refused on the page: {msg!r}")

    # 6b. Pause and resume from the page (admin, or a server without keys):
    # the state badge follows, a plot queued while paused waits, then runs.
    page.wait("the queue shows 'running' and offers Pause",
              lambda: page.text("#queue-state") == "running" and page.offered("#pause-btn"), T,
              state=lambda: {"state": page.text("#queue-state"), "controls": page.needs_controls("admin")})
    button = d.find_element(By.CSS_SELECTOR, "#pause-btn")
    page.js("arguments[0].scrollIntoView({block: 'center'})", button)
    button.click()
    page.wait("after Pause, the queue shows 'paused' and offers Resume instead",
              lambda: page.text("#queue-state") == "paused" and page.offered("#resume-btn")
              and not page.visible("#pause-btn"), T,
              state=lambda: {"state": page.text("#queue-state"), "pause": page.visible("#pause-btn")})
    _, stats = api.get("/jobs/stats")
    if not stats.get("queue", {}).get("paused"):
        raise CheckFailed(f"the page says paused, GET /jobs/stats says {stats.get('queue')}")
    held = submit_plot(page, api, "chromosome", 300, 200, T)
    time.sleep(1.5)  # longer than a worker's block time and its pause poll
    _, job = api.get(f"/jobs/{held}")
    if job.get("status") != "queued" or page.row_state(held) != "queued":
        raise CheckFailed(f"the queue is paused, but job {held} is {job.get('status')!r} "
                          f"(its row says {page.row_state(held)!r})")
    button = d.find_element(By.CSS_SELECTOR, "#resume-btn")
    page.js("arguments[0].scrollIntoView({block: 'center'})", button)
    button.click()
    wait_done(page, api, held, T)
    page.wait("after Resume, the queue shows 'running' again",
              lambda: page.text("#queue-state") == "running" and page.offered("#pause-btn"), T,
              state=lambda: page.text("#queue-state"))
    ok(f"Pause on the page paused the queue (GET /jobs/stats agrees); plot {held} waited queued 1.5 s, "
       "and after Resume it turned done live")

    # 7. A screenshot with real jobs.
    if args.screenshot:
        ids = [submit_plot(page, api, k, w, hh, T)
               for k, w, hh in (("locus_group", 1000, 600), ("approval_year", 1200, 600), ("chromosome", 1600, 900))]
        for i in ids:
            wait_done(page, api, i, T)
            wait_thumbnail(page, i, T)
        page.js("document.querySelectorAll('#toasts > *').forEach(t => t.remove()); window.scrollTo(0, 0);")
        time.sleep(0.6)  # the row flash animation ends
        out = os.path.abspath(args.screenshot)
        os.makedirs(os.path.dirname(out), exist_ok=True)
        if not d.save_screenshot(out):
            raise CheckFailed(f"could not save the screenshot to {out}")
        ok(f"submitted {len(ids)} more plots (locus_group, approval_year, chromosome), all done; "
           f"screenshot at {width}x{height} saved to {args.screenshot}")

    # 8. The API goes away: the page says so.
    if args.api_pid:
        page.wait("#unreachable is hidden while the API answers", lambda: not page.visible("#unreachable"), T,
                  state=lambda: page.text("#unreachable"))
        try:
            os.kill(args.api_pid, signal.SIGTERM)
        except OSError as e:
            raise CheckFailed(f"could not send SIGTERM to pid {args.api_pid}: {e}")
        t = time.monotonic()
        page.wait("#unreachable becomes visible after SIGTERM to the API", lambda: page.visible("#unreachable"), 15,
                  state=lambda: {"conn": page.attr("#conn", "data-state")})
        ok(f"after SIGTERM to pid {args.api_pid}, the page shows {page.text('#unreachable .title')!r} "
           f"within {time.monotonic() - t:.1f} s")

    print(f"all dashboard checks passed in {time.monotonic() - t0:.1f} s", flush=True)
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", required=True, help="the API's (and page's) base URL, e.g. http://127.0.0.1:5000")
    ap.add_argument("--screenshot", help="after the checks, make a few plots and save a screenshot here (PNG)")
    ap.add_argument("--api-pid", type=int, help="last, send SIGTERM to this gene-api and expect #unreachable within 15 s")
    ap.add_argument("--size", default="1280x900", help="viewport WxH (default 1280x900; e.g. 390x844 for a phone)")
    ap.add_argument("--timeout", type=float, default=30, help="seconds each wait may take (default 30)")
    ap.add_argument("--key", help="an admin API key: needed when the server wants keys (else unused)")
    ap.add_argument("--write-key", help="a write-scope API key: also check what a write key may do")
    args = ap.parse_args()
    try:
        sys.exit(run(args))
    except CheckFailed as e:
        print(f"FAIL: {e}", flush=True)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
