#!/usr/bin/env python3
"""CORS tried as a lab web page would, in headless Chromium.

One small page (LAB_PAGE below, nothing in it from elsewhere) is served on two
more origins of this machine: one that GENE_API__HTTP__CORS_ORIGINS lists and
one that it does not. On the listed one, the page's own script reads a gene,
submits a plot with a write key, follows the job's events (EventSource) and
shows the PNG, reading the headers it needs (Location, X-HGNC-Release). On
the other, the browser itself refuses every answer (the fetch fails) and the
API queues nothing.

Usage: cors_check.py --base http://127.0.0.1:PORT --key WRITE_KEY
                     --allowed-port N --other-port M
"""

import argparse
import http.server
import json
import os
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dashboard_check import CheckFailed, make_driver, ok  # noqa: E402

LAB_PAGE = b"""<!doctype html>
<meta charset="utf-8"><title>a lab page</title>
<body><h1>HGNC:5 and a plot, from another origin</h1>
<script>
(async () => {
  const q = new URLSearchParams(location.search);
  const api = q.get("api"), key = q.get("key");
  const out = {};
  try {
    const g = await fetch(api + "/genes/HGNC:5");
    out.gene = (await g.json()).symbol;
    out.release = g.headers.get("x-hgnc-release");
    const p = await fetch(api + "/image", {
      method: "POST",
      headers: {"Authorization": "Bearer " + key, "Content-Type": "application/json", "Prefer": "wait=0"},
      body: JSON.stringify({kind: "chromosome", width: 320, height: 240}),
    });
    out.post = p.status;
    out.location = p.headers.get("location");
    const job = await p.json();
    out.job = job.id;
    out.events = await new Promise((resolve, reject) => {
      const seen = [];
      const es = new EventSource(api + "/jobs/" + job.id + "/events");
      for (const name of ["queued", "running", "done", "failed"]) {
        es.addEventListener(name, () => {
          seen.push(name);
          if (name === "done" || name === "failed") { es.close(); resolve(seen); }
        });
      }
      setTimeout(() => { es.close(); reject(new Error("no final event in 20 s: " + seen)); }, 20000);
    });
    const img = await fetch(api + "/image/" + job.id);
    const el = document.createElement("img");
    el.src = URL.createObjectURL(await img.blob());
    await el.decode();
    document.body.append(el);
    out.png = [el.naturalWidth, el.naturalHeight];
  } catch (e) {
    out.error = String(e);
  }
  window.__result = out;
})();
</script>
"""


class LabPage(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(LAB_PAGE)))
        self.end_headers()
        self.wfile.write(LAB_PAGE)

    def log_message(self, *args):
        pass


def serve(port):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), LabPage)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def jobs_kept(base):
    with urllib.request.urlopen(base + "/jobs?limit=100", timeout=10) as r:
        return {j["id"] for j in json.load(r)}


def run_page(driver, port, base, key, timeout=40):
    url = f"http://127.0.0.1:{port}/lab.html?" + urllib.parse.urlencode({"api": base, "key": key})
    driver.get(url)

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = driver.execute_script("return window.__result")
        if result is not None:
            return result
        time.sleep(0.2)
    raise CheckFailed(f"the page at {url} gave no result within {timeout} s")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--allowed-port", type=int, required=True)
    ap.add_argument("--other-port", type=int, required=True)
    args = ap.parse_args()
    servers = [serve(args.allowed_port), serve(args.other_port)]
    profile = tempfile.mkdtemp(prefix="gene-api-cors-chromium.")
    driver = make_driver(profile, 900, 700)
    try:
        r = run_page(driver, args.allowed_port, args.base, args.key)
        if r.get("error"):
            raise CheckFailed(f"the page of the listed origin could not do its calls: {r}")
        if (r.get("gene"), r.get("post"), r.get("events", [])[-1:], r.get("png")) != ("A1BG", 202, ["done"], [320, 240]):
            raise CheckFailed(f"the page of the listed origin saw {r}")
        if not r.get("release") or r.get("location") != f"/jobs/{r['job']}":
            raise CheckFailed(f"the page could not read the exposed headers (X-HGNC-Release, Location): {r}")
        ok(f"a page of the listed origin :{args.allowed_port} read HGNC:5 ({r['gene']}, release {r['release']}), "
           f"queued plot {r['job']} with the write key (Location read), followed its events "
           f"{' -> '.join(r['events'])} and showed the {r['png'][0]}x{r['png'][1]} PNG")

        before = jobs_kept(args.base)
        r = run_page(driver, args.other_port, args.base, args.key)
        if "Failed to fetch" not in r.get("error", "") or "gene" in r:
            raise CheckFailed(f"a page of an origin not listed was answered: {r}")
        after = jobs_kept(args.base)
        if after != before:
            raise CheckFailed(f"a page of an origin not listed queued jobs: {sorted(after - before)}")
        ok(f"a page of the origin :{args.other_port}, not listed, is refused by the browser ({r['error']!r}); "
           "nothing was queued")
    except CheckFailed as e:
        print(f"FAIL: {e}", file=sys.stderr)
        sys.exit(1)
    finally:
        driver.quit()
        for s in servers:
            s.shutdown()


if __name__ == "__main__":
    main()
