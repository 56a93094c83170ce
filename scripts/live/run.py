#!/usr/bin/env python3
"""The live test: one real gene-api (an api process and two worker
processes) on a real Redis, checked from outside by real tools.

  1. contract   GET /openapi.json validates as OpenAPI 3.1 (openapi-spec-validator),
                and GET /docs serves Swagger UI from the binary.
  2. prometheus Debian's Prometheus scrapes the api and both workers; its HTTP
                API must report exactly the jobs that ran (submitted by the
                api, finished and timed by the workers), the queue and data
                gauges, and route templates (never raw ids) as labels.
  3. events     every event of GET /events while a plot runs conforms to the
                documented event schema (the endless stream cannot go through
                schemathesis; this is its conformance check).
     traces     every process exports OpenTelemetry traces (OTLP/HTTP) to
                scripts/live/otlp_receiver.py: a plot submitted through the
                api and run by a worker process is one trace, the worker's
                span a child of the request's, which continues the client's
                traceparent; the job record and its events name the trace.
  4. fuzz       schemathesis against the running service, sample loaded: no
                5xx, every status code, content type, header and body as the
                contract says.
  5. cors       scripts/live/cors_check.py: a page of a listed origin reads,
                plots with a key, follows events, shows the PNG; one of an
                origin not listed is refused by the browser.
  6. hgnc       scripts/live/hgnc_client_check.py: bioservices' HGNC client
                (PyPI, unmodified) through gene-api as its HTTP proxy; each
                answer equals the loaded fixture's records.
  7. dashboard  scripts/live/dashboard_check.py in headless Chromium (last: it
                stops the api to see the page say so).

Usage: run.py --bin target/debug/gene-api [--screenshot docs/dashboard.png]
Exit status 0 only when every step passed.
"""

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SAMPLE = os.path.join(ROOT, "data", "hgnc_sample.json")
WITHDRAWN = os.path.join(ROOT, "data", "releases", "withdrawn_2024-07-23.txt")
PLOTS = 6


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def step(msg):
    print(f"\n==> {msg}", flush=True)


def ok(msg):
    print(f"    ok: {msg}", flush=True)


class Failed(Exception):
    pass


def http(method, url, body=None, headers=None, timeout=30):
    req = urllib.request.Request(url, method=method, data=body, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def wait_until(what, fn, timeout=30, every=0.25):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = fn()
            if last:
                return last
        except (OSError, urllib.error.URLError) as e:
            last = e
        time.sleep(every)
    raise Failed(f"{what}: not within {timeout} s (last: {last!r})")


class Stack:
    """Redis, `gene-api api`, two `gene-api worker`s, each with its log in `work`."""

    def __init__(self, binary, work, venv_bin):
        self.binary, self.work, self.venv_bin = binary, work, venv_bin
        # Keys on, as in the deployments: an admin key and a write key from
        # the binary's own `keygen` (stdout: the key, then the keys-file line).
        self.keys_file = os.path.join(work, "keys")
        self.keys = {}
        with open(self.keys_file, "w") as f:
            for name, scope in (("live-admin", "admin"), ("live-writer", "write")):
                key, line = subprocess.run([binary, "keygen", "--name", name, "--scope", scope],
                                           check=True, capture_output=True, text=True).stdout.split("\n")[:2]
                self.keys[scope] = key
                f.write(line + "\n")
        self.procs = {}
        self.redis_port = free_port()
        self.api_port = free_port()
        self.worker_ports = [free_port(), free_port()]
        # Two more origins for the CORS step: one listed, one not.
        self.cors_ports = [free_port(), free_port()]
        # The OTLP receiver every process sends its traces to.
        self.otlp_port = free_port()

    def start(self, name, argv, env=None):
        log = open(os.path.join(self.work, f"{name}.log"), "wb")
        self.procs[name] = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                            env={**os.environ, **(env or {})}, cwd=self.work)

    def env(self, **extra):
        return {
            "REDIS_IP": "127.0.0.1",
            "REDIS_PORT": str(self.redis_port),
            "GENE_API__DATA__SOURCE": SAMPLE,
            # A real withdrawn file, so the fuzzer meets 410 gene_withdrawn too.
            "GENE_API__DATA__WITHDRAWN": WITHDRAWN,
            "GENE_API__HTTP__PORT": str(self.api_port),
            "GENE_API__HTTP__CORS_ORIGINS": f"http://127.0.0.1:{self.cors_ports[0]}",
            "GENE_API__AUTH__KEYS_FILE": self.keys_file,
            # schemathesis sends `Prefer: wait=N`: keep each such request short.
            "GENE_API__HTTP__MAX_WAIT_SECS": "3",
            # One client (schemathesis) sends thousands of requests: with the
            # default budgets most would be 429s and the fuzz would not
            # reach the handlers. 429 is in the contract all the same.
            "GENE_API__LIMITS__REQUESTS_PER_SECOND": "0",
            "GENE_API__LIMITS__SUBMISSIONS_PER_SECOND": "0",
            "RUST_LOG": "info",
            # The standard OpenTelemetry variables: traces on, batches sent
            # every 200 ms (default 5 s) so the check need not wait.
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{self.otlp_port}",
            "OTEL_BSP_SCHEDULE_DELAY": "200",
            **extra,
        }

    def up(self):
        self.start("redis", ["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1",
                             "--save", "", "--appendonly", "no"])
        wait_until("redis-server answers", lambda: socket.create_connection(("127.0.0.1", self.redis_port)).close() or True)
        self.start("otlp", [os.path.join(self.venv_bin, "python"),
                            os.path.join(ROOT, "scripts", "live", "otlp_receiver.py"), "--port", str(self.otlp_port)])
        wait_until("the OTLP receiver answers", lambda: http("GET", f"{self.otlp}/spans")[0] == 200)
        self.start("api", [self.binary, "api"], self.env())
        for i, port in enumerate(self.worker_ports):
            self.start(f"worker{i}", [self.binary, "worker"],
                       self.env(GENE_API__WORKERS__HEALTH_PORT=str(port)))
        for port in [self.api_port, *self.worker_ports]:
            wait_until(f"/ready on {port}", lambda p=port: http("GET", f"http://127.0.0.1:{p}/ready")[0] == 200)
        ok(f"redis :{self.redis_port}, api :{self.api_port}, workers' probes :{self.worker_ports}")

    @property
    def api(self):
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def otlp(self):
        return f"http://127.0.0.1:{self.otlp_port}"

    def down(self):
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs.values():
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()

    @property
    def auth(self):
        return {"Authorization": f"Bearer {self.keys['admin']}"}

    def load(self):
        status, _, body = http("POST", f"{self.api}/data", headers={"Prefer": "wait=3", **self.auth})
        if status not in (200, 202):
            raise Failed(f"POST /data: {status} {body[:200]!r}")
        job = json.loads(body)
        wait_until("the load job done", lambda: self.job(job["id"])["status"] == "done")
        return job

    def job(self, job_id):
        status, _, body = http("GET", f"{self.api}/jobs/{job_id}")
        if status != 200:
            raise Failed(f"GET /jobs/{job_id}: {status} {body[:200]!r}")
        return json.loads(body)

    def plot(self, kind, width=300, height=200):
        body = json.dumps({"kind": "plot", "plot": kind, "width": width, "height": height}).encode()
        status, _, raw = http("POST", f"{self.api}/jobs", body, {"Content-Type": "application/json", **self.auth})
        if status != 202:
            raise Failed(f"POST /jobs: {status} {raw[:200]!r}")
        return json.loads(raw)["id"]


def check_contract(stack, venv_bin):
    step("contract: GET /openapi.json validates, GET /docs works offline")
    status, headers, body = http("GET", f"{stack.api}/openapi.json")
    if status != 200 or not headers.get("content-type", "").startswith("application/json"):
        raise Failed(f"GET /openapi.json: {status} {headers.get('content-type')}")
    path = os.path.join(stack.work, "openapi.json")
    with open(path, "wb") as f:
        f.write(body)
    r = subprocess.run([os.path.join(venv_bin, "openapi-spec-validator"), path], capture_output=True, text=True)
    if r.returncode != 0:
        raise Failed(f"openapi-spec-validator: {r.stdout}{r.stderr}")
    spec = json.loads(body)
    if spec.get("openapi") != "3.1.0":
        raise Failed(f"openapi version {spec.get('openapi')!r}, want 3.1.0")
    ok(f"OpenAPI {spec['openapi']}, {sum(len(v) for v in spec['paths'].values())} operations, valid")
    status, _, page = http("GET", f"{stack.api}/docs")
    if status != 200 or b"swagger-ui" not in page:
        raise Failed(f"GET /docs: {status}")
    for asset in ("swagger-ui.css", "swagger-ui-bundle.js", "swagger-initializer.js"):
        status, headers, data = http("GET", f"{stack.api}/docs/{asset}")
        if status != 200 or len(data) < 100:
            raise Failed(f"GET /docs/{asset}: {status}, {len(data)} bytes")
        if asset == "swagger-initializer.js" and b"/openapi.json" not in data:
            raise Failed("Swagger UI is not pointed at /openapi.json")
    if b"://" in page.replace(b"http://www.w3.org", b""):
        raise Failed("GET /docs refers to another host")
    ok("/docs and its files come from the binary, pointed at /openapi.json")
    return spec


def prom_query(base, q):
    status, _, body = http("GET", f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": q}))
    data = json.loads(body)
    if data.get("status") != "success":
        raise Failed(f"Prometheus query {q!r}: {body[:300]!r}")
    return data["data"]["result"]


def prom_value(base, q):
    result = prom_query(base, q)
    return float(result[0]["value"][1]) if result else None


def check_prometheus(stack):
    step("prometheus: Debian's Prometheus scrapes the api and both workers")
    prom_port = free_port()
    conf = os.path.join(stack.work, "prometheus.yml")
    with open(conf, "w") as f:
        f.write(f"""global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: gene-api
    static_configs:
      - targets: ["127.0.0.1:{stack.api_port}"]
        labels: {{role: api}}
      - targets: ["127.0.0.1:{stack.worker_ports[0]}", "127.0.0.1:{stack.worker_ports[1]}"]
        labels: {{role: worker}}
""")
    stack.start("prometheus", ["prometheus", f"--config.file={conf}",
                               f"--storage.tsdb.path={os.path.join(stack.work, 'tsdb')}",
                               f"--web.listen-address=127.0.0.1:{prom_port}"])
    base = f"http://127.0.0.1:{prom_port}"
    wait_until("Prometheus ready", lambda: http("GET", f"{base}/-/ready")[0] == 200, timeout=60)
    wait_until("all three targets up", lambda: prom_value(base, 'sum(up{job="gene-api"})') == 3, timeout=30)
    ok("targets up: api and two workers")

    ids = [stack.plot(kind) for kind in ["locus_group", "chromosome", "approval_year"] * (PLOTS // 3)]
    wait_until(f"{PLOTS} plots done", lambda: all(stack.job(i)["status"] == "done" for i in ids), timeout=60)
    http("GET", f"{stack.api}/genes/HGNC:5")
    http("GET", f"{stack.api}/genes/HGNC:does-not-exist")
    records = len(json.loads(http("GET", f"{stack.api}/genes")[2]))

    expect = {
        # Submitted in the api process, finished and timed in the workers'.
        'sum(gene_api_jobs_submitted_total{kind="plot"})': PLOTS,
        'sum(gene_api_jobs_finished_total{kind="plot",state="done"})': PLOTS,
        'sum(gene_api_jobs_finished_total{kind="load",state="done"})': 1,
        'sum(gene_api_job_duration_seconds_count{kind="plot"})': PLOTS,
        'sum(gene_api_jobs_in_progress)': 0,
        'gene_api_data_records': records,
        'gene_api_data_loaded': 1,
        'gene_api_stream_pending': 0,
        'gene_api_stream_lag': 0,
        'gene_api_dead_letters': 0,
        'gene_api_queue_paused': 0,
        'sum(gene_api_http_requests_total{route="/genes/{hgnc_id}",method="GET",status="200"})': 1,
        'sum(gene_api_http_requests_total{route="/genes/{hgnc_id}",method="GET",status="400"})': 1,
        'count(gene_api_build_info{mode="worker"})': 2,
    }
    for q, want in expect.items():
        got = wait_until(f"Prometheus: {q} == {want}",
                         lambda q=q, want=want: (prom_value(base, q) == want) and want is not None or None,
                         timeout=20)
        ok(f"{q} = {want}")
    # The histogram has buckets, and no label carries a raw path or id.
    if prom_value(base, 'count(gene_api_http_request_duration_seconds_bucket{route="/jobs"})') in (None, 0):
        raise Failed("no latency buckets for /jobs")
    raw = prom_query(base, 'count by (route) (gene_api_http_requests_total{route=~".*(HGNC|[0-9a-f]{8}-).*"})')
    if raw:
        raise Failed(f"raw ids in route labels: {raw}")
    age = prom_value(base, "gene_api_data_age_seconds")
    if age is None or not 0 <= age < 600:
        raise Failed(f"gene_api_data_age_seconds = {age}")
    ok(f"latency histogram by route template; no raw ids as labels; data age {age:.1f} s")
    stack.procs["prometheus"].terminate()


def check_events(stack, spec):
    step("events: GET /events conforms to the documented event schema")
    import jsonschema

    sse = spec["paths"]["/events"]["get"]["responses"]["200"]["content"]["text/event-stream"]["schema"]
    root = {"components": spec["components"]}
    event_schema = jsonschema.Draft202012Validator({**root, **sse})
    job_schema = jsonschema.Draft202012Validator({**root, "$ref": "#/components/schemas/Job"})
    resp = urllib.request.urlopen(f"{stack.api}/events?kind=plot", timeout=30)
    if not resp.headers.get("content-type", "").startswith("text/event-stream"):
        raise Failed(f"GET /events content type {resp.headers.get('content-type')}")
    job_id = stack.plot("chromosome")
    seen, event = [], {}
    while True:
        line = resp.readline().decode()
        if not line:
            raise Failed(f"/events ended; saw {seen}")
        line = line.rstrip("\n")
        if line.startswith(":"):
            continue
        if line:
            k, _, v = line.partition(":")
            event[k] = v[1:] if v.startswith(" ") else v
            continue
        if not event:
            continue
        event_schema.validate(event)
        job = json.loads(event["data"])
        job_schema.validate(job)
        if job["id"] == job_id:
            seen.append(event["event"])
            if event["event"] == "done":
                break
        event = {}
    resp.close()
    if seen[-1] != "done" or "running" not in seen:
        raise Failed(f"events of job {job_id}: {seen}")
    ok(f"events {' -> '.join(seen)} of one plot, each valid against the contract")


def check_fuzz(stack, venv_bin, examples):
    step(f"fuzz: schemathesis against the live service ({examples} examples an operation)")
    # Every check, with the exceptions and their reasons in schemathesis.toml
    # (there, not as `--checks all`, which would override them).
    config = os.path.join(os.path.dirname(os.path.abspath(__file__)), "schemathesis.toml")
    argv = [os.path.join(venv_bin, "schemathesis"), "--config-file", config, "run",
            f"{stack.api}/openapi.json",
            "--max-examples", str(examples), "--request-timeout", "15",
            "--phases", "examples,coverage,fuzzing,stateful",
            # Endless by design: checked by the events step instead.
            "--exclude-path", "/events",
            # An admin key: every operation is reachable (401/403 are
            # checked by tests/api/security.rs).
            "--header", f"Authorization: Bearer {stack.keys['admin']}",
            "--no-color"]
    # A failing CI run prints its seed: SCHEMATHESIS_SEED=<it> replays it.
    if os.environ.get("SCHEMATHESIS_SEED"):
        argv += ["--seed", os.environ["SCHEMATHESIS_SEED"]]
    # cwd: schemathesis writes its state (.schemathesis/) where it runs.
    r = subprocess.run(argv, capture_output=True, text=True, cwd=stack.work)
    lines = r.stdout.splitlines()
    # On a failure, the whole report from its FAILURES line (each failure
    # with its curl reproduction): a CI log is all that is kept of a run.
    start = next((i for i, l in enumerate(lines) if "FAILURES" in l and r.returncode != 0), len(lines) - 25)
    print("\n".join("    " + l for l in lines[max(start, 0):]))
    if r.returncode != 0:
        with open(os.path.join(stack.work, "schemathesis.log"), "w") as f:
            f.write(r.stdout + r.stderr)
        raise Failed(f"schemathesis found failures (exit {r.returncode}); full report above and in the work dir")
    with open(os.path.join(stack.work, "api.log"), "rb") as f:
        internal = [l for l in f if b"internal error" in l]
    if internal:
        raise Failed(f"the api logged internal errors during the fuzz run: {internal[:3]}")
    ok("schemathesis: no 5xx, every answer conforms to the contract")
    # The fuzzer sends POST /jobs/pause (an admin key lets it) and may never
    # send the resume: the queue runs again for the steps after it.
    status, _, raw = http("POST", f"{stack.api}/jobs/resume",
                          headers={"Authorization": f"Bearer {stack.keys['admin']}"})
    body = json.loads(raw or b"null")
    if status != 200 or not isinstance(body, dict) or body.get("paused") is not False:
        raise Failed(f"POST /jobs/resume after the fuzz run answered {status}: {body}")


def check_traces(stack):
    step("traces: one trace from the request to the PNG, across the api and a worker")
    spans_of = lambda trace: [s for s in json.loads(http("GET", f"{stack.otlp}/spans")[2])
                              if s["trace_id"] == trace]

    def plot(headers, width):
        status, _, raw = http("POST", f"{stack.api}/image?kind=chromosome&width={width}&height=200",
                              headers={"Prefer": "wait=3", **stack.auth, **headers})
        job = json.loads(raw)
        if status != 200 or job.get("status") != "done":
            raise Failed(f"POST /image with Prefer: wait: {status} {raw[:300]!r}")
        return job

    def chain(trace, parent):
        """The api's request span (under `parent`) and the worker's run under it."""
        def found():
            spans = spans_of(trace)
            request = [s for s in spans if s["name"] == "POST /image" and s["parent_span_id"] == parent]
            runs = [s for s in spans if s["name"] == "run plot"]
            return (request, runs, spans) if request and runs else None
        request, runs, spans = wait_until(f"the spans of trace {trace} at the receiver", found, timeout=15)
        (req,), (work,) = request, runs
        if req["kind"] != 2 or req["resource"].get("gene_api.mode") != "api":
            raise Failed(f"the request span is not the api's SERVER span: {req}")
        if work["parent_span_id"] != req["span_id"] or work["kind"] != 5:
            raise Failed(f"the worker's span is not a CONSUMER child of the request's: {work} / {req}")
        if work["resource"].get("gene_api.mode") != "worker" \
                or work["resource"].get("process.pid") == req["resource"].get("process.pid"):
            raise Failed(f"the run is not in a worker process: {work['resource']} / {req['resource']}")
        if work["start_ns"] < req["start_ns"]:
            raise Failed("the worker's span starts before the request's")
        return req, work, spans

    # A client that sends its own W3C traceparent: the request continues it.
    trace, parent = os.urandom(16).hex(), os.urandom(8).hex()
    job = plot({"traceparent": f"00-{trace}-{parent}-01"}, 333)
    if job.get("trace_id") != trace:
        raise Failed(f"the job record does not name the client's trace {trace}: {job}")
    req, work, spans = chain(trace, parent)
    if work["attributes"].get("job_id") != job["id"]:
        raise Failed(f"the worker's span does not name the job: {work['attributes']}")
    status, _, raw = http("GET", f"{stack.api}/jobs/{job['id']}/events", headers=stack.auth)
    done = [json.loads(line[5:]) for line in raw.decode().splitlines() if line.startswith("data:")]
    if status != 200 or not done or any(d.get("trace_id") != trace for d in done):
        raise Failed(f"the job's events do not all carry trace_id {trace}: {status} {done}")
    ok(f"traceparent {trace[:8]}..: POST /image (api pid {req['resource']['process.pid']}) -> "
       f"run plot (worker pid {work['resource']['process.pid']}), {len(spans)} spans in the trace; "
       f"the record and its {len(done)} event(s) name it")
    # No traceparent: a trace of its own, rooted at the request.
    job = plot({}, 334)
    trace = job.get("trace_id") or ""
    if len(trace) != 32 or trace == "0" * 32:
        raise Failed(f"a job submitted without a traceparent has no trace of its own: {job}")
    chain(trace, "")
    ok(f"no traceparent: a new trace {trace[:8]}.. rooted at the api's request, the worker's run its child")


def check_cors(stack, venv_bin):
    step("cors: a page of another origin in headless Chromium")
    stack.load()
    argv = [os.path.join(venv_bin, "python"), os.path.join(ROOT, "scripts", "live", "cors_check.py"),
            "--base", stack.api, "--key", stack.keys["write"],
            "--allowed-port", str(stack.cors_ports[0]), "--other-port", str(stack.cors_ports[1])]
    r = subprocess.run(argv)
    if r.returncode != 0:
        raise Failed(f"the CORS check failed (exit {r.returncode})")


def check_hgnc_client(stack, venv_bin):
    step("hgnc: a real HGNC REST client (bioservices) through gene-api as its proxy")
    stack.load()
    argv = [os.path.join(venv_bin, "python"), os.path.join(ROOT, "scripts", "live", "hgnc_client_check.py"),
            "--base", stack.api, "--sample", SAMPLE]
    # bioservices writes its settings under the home directory: a temporary one.
    env = dict(os.environ, HOME=stack.work, XDG_CONFIG_HOME=stack.work, XDG_CACHE_HOME=stack.work)
    r = subprocess.run(argv, env=env)
    if r.returncode != 0:
        raise Failed(f"the HGNC client check failed (exit {r.returncode})")


def check_dashboard(stack, venv_bin, screenshot):
    step("dashboard: headless Chromium drives GET /")
    stack.load()
    argv = [os.path.join(venv_bin, "python"), os.path.join(ROOT, "scripts", "live", "dashboard_check.py"),
            "--base", stack.api, "--api-pid", str(stack.procs["api"].pid),
            "--key", stack.keys["admin"], "--write-key", stack.keys["write"]]
    if screenshot:
        argv += ["--screenshot", screenshot]
    r = subprocess.run(argv)
    if r.returncode != 0:
        raise Failed(f"the dashboard check failed (exit {r.returncode})")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, "target", "debug", "gene-api"))
    ap.add_argument("--venv-bin", default=os.path.dirname(sys.executable))
    ap.add_argument("--screenshot")
    ap.add_argument("--examples", type=int, default=int(os.environ.get("FUZZ_EXAMPLES", "50")))
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="gene-api-live.")
    stack = Stack(os.path.abspath(args.bin), work, args.venv_bin)
    started = time.monotonic()
    try:
        stack.up()
        spec = check_contract(stack, args.venv_bin)
        stack.load()
        check_prometheus(stack)
        check_events(stack, spec)
        check_traces(stack)
        check_fuzz(stack, args.venv_bin, args.examples)
        check_cors(stack, args.venv_bin)
        check_hgnc_client(stack, args.venv_bin)
        check_dashboard(stack, args.venv_bin, args.screenshot)
    except (Failed, Exception) as e:
        print(f"\n!!! LIVE TEST FAILED: {e}\n    logs: {work}", file=sys.stderr)
        for name in ("api", "worker0", "worker1"):
            path = os.path.join(work, f"{name}.log")
            if os.path.exists(path):
                print(f"--- last lines of {name}.log ---", file=sys.stderr)
                with open(path, "rb") as f:
                    sys.stderr.write(b"".join(f.readlines()[-15:]).decode(errors="replace"))
        stack.down()
        sys.exit(1)
    stack.down()
    shutil.rmtree(work, ignore_errors=True)
    print(f"\nlive test: passed in {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
