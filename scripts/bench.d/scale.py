"""Figures 18-22 of scripts/bench: reads from memory, many connections and how
each cost grows with the work (issue 23).

- 18: 10,000 concurrent keep-alive clients (wrk -c10000) doing point reads
  against one fresh `gene-api api`: every request answered, p99, and the
  api's RSS growth per connection; the same at 32 and 1,000 connections.
  wrk's own error counts say every connection was made and kept; the api's
  open descriptors, sampled during the run, say it held them all at once.
- 19: idle `GET /events` clients on one fresh `gene-api api` (1, 100,
  1,000 and 10,000; figure 7 measured 1,000 with one asyncio client): the
  time from a state change (its Redis stream id) to each client, and to the
  last client of each event; RSS growth. The clients are several processes
  of `sse_clients.py`, which stamp each epoll batch and do nothing else
  until the end; their longest batch is reported, to show they kept up.
- 20: point reads (wrk -c32) against `redis-benchmark GET -c32` and against
  a bare hyper server answering the same record bytes from memory
  (examples/bare_reference.rs), by alternating turns.
- 21: symbol reads, `/search?q=BRCA*`, a 10,000-term lookup and `GET /data`
  with the default settings, beside the same on an api process with
  `GENE_API__CACHE__RECORDS=false` (reads from Redis per request), by turns.
- 22: load time of 1x, 2x and 4x the data set (renamed copies made here).
The scaling table of BENCHMARKS.md is made of figures 18, 19 and 22.
"""

import json
import os
import random
import resource
import socket
import statistics
import subprocess
import sys
import threading
import time
from urllib.parse import quote

from benchlib import (BenchError, Http, CpuMeter, cpu_per, log, paired, pct, proc_status_kb,
                      redis_benchmark_row, run_tool, ts, wrk_json)

HERE = os.path.dirname(os.path.abspath(__file__))

SCALE_MODES = {
    "full": {
        "conn_counts": [32, 1000, 10000],
        "conn_secs": 10,
        "sse_counts": [1, 100, 1000, 10000],
        "sse_jobs": 20,
        "sse_pause": 0.3,
        "sse_per_process": 2500,
        "memory_rounds": 5,
        "memory_secs": 5,
        "memory_gets": 400_000,
        "cache_rounds": 4,
        "cache_secs": 4,
        "cache_requests": 1000,
        "cache_runs": 3,
        "load_sizes": [1, 2, 4],
        "load_runs": 3,
    },
    "smoke": {
        "conn_counts": [32, 100, 200],
        "conn_secs": 1,
        "sse_counts": [1, 5, 20],
        "sse_jobs": 3,
        "sse_pause": 0.1,
        "sse_per_process": 10,
        "memory_rounds": 1,
        "memory_secs": 1,
        "memory_gets": 5_000,
        "cache_rounds": 1,
        "cache_secs": 1,
        "cache_requests": 20,
        "cache_runs": 1,
        "load_sizes": [1, 2],
        "load_runs": 1,
    },
}

ID_OFFSET = 1_000_000  # renamed copy k of HGNC:n is HGNC:(n + k * ID_OFFSET)


def raise_nofile(need):
    """Raises this driver's open-file limit (inherited by wrk, the clients and
    the gene-apis it starts from now on) to at least `need`."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= need:
        return
    if hard != resource.RLIM_INFINITY and hard < need:
        raise BenchError(f"{need} open files are needed, the hard limit is {hard}: raise it "
                         f"(ulimit -Hn as root, LimitNOFILE= in systemd, --ulimit nofile= in Docker)")
    resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))


def established_to(port):
    """Open TCP connections to 127.0.0.1:port, counted from the clients' side
    (/proc/net/tcp: remote port `port`, state ESTABLISHED), so a connection
    still in the server's accept queue counts too."""
    want = f":{port:04X}"
    with open("/proc/net/tcp") as f:
        next(f)
        return sum(1 for line in f if (cols := line.split()) and cols[2].endswith(want) and cols[3] == "01")


class Sampler:
    """Samples a process's VmRSS (kB) and open descriptors, and the open
    connections to its port, every 100 ms in a thread, keeping the peaks."""

    def __init__(self, pid, port):
        self.pid, self.port, self.rss, self.fds, self.conns = pid, port, 0, 0, 0
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stopped.wait(0.1):
            try:
                self.rss = max(self.rss, proc_status_kb(self.pid, "VmRSS"))
                self.fds = max(self.fds, len(os.listdir(f"/proc/{self.pid}/fd")))
                self.conns = max(self.conns, established_to(self.port))
            except (BenchError, OSError):
                return

    def stop(self):
        self.stopped.set()
        self.thread.join()
        return self.rss, self.fds, self.conns


def wrk_bad(w):
    return w["status_errors"] + w["connect_errors"] + w["read_errors"] + w["write_errors"] + w["timeout_errors"]


class ScaleFigures:
    """Figures 18-22; mixed into the driver's Bench (uses its cfg, start_serve,
    stop_proc, against, submit_and_wait, http, docs, ids)."""

    def scfg(self):
        return SCALE_MODES["smoke" if self.a.smoke else "full"]

    def ids_file(self):
        path = os.path.join(self.a.work, "ids.txt")
        if not os.path.exists(path):
            with open(path, "w") as f:
                f.write("\n".join(self.ids) + "\n")
        return path

    def warm_api(self, label):
        """A fresh `gene-api api` on the bench's Redis, limits off, that has
        answered a few reads (its index and first records are in)."""
        port, proc = self.start_serve(label, {}, command="api")
        h = Http(port)
        for gid in self.ids[:50]:
            h.json("GET", f"/genes/{gid}", (200,))
        h.close()
        time.sleep(0.3)
        return port, proc

    def wrk(self, port, conns, secs, env, what, threads=2):
        out = run_tool(
            ["wrk", "-t", str(threads), "-c", str(conns), "-d", f"{secs}s", "--timeout", "10s",
             "-s", os.path.join(HERE, "genes.lua"), f"http://127.0.0.1:{port}"],
            env=env, timeout=secs + 120)
        w = wrk_json(out)
        if w["requests"] == 0:
            raise BenchError(f"wrk against {what}: no request answered")
        w["req_s"] = w["requests"] / (w["duration_us"] / 1e6)
        w["errors"] = wrk_bad(w)
        return w

    # -- 18 ------------------------------------------------------------------

    def many_connections(self):
        c = self.scfg()
        raise_nofile(max(c["conn_counts"]) + 2048)
        ids = self.ids_file()
        res = {}
        for n in c["conn_counts"]:
            port, proc = self.warm_api(f"conns{n}")
            try:
                before = proc_status_kb(proc.pid, "VmRSS")
                fds0 = len(os.listdir(f"/proc/{proc.pid}/fd"))
                sampler = Sampler(proc.pid, port)
                w = self.wrk(port, n, c["conn_secs"], {"BENCH_IDS": ids}, f"{n} connections",
                             threads=2)
                peak, fds, conns = sampler.stop()
            finally:
                self.stop_proc(proc)
            w.update({"connections": n, "api_rss_kb_before": before, "api_rss_kb_peak": peak,
                      "api_fds_before": fds0, "api_fds_peak": fds, "connections_open_peak": conns,
                      "rss_growth_per_connection_kb": (peak - before) / n})
            if w["errors"]:
                raise BenchError(f"wrk -c{n}: {w['errors']} of {w['requests']} requests failed "
                                 f"(connect {w['connect_errors']}, read {w['read_errors']}, write "
                                 f"{w['write_errors']}, timeout {w['timeout_errors']}, non-2xx {w['status_errors']})")
            if conns < n:
                # A 1 s smoke turn on a busy machine can end before a 100 ms
                # sample sees every connection: only full runs enforce it.
                if c["conn_secs"] >= 5:
                    raise BenchError(f"wrk -c{n}: at most {conns} connections were open at once")
                log(f"note: at most {conns} of {n} connections were seen open at once (a short turn)")
            res[n] = w
            log(f"{n} connections: {w['req_s']:.0f} req/s, p99 {w['p99_us'] / 1000:.2f} ms, no errors; "
                f"{conns} open at once (the api held {fds - fds0}), RSS {before / 1024:.1f} -> {peak / 1024:.1f} MiB "
                f"({w['rss_growth_per_connection_kb']:.1f} KiB a connection)")
        self.raw["many_connections"] = {str(k): v for k, v in res.items()}

    # -- 19 ------------------------------------------------------------------

    def sse_scale(self):
        c = self.scfg()
        counts = c["sse_counts"]
        raise_nofile(max(counts) + 2048)
        res = {}
        for n in counts:
            res[n] = self.sse_turn(n)
        self.raw["sse_scale"] = {str(k): v for k, v in res.items()}

    def sse_turn(self, n):
        c = self.scfg()
        jobs = c["sse_jobs"]
        port, proc = self.warm_api(f"sse{n}")
        clients = []
        try:
            before = proc_status_kb(proc.pid, "VmRSS")
            per = c["sse_per_process"]
            sizes = [min(per, n - i) for i in range(0, n, per)]
            timeout = 60 + jobs * c["sse_pause"] * 4
            for k in sizes:
                clients.append(subprocess.Popen(
                    [sys.executable, os.path.join(HERE, "sse_clients.py"), str(port), str(k), str(jobs * 3),
                     str(timeout)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))
            for p in clients:
                if p.stdout.readline().strip() != "ready":
                    raise BenchError(f"an SSE client process of the {n}-client turn did not get ready")
            time.sleep(0.5)
            connected = proc_status_kb(proc.pid, "VmRSS")
            # The client processes report their receive loops' CPU themselves.
            meter = CpuMeter({"gene-api": proc.pid})
            path = "/image?kind=locus_group&width=200&height=200"
            submitted = []
            for _ in range(jobs):
                submitted.append(self.http.json("POST", path, (202,), body=b"")["id"])
                time.sleep(c["sse_pause"])
            # Every job done, and a second for its last event to reach every
            # client: then the clients stop (they stop by themselves once
            # they counted every event).
            self.drain(submitted, 60)
            time.sleep(1.0)
            outs = []
            for p in clients:
                out, _ = p.communicate("stop\n", timeout=timeout + 30)
                if p.returncode != 0:
                    raise BenchError(f"an SSE client process exited with {p.returncode}")
                outs.append(json.loads(out.strip().splitlines()[-1]))
            cpu = meter.stop()
            peak = proc_status_kb(proc.pid, "VmHWM")
        finally:
            for p in clients:
                if p.poll() is None:
                    p.kill()
                    p.wait()
            self.stop_proc(proc)
        missing = sum(o["missing"] for o in outs)
        per_event = {}
        for o in outs:
            for ev, lat in o["latency_ms"].items():
                per_event.setdefault(ev, []).extend(lat)
        every = [x for lat in per_event.values() for x in lat]
        complete = [lat for lat in per_event.values() if len(lat) == n]
        if missing or len(complete) < jobs * 3:
            raise BenchError(f"SSE with {n} clients: {missing} deliveries missing, {len(complete)} of "
                             f"{jobs * 3} events reached every client")
        last = [max(lat) for lat in complete]
        client_cpu = sum(o["cpu_s"] for o in outs)
        r = {
            "clients": n, "jobs": jobs, "events": len(complete), "deliveries": len(every),
            "p50_ms": pct(every, 50), "p99_ms": pct(every, 99), "max_ms": max(every),
            "last_client_p50_ms": pct(last, 50), "last_client_p99_ms": pct(last, 99),
            "api_rss_kb_before": before, "api_rss_kb_connected": connected, "api_rss_kb_peak": peak,
            "rss_growth_per_client_kb": (connected - before) / n,
            "client_processes": len(outs),
            "client_busy_ms_max": max(o["busy_ms_max"] for o in outs),
            "client_busy_s": sum(o["busy_s"] for o in outs),
            "cpu_us_per_delivery": {"gene-api": round(1e6 * cpu["gene-api"] / len(every), 2),
                                    "clients": round(1e6 * client_cpu / len(every), 2)},
            "other_cpu_s": cpu["other"], "wall_s": cpu["wall"],
        }
        log(f"SSE {n} clients ({len(outs)} client processes): p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, "
            f"to the last client p50 {r['last_client_p50_ms']:.1f} p99 {r['last_client_p99_ms']:.1f} ms; "
            f"RSS +{(connected - before) / 1024:.1f} MiB; clients' longest batch {r['client_busy_ms_max']:.1f} ms; "
            f"CPU us/delivery {r['cpu_us_per_delivery']}")
        return r

    # -- 20 ------------------------------------------------------------------

    def redis_get_turn(self, n, value_bytes):
        run_tool(["redis-benchmark", "-p", str(self.a.redis_port), "-t", "set", "-n", "1", "-c", "1",
                  "-d", str(value_bytes), "-q"])
        out = run_tool(["redis-benchmark", "-p", str(self.a.redis_port), "-t", "get", "-c", "32",
                        "-n", str(n), "--csv"], timeout=300)
        d = redis_benchmark_row(out)
        return {"req_s": float(d["rps"]), "p99_us": 1000 * float(d.get("p99_latency_ms", "nan"))}

    def start_bare(self):
        """The bare hyper reference (examples/bare_reference.rs) on a free port."""
        if not self.a.bare_binary or not os.path.exists(self.a.bare_binary):
            raise BenchError(f"no bare reference binary at {self.a.bare_binary!r} (scripts/bench builds it)")
        for _ in range(3):
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            proc = self.spawn([self.a.bare_binary, self.a.data, str(port)], dict(os.environ), "bare.log")
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and proc.poll() is None:
                try:
                    if Http(port, timeout=2).request("GET", f"/genes/{self.ids[0]}")[0] == 200:
                        return port, proc
                except (OSError, BenchError):
                    pass
                time.sleep(0.1)
            self.stop_proc(proc)
        raise BenchError("the bare reference server did not start")

    def memory_reads(self):
        c = self.scfg()
        ids = self.ids_file()
        bport, bproc = self.start_bare()
        try:
            # The same bytes: a sample of records from both servers.
            h, b = Http(self.a.http_port), Http(bport)
            sizes = []
            for gid in random.Random(23).sample(self.ids, min(50, len(self.ids))):
                s1, _, one = h.request("GET", f"/genes/{gid}")
                s2, _, two = b.request("GET", f"/genes/{gid}")
                if s1 != 200 or s2 != 200 or one != two:
                    raise BenchError(f"GET /genes/{gid}: gene-api and the bare server answer different bytes")
                sizes.append(len(one))
            avg = round(sum(len(json.dumps(d)) for d in self.docs) / len(self.docs))
            turns = {"gene-api": [], "bare": [], "redis": []}
            cpu = {"gene-api": [], "bare": []}
            order = ["gene-api", "bare", "redis"]
            for i in range(c["memory_rounds"]):
                for side in (order if i % 2 == 0 else order[::-1]):
                    if side == "redis":
                        turns[side].append(self.redis_get_turn(c["memory_gets"], avg))
                        continue
                    pid = self.a.api_pid if side == "gene-api" else bproc.pid
                    meter = CpuMeter({"server": pid, "redis-server": self.a.redis_pid})
                    w = self.wrk(self.a.http_port if side == "gene-api" else bport, 32, c["memory_secs"],
                                 {"BENCH_IDS": ids}, side)
                    u = meter.stop()
                    if w["errors"]:
                        raise BenchError(f"wrk against {side}: {w['errors']} errors")
                    turns[side].append(w)
                    cpu[side].append(cpu_per(u, w["requests"]))
            self.redis.cmd("DEL", "key:__rand_int__", "key:000000000000")
        finally:
            self.stop_proc(bproc)

        def rps(side):
            return [t["req_s"] for t in turns[side]]

        self.raw["memory_reads"] = {
            "record_bytes_sampled_mean": statistics.mean(sizes), "redis_value_bytes": avg,
            "vs_redis": paired({"on": rps("gene-api"), "off": rps("redis")}),
            "vs_bare": paired({"on": rps("gene-api"), "off": rps("bare")}),
            "p99_us": {s: statistics.median(t["p99_us"] for t in turns[s]) for s in turns},
            "cpu_us_per_request": cpu,
        }
        m = self.raw["memory_reads"]
        log(f"point reads: gene-api {m['vs_redis']['on_median']:.0f} req/s, redis-benchmark GET "
            f"{m['vs_redis']['off_median']:.0f}, bare hyper {m['vs_bare']['off_median']:.0f}; ratios "
            f"{m['vs_redis']['ratio']:.2f} / {m['vs_bare']['ratio']:.2f}; p99 us {m['p99_us']}")

    # -- 21 ------------------------------------------------------------------

    def lookup_terms(self):
        rng = random.Random(13)
        pools = [[d["hgnc_id"] for d in self.docs], [d["symbol"] for d in self.docs]]
        for f in ("alias_symbol", "prev_symbol", "uniprot_ids"):
            pools.append([v for d in self.docs for v in d.get(f) or []])
        for f in ("ensembl_gene_id", "entrez_id"):
            pools.append([d[f] for d in self.docs if isinstance(d.get(f), str)])
        pools = [p for p in pools if p]
        return [rng.choice(pools[i % len(pools)]) for i in range(10_000)]

    def traces_cost(self):
        """Figure 23: point reads with OpenTelemetry traces exported (each
        request a span, batched over OTLP/HTTP to a receiver) beside the same
        api with traces off, by turns on two processes alike otherwise."""
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        got = {"requests": 0, "bytes": 0}

        class Receiver(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length", 0))
                self.rfile.read(n)
                got["requests"] += 1
                got["bytes"] += n
                # An empty ExportTraceServiceResponse is zero bytes of protobuf.
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

        server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
        threading.Thread(target=server.serve_forever, daemon=True).start()

        def check(ports):
            # The "on" side really exported (the "off" one has nowhere to send).
            if got["requests"] == 0 or got["bytes"] == 0:
                raise BenchError("the traces-on api sent no spans to the OTLP receiver")

        try:
            rps, _ = self.side_by_side(
                "traces",
                {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{server.server_port}",
                 "OTEL_BSP_SCHEDULE_DELAY": "200"},
                {}, after=check)
        finally:
            server.shutdown()
        self.raw["traces_cost"] = {**paired(rps), "export_requests": got["requests"],
                                   "export_bytes": got["bytes"]}
        t = self.raw["traces_cost"]
        log(f"point reads, traces exported {t['on_median']:.0f} req/s, off {t['off_median']:.0f} req/s "
            f"(medians of {len(rps['on'])}); median of the paired ratios {t['ratio']:.3f}; "
            f"{got['requests']} OTLP exports, {got['bytes']:,} bytes")

    def cache_records_cost(self):
        """The same reads on two api processes: the default settings, and
        GENE_API__CACHE__RECORDS=false (a Redis read per request)."""
        c = self.scfg()
        procs = {}
        try:
            procs["on"] = self.start_serve("cache-on", {}, command="api")
            procs["off"] = self.start_serve("cache-off", {"GENE_API__CACHE__RECORDS": "false"}, command="api")
            symbols = os.path.join(self.a.work, "paths-symbol.txt")
            with open(symbols, "w") as f:
                f.write("\n".join("/genes/symbol/" + quote(d["symbol"], safe="") for d in self.docs) + "\n")
            terms = self.lookup_terms()
            body = json.dumps({"terms": terms}).encode()
            http = {side: Http(port) for side, (port, _) in procs.items()}
            for h in http.values():  # the index and the records, before the clock
                h.json("GET", "/info", (200,))
                h.request("GET", "/data")
            want_brca = None
            res = {k: {"on": [], "off": []} for k in ("symbol_req_s", "search_p50_ms", "search_p99_ms",
                                                       "lookup_ms", "data_ms", "symbol_p99_ms")}
            for i in range(c["cache_rounds"]):
                for side in (("on", "off") if i % 2 == 0 else ("off", "on")):
                    port, _ = procs[side]
                    h = http[side]
                    w = self.wrk(port, 32, c["cache_secs"], {"BENCH_PATHS": symbols}, f"symbol reads ({side})")
                    if w["errors"]:
                        raise BenchError(f"symbol reads ({side}): {w['errors']} errors")
                    res["symbol_req_s"][side].append(w["req_s"])
                    res["symbol_p99_ms"][side].append(w["p99_us"] / 1000)
                    lat = []
                    for _ in range(c["cache_requests"]):
                        t0 = time.perf_counter()
                        status, _, data = h.request("GET", "/search?q=BRCA*")
                        lat.append(time.perf_counter() - t0)
                        if status != 200:
                            raise BenchError(f"GET /search?q=BRCA* ({side}) answered {status}")
                    found = json.loads(data)["numFound"]
                    if want_brca is not None and found != want_brca:
                        raise BenchError(f"GET /search?q=BRCA*: {found} on one side, {want_brca} on the other")
                    want_brca = found
                    res["search_p50_ms"][side].append(pct(lat, 50) * 1000)
                    res["search_p99_ms"][side].append(pct(lat, 99) * 1000)
                    for _ in range(c["cache_runs"]):
                        t0 = time.perf_counter()
                        status, _, data = h.request("POST", "/genes/lookup", body, {"Content-Type": "application/json"})
                        res["lookup_ms"][side].append((time.perf_counter() - t0) * 1000)
                        answers = json.loads(data) if status == 200 else []
                        if len(answers) != len(terms) or any(a.get("not_found") for a in answers):
                            raise BenchError(f"POST /genes/lookup ({side}): {status}, not every term answered")
                        t0 = time.perf_counter()
                        status, n, _ = h.stream("/data")
                        res["data_ms"][side].append((time.perf_counter() - t0) * 1000)
                        if status != 200 or n != self.data_bytes:
                            raise BenchError(f"GET /data ({side}): {status}, {n} bytes, expected {self.data_bytes}")
            # Both hold the index after the same reads; only "on" holds the
            # records: what that costs, against the records' own bytes.
            rss = {side: proc_status_kb(proc.pid, "VmRSS") for side, (_, proc) in procs.items()}
        finally:
            for _, proc in procs.values():
                self.stop_proc(proc)
        out = {k: {**v, "on_median": statistics.median(v["on"]), "off_median": statistics.median(v["off"])}
               for k, v in res.items()}
        out["symbol_req_s"] = {**out["symbol_req_s"], **paired(res["symbol_req_s"])}
        log("default / CACHE__RECORDS=false: " + "; ".join(
            f"{k} {v['on_median']:.2f} / {v['off_median']:.2f}" for k, v in out.items()))
        out["rss_kb"] = {**rss, "records_bytes": self.data_bytes}
        log(f"api RSS after the same reads: {rss['on'] / 1024:.1f} MiB default, {rss['off'] / 1024:.1f} MiB "
            f"with CACHE__RECORDS=false; the records are {self.data_bytes / 2**20:.1f} MiB")
        self.raw["cache_records"] = out

    # -- 22 ------------------------------------------------------------------

    def scaled_file(self, k):
        """The data set and k-1 renamed copies of it: ids HGNC:(n + j * 1,000,000),
        symbols (and aliases, previous symbols) with the suffix -C<j>."""
        if k == 1:
            return self.a.data
        docs = list(self.docs)
        for j in range(1, k):
            for d in self.docs:
                e = dict(d)
                e["hgnc_id"] = f"HGNC:{int(d['hgnc_id'].split(':')[1]) + j * ID_OFFSET}"
                e["symbol"] = f"{d['symbol']}-C{j}"
                for f in ("alias_symbol", "prev_symbol"):
                    if isinstance(e.get(f), list):
                        e[f] = [f"{s}-C{j}" for s in e[f]]
                docs.append(e)
        path = os.path.join(self.a.work, f"hgnc_x{k}.json")
        with open(path, "w") as f:
            json.dump({"responseHeader": {"status": 0, "QTime": 0},
                       "response": {"numFound": len(docs), "start": 0, "numFoundExact": True, "docs": docs}}, f)
        return path

    def load_scaling(self):
        c = self.scfg()
        res = {}
        for k in c["load_sizes"]:
            path = self.scaled_file(k)
            port, proc = self.start_serve(f"load{k}x", {"GENE_API__DATA__SOURCE": path,
                                                        "GENE_API__REDIS__KEY_PREFIX": f"bench-load{k}x"})
            try:
                with self.against(port, proc.pid):
                    times, server = [], []
                    for i in range(c["load_runs"]):
                        if i:
                            self.http.json("DELETE", "/data", (200,))
                        j, t = self.submit_and_wait("/data", timeout=300, pause=0.005)
                        records = (j.get("result") or {}).get("records")
                        if records != k * len(self.docs):
                            raise BenchError(f"load of {k}x: {records} records, expected {k * len(self.docs)}")
                        times.append(t)
                        server.append(ts(j["finished_at"]) - ts(j["started_at"]))
                    self.http.json("DELETE", "/data", (200,))
            finally:
                self.stop_proc(proc)
            res[k] = {"records": k * len(self.docs), "bytes": os.path.getsize(path), "client_s": times,
                      "job_s": server, "median_s": statistics.median(times)}
            if path != self.a.data:
                os.remove(path)
            log(f"load of {k}x ({k * len(self.docs)} records): {', '.join(f'{t * 1000:.0f}' for t in times)} ms")
        self.raw["load_scaling"] = {str(k): v for k, v in res.items()}

    # -- rows ------------------------------------------------------------------

    def scale_rows(self):
        r, R = self.raw, self.row
        m = r.get("many_connections")
        if m:
            counts = sorted(m, key=int)
            small, big = m[counts[0]], m[counts[-1]]
            n = big["connections"]
            R(f"18 point reads, {n:,} keep-alive connections (wrk -c{n} -t2)", big["req_s"], "req/s",
              small["req_s"], f"a fresh api process the same way at -c{small['connections']}",
              big["req_s"] / small["req_s"])
            R("18 the same: requests not answered 2xx (connect, read, write, timeout, status errors)",
              big["errors"], "", big["requests"], "requests answered", big["errors"] / big["requests"],
              "0", big["errors"] == 0)
            little = 1000 * n / big["req_s"]
            R(f"18 the same, p99 ({n:,} connections)", big["p99_us"] / 1000, "ms", little,
              "Little's law: connections / req/s, the mean wait of a fair server", big["p99_us"] / 1000 / little)
            mid = m[counts[len(counts) // 2]] if len(counts) > 2 else small
            R(f"18 api RSS growth per connection ({n:,})", big["rss_growth_per_connection_kb"], "KiB",
              mid["rss_growth_per_connection_kb"], f"the same at {mid['connections']:,} connections",
              big["rss_growth_per_connection_kb"] / mid["rss_growth_per_connection_kb"]
              if mid["rss_growth_per_connection_kb"] > 0 else None)
        s = r.get("sse_scale")
        if s:
            counts = sorted(s, key=int)
            ref = s[counts[0]]
            big = s[counts[-1]]
            n = big["clients"]
            for key in counts[1:]:
                e = s[key]
                R(f"19 SSE delivery p99, {e['clients']:,} idle /events clients (every delivery)", e["p99_ms"], "ms",
                  ref["p99_ms"], f"the same with {ref['clients']} client", e["p99_ms"] / max(ref["p99_ms"], 0.01))
            R(f"19 SSE to the last of {n:,} clients, p99 over {big['events']} events", big["last_client_p99_ms"],
              "ms", ref["p99_ms"], f"p99 with {ref['clients']} client",
              big["last_client_p99_ms"] / max(ref["p99_ms"], 0.01), "<= 50 ms", big["last_client_p99_ms"] <= 50)
            grow = big["api_rss_kb_connected"] - big["api_rss_kb_before"]
            R(f"19 SSE api RSS growth, {n:,} idle clients ({big['rss_growth_per_client_kb']:.1f} KiB a client)",
              grow / 1024, "MiB", big["api_rss_kb_before"] / 1024, "api RSS before they connected",
              grow / big["api_rss_kb_before"])
            R(f"19 SSE clients' longest batch of reads ({big['client_processes']} client processes)",
              big["client_busy_ms_max"], "ms", big["last_client_p99_ms"], "the p99 to the last client (row above)",
              big["client_busy_ms_max"] / max(big["last_client_p99_ms"], 0.01))
        mr = r.get("memory_reads")
        if mr:
            R("20 point reads GET /genes/<id> (wrk -c32, median of paired turns)", mr["vs_redis"]["on_median"],
              "req/s", mr["vs_redis"]["off_median"], "redis-benchmark -t get -c32, alternating turns",
              mr["vs_redis"]["ratio"], ">= 1.0 x ref", mr["vs_redis"]["ratio"] >= 1.0)
            R("20 the same against the bare hyper server (examples/bare_reference.rs)", mr["vs_bare"]["on_median"],
              "req/s", mr["vs_bare"]["off_median"], "bare hyper, same record bytes from memory, alternating turns",
              mr["vs_bare"]["ratio"], ">= 0.90 x ref", mr["vs_bare"]["ratio"] >= 0.9)
            p = mr["p99_us"]
            R("20 point reads p99 (wrk -c32)", p["gene-api"] / 1000, "ms", p["bare"] / 1000, "bare hyper p99",
              p["gene-api"] / p["bare"], "<= 1 ms", p["gene-api"] <= 1000)
        cr = r.get("cache_records")
        if cr:
            for key, label, unit in (("symbol_req_s", "GET /genes/symbol/<s> (wrk -c32)", "req/s"),
                                     ("search_p99_ms", "GET /search?q=BRCA* p99 (one at a time)", "ms"),
                                     ("lookup_ms", "POST /genes/lookup, 10,000 terms (median)", "ms"),
                                     ("data_ms", "GET /data (median)", "ms")):
                v = cr[key]
                R(f"21 {label}, default settings", v["on_median"], unit, v["off_median"],
                  "the same with GENE_API__CACHE__RECORDS=false, alternating turns",
                  v.get("ratio", v["on_median"] / v["off_median"] if v["off_median"] else None))
            m = cr.get("rss_kb")
            if m:
                held = (m["on"] - m["off"]) * 1024
                R("21 api RSS holding the live release's records, minus the same process with "
                  "CACHE__RECORDS=false", held / 2**20, "MiB", m["records_bytes"] / 2**20,
                  "the records' own bytes (GET /data)", held / m["records_bytes"])
        ls = r.get("load_scaling")
        if ls:
            sizes = sorted(ls, key=int)
            one = ls[sizes[0]]
            for k in sizes[1:]:
                R(f"22 load of {k}x the data set ({ls[k]['records']:,} records, renamed copies), POST -> done (median)",
                  ls[k]["median_s"] * 1000, "ms", one["median_s"] * 1000 * int(k),
                  f"linear growth: the 1x load ({one['median_s'] * 1000:.0f} ms) x {k}",
                  ls[k]["median_s"] / one["median_s"] / int(k))
        t = r.get("traces_cost")
        if t:
            R(f"23 point reads with OpenTelemetry traces exported (median of {len(t['on_req_s'])} paired turns)",
              t["on_median"], "req/s", t["off_median"], "the same, traces off (no OTEL_EXPORTER_OTLP_ENDPOINT)",
              t["ratio"])

    def scale_notes(self):
        """The scaling table of BENCHMARKS.md (figures 18, 19 and 22), and what
        the figures' rows leave out."""
        r = self.raw
        m, s, ls = r.get("many_connections"), r.get("sse_scale"), r.get("load_scaling")
        if not (m or s or ls):
            return
        rows = []
        if m:
            rows.append(("point-read p99 (wrk, keep-alive connections)",
                         [f"{int(k):,} connections: {m[k]['p99_us'] / 1000:.2f} ms ({m[k]['req_s']:,.0f} req/s)"
                          for k in sorted(m, key=int)]))
        if ls:
            rows.append(("load time, POST /data -> done (median)",
                         [f"{k}x ({ls[k]['records']:,} records): {ls[k]['median_s'] * 1000:.0f} ms"
                          for k in sorted(ls, key=int)]))
        if s:
            rows.append(("SSE delivery p99 (every delivery; to the last client)",
                         [f"{int(k):,} clients: {s[k]['p99_ms']:.1f} ms; {s[k]['last_client_p99_ms']:.1f} ms"
                          for k in sorted(s, key=int) if int(k) > 1]))
        width = max(len(cells) for _, cells in rows)
        print()
        print("| cost | " + " | ".join(f"step {i + 1}" for i in range(width)) + " |")
        print("|---|" + "---|" * width)
        for label, cells in rows:
            print(f"| {label} | " + " | ".join(cells + [""] * (width - len(cells))) + " |")
        if s:
            for k in sorted(s, key=int):
                e = s[k]
                print(f"SSE {e['clients']:,} clients: {e['deliveries']:,} deliveries of {e['events']} events, "
                      f"p50 {e['p50_ms']:.1f} ms, max {e['max_ms']:.1f} ms; {e['client_processes']} client "
                      f"process(es), longest batch {e['client_busy_ms_max']:.1f} ms, busy {e['client_busy_s']:.2f} s; "
                      f"CPU us per delivery {e['cpu_us_per_delivery']}; RSS before {e['api_rss_kb_before'] / 1024:.1f} "
                      f"MiB, connected {e['api_rss_kb_connected'] / 1024:.1f}, peak {e['api_rss_kb_peak'] / 1024:.1f}.")
        if m:
            for k in sorted(m, key=int):
                e = m[k]
                print(f"{e['connections']:,} connections: {e['requests']:,} requests, {e['errors']} errors, "
                      f"p50 {e['p50_us'] / 1000:.2f} ms, p99 {e['p99_us'] / 1000:.2f} ms, max {e['max_us'] / 1000:.0f} ms; "
                      f"{e['connections_open_peak']:,} open at once, the api held {e['api_fds_peak'] - e['api_fds_before']:,} "
                      f"descriptors more than before at its peak; RSS "
                      f"{e['api_rss_kb_before'] / 1024:.1f} -> {e['api_rss_kb_peak'] / 1024:.1f} MiB.")
        mr = r.get("memory_reads")
        if mr:
            print(f"Point reads from memory: record bytes (sampled) {mr['record_bytes_sampled_mean']:.0f} B, "
                  f"redis-benchmark values {mr['redis_value_bytes']} B; turns req/s gene-api "
                  f"{[round(x) for x in mr['vs_redis']['on_req_s']]}, redis {[round(x) for x in mr['vs_redis']['off_req_s']]}, "
                  f"bare {[round(x) for x in mr['vs_bare']['off_req_s']]}; CPU us/request {mr['cpu_us_per_request']}.")
        cr = r.get("cache_records")
        if cr:
            print("Default settings / CACHE__RECORDS=false, medians: " + "; ".join(
                f"{k} {v['on_median']:.2f} / {v['off_median']:.2f}" for k, v in cr.items()
                if "on_median" in v) + ".")
