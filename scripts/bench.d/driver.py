#!/usr/bin/env python3
"""The measuring side of scripts/bench (Python 3 standard library only).

scripts/bench builds gene-api, starts a redis-server and gene-api of its own on
free ports, and runs this driver against them. The driver measures the figures
of issues 6 to 21, each next to a reference measured in the same run on the
same machine, prints one table and optionally writes every raw number as JSON.
Figures 11-15 (HGNC releases, issue 21) are in releases.py; they start
redis-servers and gene-apis of their own, loaded with two real releases.
Figures 18-22 (issue 23: reads from memory, 10,000 connections and SSE
clients, how each cost grows) are in scale.py.

Every figure is also a check: a job that fails, a count that is wrong, a status
that is not 2xx or a tool that misbehaves stops the run with a non-zero exit.
The speed targets are only reported (pass/miss), never enforced.
"""

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import random
import resource
import socket
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

# This script's directory is first on sys.path: the figures' shared parts.
from benchlib import (
    BenchError,
    log,
    Http,
    resp_encode,
    redis_benchmark_row,
    Redis,
    paired,
    pct,
    proc_status_kb,
    machine_ticks,
    CpuMeter,
    cpu_percent,
    cpu_per,
    fmt_dict,
    ts,
    run_tool,
    wrk_json,
    png_size,
)
from failover import FailoverFigures
from releases import ReleaseFigures
from scale import ScaleFigures


# How much each figure does, per mode. Smoke keeps the same code path with
# tiny counts so that CI runs it in seconds.
MODES = {
    "full": {
        "load_runs": 5,
        "ref_runs": 5,
        "check_genes": 50,
        "wrk_secs": 10,
        "wrk_conns": 32,
        "wrk_threads": 2,
        "redis_gets": 300_000,
        "bulk_runs": 5,
        "plot_jobs": 30,
        "sustained_jobs": 500,
        "submit_secs": 2,
        "submit_cap": 10_000,
        "pipeline_turns": 3,
        "drain_timeout": 180,
        "quiet_wait": 120,
        "sse_clients": 1000,
        "sse_jobs": 30,
        "metrics_rounds": 10,
        "metrics_secs": 4,
        "search_requests": 2000,
        "lookup_runs": 5,
        "diff_cold_runs": 3,
        "diff_repeats": 20,
        "withdrawn_rounds": 5,
        "release_rounds": 6,
        "failover_turns": 3,
        "replicas_turns": 6,
        "replicas_secs": 3,
    },
    "smoke": {
        "load_runs": 2,
        "ref_runs": 2,
        "check_genes": 10,
        "wrk_secs": 1,
        "wrk_conns": 32,
        "wrk_threads": 2,
        "redis_gets": 5_000,
        "bulk_runs": 2,
        "plot_jobs": 3,
        "sustained_jobs": 20,
        "submit_secs": 1,
        "submit_cap": 300,
        "pipeline_turns": 1,
        "drain_timeout": 60,
        "quiet_wait": 0,
        "sse_clients": 20,
        "sse_jobs": 3,
        "metrics_rounds": 2,
        "metrics_secs": 1,
        "search_requests": 50,
        "lookup_runs": 2,
        "diff_cold_runs": 1,
        "diff_repeats": 3,
        "withdrawn_rounds": 1,
        "release_rounds": 2,
        "failover_turns": 1,
        "replicas_turns": 2,
        "replicas_secs": 1,
    },
}

PLOT_KINDS = ("locus_group", "chromosome", "approval_year")
DEFAULT_SIZE = (1000, 600)  # gene-api's ImageSize::default()
TRIVIAL_SIZE = (200, 200)  # the smallest plot gene-api accepts
HSET_BATCH = 1000  # records per HSET in the raw-Redis load reference (as gene-api)
HERE = os.path.dirname(os.path.abspath(__file__))


# --------------------------------------------------------------------------
# The benchmark.
# --------------------------------------------------------------------------


class Bench(ReleaseFigures, FailoverFigures, ScaleFigures):
    def __init__(self, a):
        self.a = a
        self.cfg = MODES["smoke" if a.smoke else "full"]
        self.http = Http(a.http_port)
        self.nocache = None  # (port, process) of the cache-off server, figures 4 and 5
        self.procs = {}  # every process the driver started: process -> its log file
        self.index_rss = None  # api VmRSS (kB) before and after it first read the index
        ReleaseFigures.__init__(self)
        self.redis = Redis(a.redis_port)
        self.raw = {"mode": "smoke" if a.smoke else "full", "config": self.cfg}
        self.rows = []

    # -- helpers -----------------------------------------------------------

    def row(self, figure, value, unit, ref=None, ref_label="", ratio=None, target=None, ok=None):
        self.rows.append(
            {
                "figure": figure,
                "value": value,
                "unit": unit,
                "reference": ref,
                "reference_label": ref_label,
                "ratio": ratio,
                "target": target,
                "pass": ok,
            }
        )

    def alive(self):
        for name, pid in (("gene-api", self.a.api_pid), ("redis-server", self.a.redis_pid)):
            if not os.path.exists(f"/proc/{pid}"):
                raise BenchError(f"{name} (pid {pid}) is no longer running")

    def job(self, job_id, http=None):
        return (http or self.http).json("GET", f"/jobs/{job_id}", (200,))

    def wait_job(self, job_id, timeout, pause=0.001, http=None):
        """Polls GET /jobs/<id> until the job is finished; returns (job, seconds waited)."""
        t0 = time.perf_counter()
        while True:
            j = self.job(job_id, http)
            if j["status"] in ("done", "failed"):
                return j, time.perf_counter() - t0
            if time.perf_counter() - t0 > timeout:
                raise BenchError(f"job {job_id} still {j['status']} after {timeout} s")
            time.sleep(pause)

    def submit_and_wait(self, method_path, timeout, pause=0.001):
        """Submits a job and polls it to its end; returns (job, client seconds POST -> seen done)."""
        t0 = time.perf_counter()
        j = self.http.json("POST", method_path, (202,), body=b"")
        j, _ = self.wait_job(j["id"], timeout, pause)
        elapsed = time.perf_counter() - t0
        if j["status"] != "done":
            raise BenchError(f"{method_path}: job {j['id']} failed: {j.get('error')}")
        return j, elapsed

    def drain(self, ids, timeout, http=None):
        """Waits for every job in ids; returns their records. Fails if any job failed.

        Waits on the last id first, polling slowly, so that the polling itself
        hardly loads gene-api while the workers drain the stream."""
        deadline = time.perf_counter() + timeout
        self.wait_job(ids[-1], timeout, pause=0.02, http=http)
        jobs = []
        for i in ids:
            j, _ = self.wait_job(i, max(0.0, deadline - time.perf_counter()), pause=0.01, http=http)
            if j["status"] != "done":
                raise BenchError(f"job {i} failed: {j.get('error')}")
            jobs.append(j)
        return jobs

    # -- figures -----------------------------------------------------------

    def machine(self):
        cpu = "unknown"
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as f:
            mem_kb = int(f.readline().split()[1])
        server = self.redis.info("server")
        root = os.path.dirname(os.path.dirname(HERE))
        try:
            commit = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"],
                                    capture_output=True, text=True, timeout=10).stdout.strip()
            dirty = subprocess.run(["git", "-C", root, "status", "--porcelain", "--", "src", "Cargo.toml", "Cargo.lock"],
                                   capture_output=True, text=True, timeout=10).stdout.strip()
            commit = (commit + (" + uncommitted changes in src/" if dirty else "")) or None
        except (OSError, subprocess.SubprocessError):
            commit = None
        self.raw["machine"] = {
            "nproc": os.cpu_count(),
            "cpu": cpu,
            "memory_gib": round(mem_kb / 2**20, 1),
            "kernel": platform.release(),
            "redis_version": server.get("redis_version"),
            "python": platform.python_version(),
            "gene_api_commit": commit,
        }

    def wait_quiet(self):
        """Other work on this 2-core machine skews every figure: wait (bounded) until
        the machine is nearly idle, and record what it was doing."""
        limit = self.cfg["quiet_wait"]
        tick = os.sysconf("SC_CLK_TCK")
        t0 = time.perf_counter()
        said = False
        while True:
            a = sum(machine_ticks())
            time.sleep(1.0)
            busy = 100 * (sum(machine_ticks()) - a) / tick
            if busy < 15 or time.perf_counter() - t0 >= limit:
                break
            if not said:
                log(f"other processes use {busy:.0f}% of a core; waiting up to {limit} s for quiet")
                said = True
        self.raw["busy_before_percent"] = round(busy, 1)
        if busy >= 15:
            log(f"WARNING: starting although the machine is busy ({busy:.0f}% of a core)")

    def footprint_idle(self):
        time.sleep(0.5)  # let the fresh process settle
        self.alive()
        self.raw["idle"] = {
            "api_rss_kb": proc_status_kb(self.a.api_pid, "VmRSS"),
            "redis_rss_kb": proc_status_kb(self.a.redis_pid, "VmRSS"),
            "redis_used_memory": int(self.redis.info("memory")["used_memory"]),
        }
        self.raw["binary_bytes"] = os.path.getsize(self.a.binary)
        log(f"idle: gene-api RSS {self.raw['idle']['api_rss_kb'] / 1024:.1f} MiB")

    def read_source(self):
        t0 = time.perf_counter()
        with open(self.a.data, "rb") as f:
            body = f.read()
        doc = json.loads(body)
        docs = doc["response"]["docs"]
        self.source_bytes = len(body)
        self.docs = docs
        self.by_id = {d["hgnc_id"]: d for d in docs}
        if len(self.by_id) != len(docs):
            raise BenchError(f"{self.a.data} repeats hgnc_ids")
        self.raw["source"] = {"path": self.a.data, "bytes": len(body), "records": len(docs)}
        log(f"source: {len(docs)} records, {len(body) / 1e6:.1f} MB (read in {time.perf_counter() - t0:.2f} s)")

    def load(self):
        n = len(self.docs)
        times, server_times = [], []
        for i in range(self.cfg["load_runs"]):
            if i > 0:
                # The same bytes as the live release would finish `unchanged`
                # and store nothing (issue 21): each run loads into an empty
                # data set, as the first does.
                self.http.json("DELETE", "/data", (200,))
            j, t = self.submit_and_wait("/data", timeout=120, pause=0.002)
            result = j.get("result") or {}
            if result.get("unchanged") is not False:
                raise BenchError(f"load job {j['id']} stored nothing: {result}")
            records = result.get("records")
            if records != n:
                raise BenchError(f"load job {j['id']} reports {records} records, the source has {n}")
            times.append(t)
            server_times.append(ts(j["finished_at"]) - ts(j["created_at"]))
            if i == 0:
                self.alive()
                self.raw["after_load"] = {
                    "api_rss_kb": proc_status_kb(self.a.api_pid, "VmRSS"),
                    "redis_used_memory": int(self.redis.info("memory")["used_memory"]),
                }
        self.raw["after_loads"] = {"api_rss_kb": proc_status_kb(self.a.api_pid, "VmRSS")}
        self.raw["load"] = {"client_s": times, "server_s": server_times}
        log(f"load: {', '.join(f'{t * 1000:.0f}' for t in times)} ms")

    def check_reads(self):
        # Since issue 21 a point read also needs the release's index, so
        # figure 10's RSS row is measured around a first request before them.
        self.index_rss = self.first_index_read()
        ids = self.http.json("GET", "/genes", (200,))
        if sorted(ids) != sorted(self.by_id):
            raise BenchError(f"GET /genes returned {len(ids)} ids; they differ from the source's {len(self.by_id)}")
        self.ids = ids
        rng = random.Random(6)
        for gid in rng.sample(ids, min(self.cfg["check_genes"], len(ids))):
            got = self.http.json("GET", f"/genes/{gid}", (200,))
            if got != self.by_id[gid]:
                raise BenchError(f"GET /genes/{gid} differs from the source record")
        status, _, data = self.http.request("GET", "/data")
        if status != 200:
            raise BenchError(f"GET /data answered {status}")
        if json.loads(data) != self.docs:
            raise BenchError("GET /data differs from the source's response.docs")
        self.data_bytes = len(data)
        log(f"checked: GET /genes, {self.cfg['check_genes']} GET /genes/<id>, GET /data ({len(data)} bytes)")

    def first_index_read(self):
        """The api's VmRSS before and after the first request that needs the
        live release's index (GET /info), which it fetches once."""
        before = proc_status_kb(self.a.api_pid, "VmRSS")
        self.http.json("GET", "/info", (200,))
        return before, proc_status_kb(self.a.api_pid, "VmRSS")

    def load_reference(self):
        """Raw Redis: the same records HSET in batches of 1000 plus the array SET, pre-encoded, one pipeline."""
        key_h, key_b = "bench:ref:genes", "bench:ref:blob"
        parts, replies = [], 0
        for i in range(0, len(self.docs), HSET_BATCH):
            args = ["HSET", key_h]
            for d in self.docs[i : i + HSET_BATCH]:
                args += [d["hgnc_id"], json.dumps(d, ensure_ascii=False).encode()]
            parts.append(resp_encode(*args))
            replies += 1
        blob = json.dumps(self.docs, ensure_ascii=False).encode()
        parts.append(resp_encode("SET", key_b, blob))
        replies += 1
        payload = b"".join(parts)
        times = []
        for _ in range(self.cfg["ref_runs"]):
            self.redis.cmd("DEL", key_h, key_b)
            times.append(self.redis.pipeline(payload, replies))
        if self.redis.cmd("HLEN", key_h) != len(self.docs):
            raise BenchError("the raw-Redis reference did not store every record")
        # Bulk-read reference while the blob is there: one GET of the same bytes.
        gets = []
        for _ in range(self.cfg["bulk_runs"]):
            t0 = time.perf_counter()
            v = self.redis.cmd("GET", key_b)
            gets.append(time.perf_counter() - t0)
            if len(v) != len(blob):
                raise BenchError("GET of the reference blob came back short")
        self.redis.cmd("DEL", key_h, key_b)
        self.raw["load_reference"] = {"payload_bytes": len(payload), "commands": replies, "s": times}
        self.raw["bulk_reference"] = {"bytes": len(blob), "s": gets}
        log(f"raw Redis: pipelined HSET+SET {statistics.median(times) * 1000:.0f} ms, GET blob {statistics.median(gets) * 1000:.1f} ms")

    def point_reads(self):
        c = self.cfg
        ids_file = os.path.join(self.a.work, "ids.txt")
        with open(ids_file, "w") as f:
            f.write("\n".join(self.ids) + "\n")
        meter = CpuMeter({"gene-api": self.a.api_pid, "redis-server": self.a.redis_pid})
        out = run_tool(
            [
                "wrk", "--latency", "-t", str(c["wrk_threads"]), "-c", str(c["wrk_conns"]),
                "-d", f"{c['wrk_secs']}s", "--timeout", "5s",
                "-s", os.path.join(HERE, "genes.lua"), f"http://127.0.0.1:{self.a.http_port}",
            ],
            env={"BENCH_IDS": ids_file},
            timeout=c["wrk_secs"] + 60,
        )
        cpu = meter.stop()
        w = wrk_json(out)
        bad = w["status_errors"] + w["connect_errors"] + w["read_errors"] + w["write_errors"] + w["timeout_errors"]
        if w["requests"] == 0 or bad:
            raise BenchError(f"wrk GET /genes/<id>: {w['requests']} requests, {bad} errors: {w}")
        w["req_s"] = w["requests"] / (w["duration_us"] / 1e6)
        w["cpu_percent"] = cpu_percent(cpu)
        w["cpu_us_per_request"] = cpu_per(cpu, w["requests"])
        self.raw["point_reads"] = w
        log(f"wrk GET /genes/<id>: {w['req_s']:.0f} req/s, p99 {w['p99_us'] / 1000:.2f} ms, "
            f"CPU % {w['cpu_percent']}, CPU us/request {w['cpu_us_per_request']}")

        # Reference: redis-benchmark GET of one value the size of an average record.
        avg = max(1, round(sum(len(json.dumps(d)) for d in self.docs) / len(self.docs)))
        run_tool(["redis-benchmark", "-p", str(self.a.redis_port), "-t", "set", "-n", "1", "-c", "1", "-d", str(avg), "-q"])
        meter = CpuMeter({"redis-server": self.a.redis_pid})
        out = run_tool(
            ["redis-benchmark", "-p", str(self.a.redis_port), "-t", "get", "-c", str(c["wrk_conns"]),
             "-n", str(c["redis_gets"]), "--csv"],
            timeout=300,
        )
        cpu = meter.stop()
        self.redis.cmd("DEL", "key:000000000000")
        ref = redis_benchmark_row(out)
        self.raw["redis_get"] = {
            "value_bytes": avg,
            "req_s": float(ref["rps"]),
            "p99_ms": float(ref.get("p99_latency_ms", "nan")),
            "p50_ms": float(ref.get("p50_latency_ms", "nan")),
            "requests": c["redis_gets"],
            "cpu_percent": cpu_percent(cpu),
            "cpu_us_per_request": cpu_per(cpu, c["redis_gets"]),
        }
        log(f"redis-benchmark GET ({avg} B values): {float(ref['rps']):.0f} req/s, "
            f"CPU % {cpu_percent(cpu)}, CPU us/request {cpu_per(cpu, c['redis_gets'])}")

    def bulk_read(self):
        times, growth = [], []
        for _ in range(self.cfg["bulk_runs"]):
            self.alive()
            with open(f"/proc/{self.a.api_pid}/clear_refs", "w") as f:
                f.write("5")  # resets VmHWM to the current RSS
            before = proc_status_kb(self.a.api_pid, "VmRSS")
            t0 = time.perf_counter()
            status, n, length = self.http.stream("/data")
            times.append(time.perf_counter() - t0)
            peak = proc_status_kb(self.a.api_pid, "VmHWM")
            growth.append((peak - before) * 1024)
            if status != 200 or n != self.data_bytes or (length is not None and length != n):
                raise BenchError(f"GET /data: status {status}, {n} bytes read, Content-Length {length}, expected {self.data_bytes}")
        self.raw["bulk_read"] = {"bytes": self.data_bytes, "s": times, "rss_growth_bytes": growth}
        log(f"GET /data: {', '.join(f'{t * 1000:.0f}' for t in times)} ms, peak RSS growth {max(growth) / 1024:.0f} KiB")

    def plots(self):
        """Figure 4 on the cache-off server: every job draws its chart (on the
        main server all but the first of each kind would be copied from the
        render cache, and this figure is about drawing)."""
        port, proc = self.nocache
        with self.against(port, proc.pid):
            self.plots_drawn()

    def plots_drawn(self):
        w, h = DEFAULT_SIZE
        res = {}
        for kind in PLOT_KINDS:
            path = f"/image?kind={kind}&width={w}&height={h}"
            cold_job, cold = self.submit_and_wait(path, timeout=60)
            status, _, png = self.http.request("GET", f"/image/{cold_job['id']}")
            if status != 200 or png_size(png) != (w, h):
                raise BenchError(f"GET /image/{cold_job['id']}: status {status}, not a {w}x{h} PNG")
            client, server, render, queue = [], [], [], []
            for _ in range(self.cfg["plot_jobs"]):
                j, t = self.submit_and_wait(path, timeout=60)
                client.append(t)
                server.append(ts(j["finished_at"]) - ts(j["created_at"]))
                render.append(ts(j["finished_at"]) - ts(j["started_at"]))
                queue.append(ts(j["started_at"]) - ts(j["created_at"]))
            res[kind] = {
                "cold_s": cold, "png_bytes": len(png), "client_s": client,
                "server_s": server, "run_s": render, "queue_s": queue,
            }
            log(f"plot {kind}: p50 {pct(client, 50) * 1000:.1f} ms, p99 {pct(client, 99) * 1000:.1f} ms (first {cold * 1000:.0f} ms)")
        self.raw["plots"] = res

        # Sustained: many default-size jobs at once, all workers busy.
        n = self.cfg["sustained_jobs"]
        kinds = [PLOT_KINDS[i % 3] for i in range(n)]
        paths = iter(f"/image?kind={k}&width={w}&height={h}" for k in kinds)
        lock = threading.Lock()

        def next_path():
            with lock:
                return next(paths)

        meter = CpuMeter({"gene-api": self.a.api_pid, "redis-server": self.a.redis_pid})
        t0 = time.perf_counter()
        ids = self.submit_many(next_path, n)
        jobs = self.drain(ids, self.cfg["drain_timeout"])
        wall = time.perf_counter() - t0
        cpu = meter.stop()
        # Timestamps have 1 ms resolution: a span below that is 1 ms.
        span = max(1e-3, max(ts(j["finished_at"]) for j in jobs) - min(ts(j["created_at"]) for j in jobs))
        self.raw["plots_sustained"] = {
            "jobs": n, "span_s": span, "client_wall_s": wall, "jobs_s": n / span,
            "workers": self.a.workers,
            "mean_run_s": statistics.mean(ts(j["finished_at"]) - ts(j["started_at"]) for j in jobs),
            "cpu_percent": cpu_percent(cpu),
            "cpu_us_per_job": cpu_per(cpu, n),
        }
        log(f"plots sustained: {n} jobs in {span:.2f} s = {n / span:.1f} jobs/s")

    def submit_many(self, next_path, n, threads=8):
        local = threading.local()

        def one(_):
            if not hasattr(local, "http"):
                local.http = Http(self.a.http_port)
            return local.http.json("POST", next_path(), (202,), body=b"")["id"]

        with ThreadPoolExecutor(threads) as pool:
            return list(pool.map(one, range(n)))

    def pipeline(self):
        """Figure 5: 200x200 plot jobs, submitted by wrk while the workers
        drain them, end to end. Every job asks for the same chart, which is
        the best case for the workers' render cache; the reference is the
        same figure on the cache-off server, where every job draws its chart.
        The two are measured by turns (on, off, off, on, ...) and each
        figure is the median turn, since a single turn of a few seconds on
        two shared cores swings by a fifth."""
        port, proc = self.nocache
        sides = {"on": (self.a.http_port, self.a.api_pid), "off": (port, proc.pid)}
        turns = {"on": [], "off": []}
        for i in range(self.cfg["pipeline_turns"]):
            for side in (("on", "off") if i % 2 == 0 else ("off", "on")):
                turns[side].append(self.pipeline_run(*sides[side], f"cache {side}, turn {i + 1}"))

        def median_turn(runs):
            runs = sorted(runs, key=lambda r: r["jobs_s"])
            return {**runs[len(runs) // 2], "turns_jobs_s": [r["jobs_s"] for r in runs]}

        self.raw["pipeline"] = median_turn(turns["on"])
        self.raw["pipeline_nocache"] = median_turn(turns["off"])
        log(f"pipeline medians: cache on {self.raw['pipeline']['jobs_s']:.0f} jobs/s "
            f"(turns {', '.join(f'{x:.0f}' for x in self.raw['pipeline']['turns_jobs_s'])}), "
            f"cache off {self.raw['pipeline_nocache']['jobs_s']:.0f} jobs/s")

    def start_nocache(self):
        """A second `gene-api serve` with the render cache off (its own key
        prefix, so its own stream and data set, loaded here): figure 4
        measures renders on it, and figure 5 its reference."""
        port, proc = self.start_serve("nocache", {
            "GENE_API__IMAGES__RENDER_CACHE_BYTES": "0",
            "GENE_API__REDIS__KEY_PREFIX": "bench-nocache",
        })
        self.nocache = (port, proc)
        job = Http(port).json("POST", "/data", (200,), body=b"", headers={"Prefer": "wait=60"})
        if job.get("status") != "done":
            raise BenchError(f"load on the cache-off server: {job}")
        log(f"cache-off server on port {port}, data loaded")

    def stop_nocache(self):
        if self.nocache:
            proc = self.nocache[1]
            self.nocache = None
            self.stop_proc(proc)

    @contextlib.contextmanager
    def against(self, port, pid):
        """Points the driver's requests (and CPU meters) at another gene-api for a while."""
        saved = (self.http, self.a.http_port, self.a.api_pid)
        self.http, self.a.http_port, self.a.api_pid = Http(port), port, pid
        try:
            yield
        finally:
            self.http, self.a.http_port, self.a.api_pid = saved

    def gene_api_env(self, port, extra, redis_port=None):
        """The environment of one more gene-api on the bench's Redis (or the
        one on `redis_port`), on `port`: the caller's, less what would change
        what is measured, and `extra`."""
        env = {k: v for k, v in os.environ.items()
               if k not in ("APP_ENV", "GENE_API__REDIS__KEY_PREFIX", "REDIS_PASSWORD")}
        env.update({
            "REDIS_IP": "127.0.0.1", "REDIS_PORT": str(redis_port or self.a.redis_port),
            "GENE_API__HTTP__HOST": "127.0.0.1", "GENE_API__HTTP__PORT": str(port),
            "GENE_API__DATA__SOURCE": self.a.data, "GENE_API__DATA__WITHDRAWN": "",
            "RUST_LOG": "warn",
            **extra,
        })
        return env

    def start_serve(self, label, extra, redis_port=None, command="serve"):
        """One more `gene-api serve` (or `api`: `command`) on the same Redis
        (or the one on `redis_port`), with the settings of the main one
        (scripts/bench) and `extra`; returns (port, process)."""
        ports = []
        for _ in range(2):
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                ports.append(sock.getsockname()[1])
        # The main server's settings (scripts/bench), then `extra`.
        env = self.gene_api_env(ports[0], {
            "GENE_API__WORKERS__HEALTH_PORT": str(ports[1]),
            "GENE_API__WORKERS__CONCURRENCY": str(self.a.workers),
            "GENE_API__LIMITS__REQUESTS_PER_SECOND": "0", "GENE_API__LIMITS__SUBMISSIONS_PER_SECOND": "0",
            "GENE_API__LIMITS__STREAMS_PER_CLIENT": "0", "GENE_API__LIMITS__MAX_BACKLOG": "0",
            **extra,
        }, redis_port)
        proc = self.spawn([self.a.binary, command], env, f"{command}-{label}.log")
        deadline = time.monotonic() + 20
        while True:
            try:
                if Http(ports[0], timeout=2).request("GET", "/ready")[0] == 200:
                    return ports[0], proc
            except (OSError, BenchError):
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                self.stop_proc(proc)
                raise BenchError(f"the {label} server did not get ready")
            time.sleep(0.1)

    def spawn(self, args, env, log_name):
        """Starts a process whose output goes to `log_name` in the scratch
        directory; it is stopped at the end of the run at the latest."""
        path = os.path.join(self.a.work, log_name)
        with open(path, "wb") as log_file:
            proc = subprocess.Popen(args, env=env, stdout=log_file, stderr=subprocess.STDOUT)
        self.procs[proc] = path
        return proc

    def stop_proc(self, proc):
        """SIGTERM, then SIGKILL after 10 s. Raises if the process logged a
        panic: every figure is also a check."""
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        path = self.procs.pop(proc, None)
        if path and os.path.exists(path):
            with open(path, "rb") as f:
                if b"panicked" in f.read():
                    raise BenchError(f"{os.path.basename(path)}: the process logged a panic")

    def stop_all(self):
        """Stops every process still running; the first error is raised after all stopped."""
        first = None
        for proc in list(self.procs):
            try:
                self.stop_proc(proc)
            except BenchError as e:
                first = first or e
        if first:
            raise first

    def pipeline_run(self, port, pid, label):
        c = self.cfg
        w, h = TRIVIAL_SIZE
        ids_out = os.path.join(self.a.work, "submitted.txt")
        per_thread = c["submit_cap"] // c["wrk_threads"]
        meter = CpuMeter({"gene-api": pid, "redis-server": self.a.redis_pid})
        out = run_tool(
            [
                "wrk", "--latency", "-t", str(c["wrk_threads"]), "-c", str(c["wrk_conns"]),
                "-d", f"{c['submit_secs']}s", "--timeout", "5s",
                "-s", os.path.join(HERE, "submit.lua"), f"http://127.0.0.1:{port}",
            ],
            env={
                "BENCH_PATH": f"/image?kind=locus_group&width={w}&height={h}",
                "BENCH_PER_THREAD": str(per_thread),
                "BENCH_IDS_OUT": ids_out,
            },
            timeout=c["submit_secs"] + 60,
        )
        sub = wrk_json(out)
        with open(ids_out) as f:
            ids = [ln.strip() for ln in f if ln.strip()]
        bad = sub["status_errors"] + sub["connect_errors"] + sub["read_errors"] + sub["write_errors"] + sub["timeout_errors"]
        if not ids or bad:
            raise BenchError(f"wrk POST /image ({label}): {len(ids)} job ids, {bad} errors: {sub}")
        t0 = time.perf_counter()
        http = Http(port)
        # The CPU meter stops once the last job is done, before the records of
        # all the jobs are fetched: that reading is the driver's, not the pipeline's.
        self.wait_job(ids[-1], c["drain_timeout"], pause=0.005, http=http)
        cpu = meter.stop()
        jobs = self.drain(ids, c["drain_timeout"], http=http)
        drain_wait = time.perf_counter() - t0
        first = min(ts(j["created_at"]) for j in jobs)
        last = max(first + 1e-3, max(ts(j["finished_at"]) for j in jobs))
        lat = [ts(j["finished_at"]) - ts(j["created_at"]) for j in jobs]
        run = [ts(j["finished_at"]) - ts(j["started_at"]) for j in jobs]
        created = sorted(ts(j["created_at"]) for j in jobs)
        # wrk's own duration includes its idle wait once every thread has stopped
        # at its cap, so the submit rate comes from the jobs' creation times.
        sub["req_s"] = (len(created) - 1) / max(created[-1] - created[0], 1e-3)
        # Jobs finished after the last submission: what the workers alone manage.
        tail = [ts(j["finished_at"]) for j in jobs if ts(j["finished_at"]) > created[-1]]
        result = {
            "size": f"{w}x{h}",
            "jobs": len(ids),
            "span_s": last - first,
            "jobs_s": len(ids) / (last - first),
            "drain_wait_after_submit_s": drain_wait,
            "latency_p50_s": pct(lat, 50),
            "latency_p99_s": pct(lat, 99),
            "run_p50_s": pct(run, 50),
            "submit": sub,
            "drain_only_jobs_s": len(tail) / max(1e-3, max(tail) - created[-1]) if len(tail) > 10 else None,
            "cpu_us_per_job": cpu_per(cpu, len(ids)),
            "cpu_percent": cpu_percent(cpu),
        }
        log(
            f"pipeline ({label}): {len(ids)} jobs of {w}x{h} in {last - first:.2f} s = {len(ids) / (last - first):.0f} jobs/s; "
            f"submit {sub['req_s']:.0f} req/s; CPU us/job {cpu_per(cpu, len(ids))}; CPU % {cpu_percent(cpu)}"
        )
        return result

    def wrk_turn(self, port, env, what, headers=()):
        """One turn of the paired figures: wrk with `genes.lua` for
        `metrics_secs` against `port`; returns req/s, fails on any error."""
        return self.wrk_run(port, env, what, headers)["req_s"]

    def wrk_run(self, port, env, what, headers=()):
        """wrk's summary of one turn (as wrk_turn), with "req_s" added."""
        c = self.cfg
        header_args = [a for h in headers for a in ("-H", h)]
        out = run_tool(
            ["wrk", "-t", str(c["wrk_threads"]), "-c", str(c["wrk_conns"]), "-d", f"{c['metrics_secs']}s",
             "--timeout", "5s", *header_args, "-s", os.path.join(HERE, "genes.lua"), f"http://127.0.0.1:{port}"],
            env=env,
            timeout=c["metrics_secs"] + 60,
        )
        w = wrk_json(out)
        bad = w["status_errors"] + w["connect_errors"] + w["read_errors"] + w["write_errors"] + w["timeout_errors"]
        if w["requests"] == 0 or bad:
            raise BenchError(f"wrk against {what}: {w['requests']} requests, {bad} errors")
        w["req_s"] = w["requests"] / (w["duration_us"] / 1e6)
        return w

    def side_by_side(self, label, env_on, env_off, headers=(), after=None):
        """Point reads against two `gene-api api` processes on the same Redis,
        alike but for `env_on` / `env_off`, measured by turns (on, off, off,
        on, ...) so that the machine's drift falls on both alike. Returns the
        req/s of each turn, by side."""
        c = self.cfg
        ids_file = os.path.join(self.a.work, "ids.txt")
        procs = {}
        try:
            for name, extra in (("on", env_on), ("off", env_off)):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", 0))
                    port = sock.getsockname()[1]
                # The budgets would cap wrk; each side is measured without them.
                env = self.gene_api_env(port, {"GENE_API__LIMITS__REQUESTS_PER_SECOND": "0", **extra})
                log_file = open(os.path.join(self.a.work, f"api-{label}-{name}.log"), "wb")
                procs[name] = (subprocess.Popen([self.a.binary, "api"], env=env, stdout=log_file,
                                                stderr=subprocess.STDOUT), port)
            for name, (proc, port) in procs.items():
                deadline = time.monotonic() + 20
                while True:
                    try:
                        if Http(port, timeout=2).request("GET", "/ready")[0] == 200:
                            break
                    except (OSError, BenchError):
                        pass
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise BenchError(f"the {label}-{name} api did not get ready")
                    time.sleep(0.1)
            rps = {"on": [], "off": []}
            for i in range(c["metrics_rounds"]):
                for name in (("on", "off") if i % 2 == 0 else ("off", "on")):
                    rps[name].append(self.wrk_turn(procs[name][1], {"BENCH_IDS": ids_file},
                                                   f"the {label}-{name} api", headers))
            ports = {name: port for name, (_, port) in procs.items()}
            if after:
                after(ports)
            return rps, ports
        finally:
            for proc, _ in procs.values():
                proc.terminate()
            for proc, _ in procs.values():
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()

    def metrics_cost(self):
        """Point reads with metrics on against the same with them off."""
        def check(ports):
            # The "on" process really counted them; the "off" one has no /metrics.
            status, _, body = Http(ports["on"]).request("GET", "/metrics")
            if status != 200 or b'route="/genes/{hgnc_id}"' not in body:
                raise BenchError(f"GET /metrics of the metrics-on api: {status}, no /genes/{{hgnc_id}} series")
            if Http(ports["off"]).request("GET", "/metrics")[0] != 404:
                raise BenchError("the metrics-off api answers /metrics")

        rps, _ = self.side_by_side("metrics", {"GENE_API__METRICS__ENABLED": "true"},
                                   {"GENE_API__METRICS__ENABLED": "false"}, after=check)
        self.raw["metrics_cost"] = paired(rps)
        m = self.raw["metrics_cost"]
        log(f"point reads, metrics on {m['on_median']:.0f} req/s, off {m['off_median']:.0f} req/s "
            f"(medians of {len(rps['on'])}); median of the {len(rps['on'])} paired ratios {m['ratio']:.3f}")

    def auth_cost(self):
        """Point reads that each pass the key check (keys on, reads protected,
        a valid key sent) against the same with no keys configured."""
        key, line = subprocess.run([self.a.binary, "keygen", "--name", "bench", "--scope", "write"],
                                   check=True, capture_output=True, text=True).stdout.split("\n")[:2]
        keys_file = os.path.join(self.a.work, "keys")
        with open(keys_file, "w") as f:
            f.write(line + "\n")
        def check(ports):
            # The check was really made: without the key, the "on" side refuses.
            if Http(ports["on"]).request("GET", "/genes")[0] != 401:
                raise BenchError("the keys-on api answers reads without a key")

        rps, _ = self.side_by_side(
            "auth",
            {"GENE_API__AUTH__KEYS_FILE": keys_file, "GENE_API__AUTH__PROTECT_READS": "true"},
            {},
            headers=(f"Authorization: Bearer {key}",),
            after=check,
        )
        self.raw["auth_cost"] = paired(rps)
        a = self.raw["auth_cost"]
        log(f"point reads, key checked {a['on_median']:.0f} req/s, no keys {a['off_median']:.0f} req/s "
            f"(medians of {len(rps['on'])}); median of the paired ratios {a['ratio']:.3f}")

    def finding(self):
        """Issue 13: genes by symbol beside genes by id (paired wrk turns on
        the same server), search latency beside point-read latency, a bulk
        lookup of 10,000 mixed terms beside raw Redis fetching 10,000 records
        in one pipeline, and what the index costs in Redis and in the process."""
        c = self.cfg
        from urllib.parse import quote
        rss_before, rss_after = self.index_rss or self.first_index_read()
        info = self.http.json("GET", "/info", (200,))
        if info["records"] != len(self.docs):
            raise BenchError(f"GET /info says {info['records']} records, the source has {len(self.docs)}")
        index_bytes = int(self.redis.cmd("STRLEN", f"gene-api:release:{info['version']}:index"))
        if index_bytes == 0:
            raise BenchError("the live version has no stored index")

        # Symbol lookups are checked against the source before they are timed.
        rng = random.Random(13)
        sample = rng.sample(self.docs, min(c["check_genes"], len(self.docs)))
        for d in sample:
            got = self.http.json("GET", "/genes/symbol/" + quote(d["symbol"].lower(), safe=""), (200,))
            if got != d:
                raise BenchError(f"GET /genes/symbol/{d['symbol']} differs from the source record")
        paths = {
            "id": os.path.join(self.a.work, "paths-id.txt"),
            "symbol": os.path.join(self.a.work, "paths-symbol.txt"),
        }
        with open(paths["id"], "w") as f:
            f.write("\n".join(f"/genes/{d['hgnc_id']}" for d in self.docs) + "\n")
        with open(paths["symbol"], "w") as f:
            f.write("\n".join("/genes/symbol/" + quote(d["symbol"], safe="") for d in self.docs) + "\n")
        rps = {"symbol": [], "id": []}
        for i in range(c["metrics_rounds"]):
            for name in (("symbol", "id") if i % 2 == 0 else ("id", "symbol")):
                rps[name].append(self.wrk_turn(self.a.http_port, {"BENCH_PATHS": paths[name]},
                                               f"GET /genes/{name}"))
        by_symbol = paired({"on": rps["symbol"], "off": rps["id"]})

        # Latency, one request at a time on one kept-alive connection.
        def latencies(path, check):
            out = []
            for _ in range(c["search_requests"]):
                t0 = time.perf_counter()
                status, _, body = self.http.request("GET", path)
                out.append(time.perf_counter() - t0)
                if status != 200:
                    raise BenchError(f"GET {path} answered {status}")
            check(json.loads(body))
            return {"p50_ms": pct(out, 50) * 1000, "p99_ms": pct(out, 99) * 1000, "n": len(out)}

        def names(d):
            return [n.lower() for f in ("symbol", "alias_symbol", "prev_symbol")
                    for n in ([d[f]] if isinstance(d.get(f), str) else d.get(f) or [])]

        def expect(pred, what):
            want = sum(1 for d in self.docs if pred(d))
            def check(body):
                if body["numFound"] != want:
                    raise BenchError(f"{what}: numFound {body['numFound']}, a scan of the source finds {want}")
            return check

        lat = {
            "prefix": latencies("/search?q=BRCA*", expect(lambda d: any(n.startswith("brca") for n in names(d)), "BRCA*")),
            "infix": latencies("/search?q=*kinase*",
                               expect(lambda d: any("kinase" in n for n in names(d)), "*kinase*")),
            "point": latencies(f"/genes/{self.docs[0]['hgnc_id']}", lambda body: None),
        }

        # 10,000 mixed terms: ids, symbols, aliases, previous symbols, Ensembl, Entrez, UniProt ids.
        pools = [[d["hgnc_id"] for d in self.docs], [d["symbol"] for d in self.docs]]
        for f in ("alias_symbol", "prev_symbol", "uniprot_ids"):
            pools.append([v for d in self.docs for v in d.get(f) or []])
        for f in ("ensembl_gene_id", "entrez_id"):
            pools.append([d[f] for d in self.docs if isinstance(d.get(f), str)])
        pools = [p for p in pools if p]
        terms = [rng.choice(pools[i % len(pools)]) for i in range(10_000)]
        body = json.dumps({"terms": terms}).encode()
        times = []
        for _ in range(c["lookup_runs"]):
            t0 = time.perf_counter()
            status, _, data = self.http.request("POST", "/genes/lookup", body, {"Content-Type": "application/json"})
            times.append(time.perf_counter() - t0)
            if status != 200:
                raise BenchError(f"POST /genes/lookup answered {status}: {data[:200]!r}")
            answers = json.loads(data)
            if len(answers) != len(terms) or any(a["term"] != t for a, t in zip(answers, terms)):
                raise BenchError("POST /genes/lookup did not answer every term in order")
            unresolved = sum(1 for a in answers if a.get("not_found"))
            if unresolved:
                raise BenchError(f"POST /genes/lookup found no gene for {unresolved} terms taken from the source")
        # Reference: raw Redis fetching 10,000 records in one pipeline (HGET each),
        # from the hash that holds them by their digests (issue 21).
        digests = self.redis.cmd("GET", f"gene-api:release:{info['version']}:digests")
        ids = json.loads(self.redis.cmd("GET", f"gene-api:release:{info['version']}:ids"))
        by_id = {i: digests[16 * n:16 * n + 16] for n, i in enumerate(ids)}
        if len(digests) != 16 * len(ids) or self.redis.cmd("HGET", "gene-api:records", by_id[ids[0]]) is None:
            raise BenchError("the live release's records are not where the lookup reference reads them")
        ids = [rng.choice(self.docs)["hgnc_id"] for _ in range(10_000)]
        payload = b"".join(resp_encode("HGET", "gene-api:records", by_id[i]) for i in ids)
        ref = []
        for _ in range(c["lookup_runs"]):
            t0 = time.perf_counter()
            self.redis.pipeline(payload, len(ids))
            ref.append(time.perf_counter() - t0)

        self.raw["finding"] = {
            "symbol_vs_id": by_symbol,
            "latency": lat,
            "lookup_s": times,
            "lookup_reference_s": ref,
            "lookup_terms": len(terms),
            "index_bytes": index_bytes,
            "api_rss_kb_before_index": rss_before,
            "api_rss_kb_after_index": rss_after,
        }
        log(f"GET /genes/symbol {by_symbol['on_median']:.0f} req/s vs /genes/<id> {by_symbol['off_median']:.0f} "
            f"(ratio {by_symbol['ratio']:.3f}); search p99 BRCA* {lat['prefix']['p99_ms']:.2f} ms, "
            f"*kinase* {lat['infix']['p99_ms']:.2f} ms; lookup of 10,000 terms "
            f"{statistics.median(times) * 1000:.0f} ms; index {index_bytes / 1e6:.1f} MB")

    def sse_fanout(self):
        """Many idle GET /events clients on one api process: its RSS growth, and
        how long a state change takes to reach the clients (from the event's
        stream id, stamped by Redis when the change is written, to the line
        arriving at the client), beside the same with one client."""
        c = self.cfg
        n, jobs = c["sse_clients"], c["sse_jobs"]
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < n + 256:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, n + 1024), hard))
        port = self.a.http_port
        path = f"/image?kind=locus_group&width={TRIVIAL_SIZE[0]}&height={TRIVIAL_SIZE[1]}"

        async def client(lat, done_count, ready):
            r, w = await asyncio.open_connection("127.0.0.1", port)
            w.write(b"GET /events?kind=plot HTTP/1.1\r\nHost: bench\r\nAccept: text/event-stream\r\n\r\n")
            await w.drain()
            head = await r.readuntil(b"\r\n\r\n")
            if b" 200 " not in head.split(b"\r\n", 1)[0]:
                raise BenchError(f"GET /events answered {head[:80]!r}")
            ready.set_result(True) if not ready.done() else None
            seen, done = 0, False
            try:
                # An event is `event:`, `data:` and `id:` lines; the count of
                # finished jobs moves when a `done` event's id has arrived.
                while seen < jobs:
                    line = await r.readline()
                    if not line:
                        raise BenchError("an /events stream ended early")
                    if line.startswith(b"id:"):
                        ms = int(line[3:].strip().split(b"-")[0])
                        lat.append(time.time() * 1000 - ms)
                        seen += done
                        done = False
                    elif line.startswith(b"event:"):
                        done = line[6:].strip() == b"done"
            finally:
                w.close()
            done_count.append(1)

        async def submit_paced():
            loop = asyncio.get_running_loop()
            h = Http(port)
            for _ in range(jobs):
                await loop.run_in_executor(None, lambda: h.json("POST", path, (202,), body=b""))
                await asyncio.sleep(0.1)
            h.close()

        async def run(clients):
            lat, done_count = [], []
            loop = asyncio.get_running_loop()
            readies = [loop.create_future() for _ in range(clients)]
            tasks = [asyncio.create_task(client(lat, done_count, f)) for f in readies]
            await asyncio.wait_for(asyncio.gather(*readies), 60)
            await asyncio.sleep(0.5)
            rss = proc_status_kb(self.a.api_pid, "VmRSS")
            await submit_paced()
            await asyncio.wait_for(asyncio.gather(*tasks), c["drain_timeout"])
            return lat, rss

        rss0 = proc_status_kb(self.a.api_pid, "VmRSS")
        one, _ = asyncio.run(run(1))
        rss_before = proc_status_kb(self.a.api_pid, "VmRSS")
        many, rss_connected = asyncio.run(run(n))
        if len(many) < n * jobs * 3 or len(one) < jobs * 3:
            raise BenchError(f"SSE: {len(one)} / {len(many)} events delivered, expected {jobs * 3} / {n * jobs * 3}")
        self.raw["sse"] = {
            "clients": n,
            "jobs": jobs,
            "events_delivered": len(many),
            "api_rss_kb_before": rss_before,
            "api_rss_kb_connected": rss_connected,
            "api_rss_growth_kb": rss_connected - rss_before,
            "latency_ms_p50": pct(many, 50),
            "latency_ms_p99": pct(many, 99),
            "one_client_latency_ms_p50": pct(one, 50),
            "one_client_latency_ms_p99": pct(one, 99),
            "api_rss_kb_first": rss0,
        }
        log(
            f"SSE: {n} clients, {len(many)} events; RSS +{(rss_connected - rss_before) / 1024:.1f} MiB; "
            f"latency p50 {pct(many, 50):.1f} ms p99 {pct(many, 99):.1f} ms "
            f"(1 client: p50 {pct(one, 50):.1f} p99 {pct(one, 99):.1f})"
        )

    def footprint_end(self):
        self.alive()
        self.raw["end"] = {
            "api_rss_kb": proc_status_kb(self.a.api_pid, "VmRSS"),
            "redis_used_memory": int(self.redis.info("memory")["used_memory"]),
        }

    # -- the table ---------------------------------------------------------

    def build_table(self):
        r, R = self.raw, self.row
        ms = lambda s: s * 1000  # noqa: E731
        mb = lambda b: b / 1e6  # noqa: E731
        n, src = r["source"]["records"], r["source"]["bytes"]

        load = statistics.median(r["load"]["client_s"])
        ref = statistics.median(r["load_reference"]["s"])
        R("1 load: POST /data -> done (median)", ms(load), "ms", ms(ref), "raw Redis pipelined HSET+SET of the same records",
          load / ref, "<= 300 ms", load <= 0.3)
        R("1 load throughput", n / load, "records/s", n / ref, "raw Redis", (n / load) / (n / ref))
        R("1 load throughput", mb(src) / load, "MB/s", mb(src) / ref, "raw Redis", ref / load)

        p = r["point_reads"]
        g = r["redis_get"]
        R(f"2 point reads GET /genes/<id> (wrk -c{self.cfg['wrk_conns']})", p["req_s"], "req/s", g["req_s"],
          f"redis-benchmark -t get -c{self.cfg['wrk_conns']}", p["req_s"] / g["req_s"], ">= 0.40 x ref",
          p["req_s"] / g["req_s"] >= 0.40)
        R("2 point reads p99 latency", p["p99_us"] / 1000, "ms", g["p99_ms"], "redis-benchmark GET p99",
          (p["p99_us"] / 1000) / g["p99_ms"] if g["p99_ms"] else None, "<= 5 ms", p["p99_us"] <= 5000)

        b = r["bulk_read"]
        bt = statistics.median(b["s"])
        bref = statistics.median(r["bulk_reference"]["s"])
        R("3 bulk read GET /data (median)", ms(bt), "ms", ms(bref), "raw Redis GET of the same bytes", bt / bref,
          "<= 300 ms", bt <= 0.3)
        grow = max(b["rss_growth_bytes"])
        R("3 bulk read peak RSS growth (worst run)", grow / 2**20, "MiB", b["bytes"] / 2**20, "response size",
          grow / b["bytes"], "< response size", grow < b["bytes"])

        for kind, k in r["plots"].items():
            R(f"4 plot {kind} {DEFAULT_SIZE[0]}x{DEFAULT_SIZE[1]} submit->done p50", ms(pct(k["client_s"], 50)), "ms",
              ms(pct(k["run_s"], 50)), "its render (started->finished) p50",
              pct(k["client_s"], 50) / pct(k["run_s"], 50) if pct(k["run_s"], 50) > 0 else None,
              "<= 50 ms", pct(k["client_s"], 50) <= 0.05)
            R(f"4 plot {kind} submit->done p99", ms(pct(k["client_s"], 99)), "ms",
              ms(pct(k["run_s"], 99)), "render p99",
              pct(k["client_s"], 99) / pct(k["run_s"], 99) if pct(k["run_s"], 99) > 0 else None)
        s = r["plots_sustained"]
        all_runs = [x for k in r["plots"].values() for x in k["run_s"]]
        # Renders are CPU-bound: more workers than cores cannot render faster.
        busy = min(s["workers"], os.cpu_count() or 1)
        ideal = busy / statistics.mean(all_runs) if statistics.mean(all_runs) > 0 else None
        R(f"4 plots sustained ({s['jobs']} jobs, {s['workers']} workers)", s["jobs_s"], "jobs/s", ideal,
          f"{busy} / mean render time of one plot alone", s["jobs_s"] / ideal if ideal else None)

        pl, nc = r["pipeline"], r["pipeline_nocache"]
        R(f"5 pipeline e2e, plot {pl['size']} ({pl['jobs']} jobs, median of {len(pl['turns_jobs_s'])} turns)",
          pl["jobs_s"], "jobs/s", pl["submit"]["req_s"],
          "HTTP submit rate, same run", pl["jobs_s"] / pl["submit"]["req_s"], ">= 5000 jobs/s", pl["jobs_s"] >= 5000)
        R("5 HTTP submit rate POST /image (wrk)", pl["submit"]["req_s"], "req/s", p["req_s"],
          "GET /genes/<id> req/s (figure 2)", pl["submit"]["req_s"] / p["req_s"])
        R(f"5 pipeline e2e, render cache off: every job draws ({nc['jobs']} jobs)", nc["jobs_s"], "jobs/s",
          pl["jobs_s"], "the same with the cache on (row above)", nc["jobs_s"] / pl["jobs_s"])

        idle = r["idle"]
        R("6 gene-api RSS idle (fresh start)", idle["api_rss_kb"] / 1024, "MiB", idle["redis_rss_kb"] / 1024,
          "redis-server RSS idle", idle["api_rss_kb"] / idle["redis_rss_kb"], "<= 20 MB",
          idle["api_rss_kb"] * 1024 <= 20e6)
        R("6 gene-api RSS after one load", r["after_load"]["api_rss_kb"] / 1024, "MiB", src / 2**20,
          "source file size", r["after_load"]["api_rss_kb"] * 1024 / src)
        R(f"6 gene-api RSS after {len(r['load']['client_s'])} loads", r["after_loads"]["api_rss_kb"] / 1024, "MiB",
          src / 2**20, "source file size", r["after_loads"]["api_rss_kb"] * 1024 / src)
        used = r["after_load"]["redis_used_memory"] - idle["redis_used_memory"]
        R("6 Redis used_memory growth for the loaded set", used / 2**20, "MiB", src / 2**20, "source file size",
          used / src)
        R("6 release binary size", r["binary_bytes"] / 2**20, "MiB", None, "", None)

        e = r["sse"]
        R(f"7 SSE {e['clients']} idle /events clients: api RSS growth", e["api_rss_growth_kb"] / 1024, "MiB",
          e["api_rss_kb_before"] / 1024, "api RSS before they connected", e["api_rss_growth_kb"] / e["api_rss_kb_before"])
        R(f"7 SSE delivery latency p50 ({e['clients']} clients)", e["latency_ms_p50"], "ms",
          e["one_client_latency_ms_p50"], "the same with 1 client", e["latency_ms_p50"] / max(e["one_client_latency_ms_p50"], 0.01))
        R(f"7 SSE delivery latency p99 ({e['clients']} clients)", e["latency_ms_p99"], "ms",
          e["one_client_latency_ms_p99"], "the same with 1 client", e["latency_ms_p99"] / max(e["one_client_latency_ms_p99"], 0.01))

        m = r["metrics_cost"]
        R(f"8 point reads with metrics on (median of {len(m['on_req_s'])} paired turns)", m["on_median"], "req/s",
          m["off_median"], "the same, metrics off (GENE_API__METRICS__ENABLED=false)", m["ratio"],
          ">= 0.95 x ref", m["ratio"] >= 0.95)
        a = r["auth_cost"]
        R(f"9 point reads, each key checked (median of {len(a['on_req_s'])} paired turns)", a["on_median"], "req/s",
          a["off_median"], "the same, no keys configured", a["ratio"])

        f = r["finding"]
        s = f["symbol_vs_id"]
        R(f"10 GET /genes/symbol/<s> (wrk -c{self.cfg['wrk_conns']}, median of {len(s['on_req_s'])} paired turns)",
          s["on_median"], "req/s", s["off_median"], "GET /genes/<id>, same server, alternating turns", s["ratio"],
          ">= 0.90 x ref", s["ratio"] >= 0.90)
        lat = f["latency"]
        for key, q, target in (("prefix", "BRCA*", 5.0), ("infix", "*kinase*", None)):
            for p in ("p50", "p99"):
                ok = (lat[key][f"{p}_ms"] <= target) if (target and p == "p99") else None
                R(f"10 GET /search?q={q} {p} (one at a time)", lat[key][f"{p}_ms"], "ms", lat["point"][f"{p}_ms"],
                  f"GET /genes/<id> {p}, one at a time", lat[key][f"{p}_ms"] / lat["point"][f"{p}_ms"],
                  "<= 5 ms" if ok is not None else "", ok)
        lk, lref = statistics.median(f["lookup_s"]), statistics.median(f["lookup_reference_s"])
        R(f"10 POST /genes/lookup, {f['lookup_terms']:,} mixed terms (median)", ms(lk), "ms", ms(lref),
          "raw Redis: 10,000 HGET of records, one pipeline", lk / lref, "<= 100 ms", lk <= 0.1)
        R("10 load with indexes: POST /data -> done (median)", ms(load), "ms", ms(ref),
          "raw Redis pipelined HSET+SET of the same records", load / ref, "<= 400 ms", load <= 0.4)
        R("10 Redis memory for records + indexes", used / 2**20, "MiB", src / 2**20, "source file size", used / src)
        R("10 of which the stored index", f["index_bytes"] / 2**20, "MiB", src / 2**20, "source file size",
          f["index_bytes"] / src)
        grow = (f["api_rss_kb_after_index"] - f["api_rss_kb_before_index"]) / 1024
        R("10 api RSS growth when it reads the index", grow, "MiB", src / 2**20, "source file size", grow * 2**20 / src)

        self.release_rows()
        self.failover_rows()
        self.scale_rows()

    def print_rows(self):
        """The table of self.rows, in Markdown."""
        def fmt(v):
            if v is None:
                return "-"
            if isinstance(v, float) and math.isnan(v):
                return "n/a"
            a = abs(v)
            if a >= 1000:
                return f"{v:,.0f}"
            if a >= 100:
                return f"{v:.0f}"
            if a >= 10:
                return f"{v:.1f}"
            return f"{v:.2f}"

        head = ["figure", "value", "reference (same run)", "ratio", "target", "result"]
        lines = []
        for r in self.rows:
            ref = "-" if r["reference"] is None else f"{fmt(r['reference'])} {r['unit']} ({r['reference_label']})"
            verdict = "" if r["pass"] is None else ("pass" if r["pass"] else "MISS")
            lines.append([r["figure"], f"{fmt(r['value'])} {r['unit']}", ref,
                          "-" if r["ratio"] is None else f"{r['ratio']:.2f}", r["target"] or "", verdict])
        print("| " + " | ".join(head) + " |")
        print("|" + "|".join("---" for _ in head) + "|")
        for ln in lines:
            print("| " + " | ".join(ln) + " |")

    def print_machine(self):
        m = self.raw["machine"]
        src = self.raw["source"]
        print(f"ratio = value / reference. Data: {src['path']} ({src['records']:,} records, {src['bytes']:,} bytes); "
              f"machine: {m['nproc']} x {m['cpu']}, {m['memory_gib']} GiB, kernel {m['kernel']}, Redis {m['redis_version']}; "
              f"gene-api {m['gene_api_commit'] or '(no git)'}.")

    def print_table(self):
        self.print_rows()
        print()
        self.print_machine()
        pr, rg, pl = self.raw["point_reads"], self.raw["redis_get"], self.raw["pipeline"]
        print(f"CPU during GET /genes/<id> (% of one core, 200 = both): {fmt_dict(pr['cpu_percent'])}; "
              f"CPU us per request: {fmt_dict(pr['cpu_us_per_request'])}.")
        print(f"CPU during redis-benchmark GET: {fmt_dict(rg['cpu_percent'])}; "
              f"CPU us per request: {fmt_dict(rg['cpu_us_per_request'])}.")
        drain = pl["drain_only_jobs_s"]
        nc = self.raw["pipeline_nocache"]
        print(f"Pipeline, render cache off: CPU us per job {fmt_dict(nc['cpu_us_per_job'])}; "
              f"submit {nc['submit']['req_s']:.0f} req/s; job latency p50 {nc['latency_p50_s'] * 1000:.0f} ms.")
        print(f"Pipeline: CPU us per job {fmt_dict(pl['cpu_us_per_job'])}; job latency p50 "
              f"{pl['latency_p50_s'] * 1000:.0f} ms, p99 {pl['latency_p99_s'] * 1000:.0f} ms (queueing included); "
              f"run p50 {pl['run_p50_s'] * 1000:.0f} ms; workers alone after the last submission: "
              + (f"{drain:.0f} jobs/s." if drain else "too few jobs left to tell."))
        ps = self.raw["plots_sustained"]
        print(f"Plots sustained: CPU {fmt_dict(ps['cpu_percent'])} (% of one core); mean render "
              f"{ps['mean_run_s'] * 1000:.1f} ms with all workers busy.")
        print("Job timestamps have 1 ms resolution; client-side times poll GET /jobs/<id> every 1-2 ms; "
              f"p99 of {self.cfg['plot_jobs']} plots is the slowest of them.")
        noisy = [(name, d["cpu_percent"]["other"]) for name, d in
                 (("point reads", pr), ("redis-benchmark", rg), ("plots sustained", ps), ("pipeline", pl))
                 if d["cpu_percent"]["other"] > 15]
        if noisy:
            print("WARNING: other processes on this machine used CPU during the run ("
                  + ", ".join(f"{n}: {v:g}% of a core" for n, v in noisy) + "): the numbers are noisy.")
        print(f"Before measuring, other processes used {self.raw['busy_before_percent']:g}% of a core.")
        loads = self.raw["load"]
        print(f"Load, server side (job created_at -> finished_at) median: {statistics.median(loads['server_s']) * 1000:.0f} ms. "
              f"First plot of each kind (not in the percentiles): "
              + ", ".join(f"{k} {v['cold_s'] * 1000:.0f} ms" for k, v in self.raw["plots"].items()) + ".")
        self.print_release_notes()
        self.scale_notes()

    def run(self):
        steps = [
            ("machine", self.machine),
            ("waiting for a quiet machine", self.wait_quiet),
            ("footprint (idle)", self.footprint_idle),
            ("reading the source", self.read_source),
            ("1 load", self.load),
            ("checking reads against the source", self.check_reads),
            ("1/3 raw Redis references", self.load_reference),
            ("2 point reads", self.point_reads),
            ("3 bulk read", self.bulk_read),
            ("the cache-off server (figures 4 and 5)", self.start_nocache),
            ("4 plots", self.plots),
            ("5 job pipeline", self.pipeline),
            ("7 SSE fan-out", self.sse_fanout),
            ("8 metrics cost", self.metrics_cost),
            ("9 key check cost", self.auth_cost),
            ("10 finding genes", self.finding),
            ("11 full diff of two releases", self.release_diff),
            ("12 load with a withdrawn file", self.release_withdrawn_load),
            ("13 Redis memory of kept releases", self.release_memory),
            ("14 api RSS with 3 kept releases", self.release_rss),
            ("15 reads with ?release=", self.release_reads),
            ("16 failover time", self.failover_time),
            ("17 MIN_REPLICAS cost", self.min_replicas_cost),
            ("18 10,000 connections", self.many_connections),
            ("19 10,000 SSE clients", self.sse_scale),
            ("20 point reads from memory", self.memory_reads),
            ("21 reads with GENE_API__CACHE__RECORDS=false", self.cache_records_cost),
            ("22 load of 1x, 2x, 4x the data set", self.load_scaling),
            ("23 traces cost", self.traces_cost),
            ("6 footprint (end)", self.footprint_end),
        ]
        if self.a.only:
            # A development run: the set-up steps and the named figures only;
            # the table has the rows of figures 11-23 that ran (figures 1-10
            # need each other's numbers); the raw numbers still go to --json.
            wanted = {w.strip() for w in self.a.only.split(",") if w.strip()}
            setup = {"machine", "reading the source", "1 load", "checking reads against the source", "the cache-off server (figures 4 and 5)"}
            known = {name.split(" ")[0] for name, _ in steps}
            unknown = wanted - known
            if unknown:
                raise BenchError(f"--only: no figure {sorted(unknown)}; figures: {sorted(known - {'machine', 'waiting', 'footprint', 'reading', 'checking'})}")
            steps = [(n, f) for n, f in steps if n in setup or n.split(" ")[0] in wanted]
        try:
            for name, fn in steps:
                print(f"--> {name}", file=sys.stderr, flush=True)
                try:
                    fn()
                except BenchError as e:
                    raise BenchError(f"step '{name}': {e}") from None
                except (OSError, ValueError, KeyError, TypeError) as e:
                    raise BenchError(f"step '{name}': {type(e).__name__}: {e}") from e
        finally:
            try:
                self.stop_nocache()
            finally:
                self.stop_all()
        if self.a.only:
            self.release_rows()
            self.failover_rows()
            self.scale_rows()
            self.raw["table"] = self.rows
            if self.rows:
                print()
                self.print_rows()
                self.print_release_notes()
                self.scale_notes()
            if self.a.json:
                with open(self.a.json, "w") as f:
                    json.dump(self.raw, f, indent=1)
            return
        self.build_table()
        self.raw["table"] = self.rows
        print()
        self.print_table()
        if self.a.json:
            with open(self.a.json, "w") as f:
                json.dump(self.raw, f, indent=1)
            print(f"\nraw numbers written to {self.a.json}")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--http-port", type=int, required=True)
    p.add_argument("--redis-port", type=int, required=True)
    p.add_argument("--api-pid", type=int, required=True)
    p.add_argument("--redis-pid", type=int, required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--binary", required=True)
    p.add_argument("--work", required=True)
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--releases", required=True,
                   help="directory of two releases: hgnc_complete_set_<date>.json and withdrawn_<date>.txt each")
    p.add_argument("--bare-binary", help="examples/bare_reference built in release mode (figure 20)")
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--json")
    p.add_argument("--only", help="comma-separated figure numbers (e.g. 5,7): those figures only; "
                                     "the table has the rows of figures 11-23 that ran")
    a = p.parse_args()
    try:
        Bench(a).run()
    except BenchError as e:
        print(f"bench: FAILED: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
