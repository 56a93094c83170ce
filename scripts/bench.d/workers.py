#!/usr/bin/env python3
"""The measuring side of scripts/bench-workers (Python 3 standard library
only): plot-job throughput with 1 and 2 `gene-api worker` processes, and the
time from `kill -9` of a busy worker to its reclaimed jobs finishing.

Starts its own redis-server and gene-api processes (the release binary
scripts/bench-workers built) on free loopback ports, and stops them and
removes their scratch directory at the end. Usage:
    workers.py --binary PATH [--smoke] [--jobs N] [--size PX] DATA_FILE
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
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = None  # set by main() from --binary


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def http(method, url, headers=None):
    req = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def wait_ready(port):
    for _ in range(400):
        try:
            if http("GET", f"http://127.0.0.1:{port}/ready")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.05)
    sys.exit(f"gene-api on :{port} never became ready")


def ts(s):
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


class Stack:
    def __init__(self, data):
        self.procs = []
        self.dir = tempfile.mkdtemp(prefix="gene-api-bench-")
        self.redis_port = free_port()
        self.redis = subprocess.Popen(
            ["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", self.dir],
            stdout=subprocess.DEVNULL)
        # As scripts/bench: the caller's APP_ENV, key prefix or password would
        # change what is measured (and where the job records are read), and one
        # load generator is one client, so the per-client limits (request and
        # submission budgets, event streams) and the backlog ceiling are off,
        # or they would be what is measured.
        env = {k: v for k, v in os.environ.items()
               if k not in ("APP_ENV", "GENE_API__REDIS__KEY_PREFIX", "REDIS_PASSWORD")}
        self.env = dict(env, REDIS_IP="127.0.0.1", REDIS_PORT=str(self.redis_port),
                        RUST_LOG="warn", GENE_API__DATA__SOURCE=data,
                        GENE_API__DATA__WITHDRAWN="",
                        GENE_API__HTTP__HOST="127.0.0.1",
                        GENE_API__WORKERS__HEALTH_HOST="127.0.0.1",
                        GENE_API__PIPELINE__RECLAIM_AFTER_MS="1000",
                        GENE_API__PIPELINE__RECLAIM_INTERVAL_MS="200",
                        GENE_API__LIMITS__REQUESTS_PER_SECOND="0",
                        GENE_API__LIMITS__SUBMISSIONS_PER_SECOND="0",
                        GENE_API__LIMITS__STREAMS_PER_CLIENT="0",
                        GENE_API__LIMITS__MAX_BACKLOG="0")
        for _ in range(200):
            if self.redis_cmd("PING").strip() == "PONG":
                break
            if self.redis.poll() is not None:
                sys.exit("redis-server exited during start-up")
            time.sleep(0.05)
        else:
            sys.exit("redis-server did not answer PING in 10 s")

    def start(self, mode):
        port = free_port()
        env = dict(self.env, GENE_API__HTTP__PORT=str(port),
                   GENE_API__WORKERS__HEALTH_PORT=str(port))
        p = subprocess.Popen([BIN, mode], env=env)
        self.procs.append(p)
        wait_ready(port)
        return p, port

    def redis_cmd(self, *args):
        return subprocess.run(["redis-cli", "-p", str(self.redis_port), *args],
                              capture_output=True, text=True).stdout

    def close(self):
        for p in self.procs:
            p.kill()
            p.wait()
        self.redis.kill()
        self.redis.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def submit(api_port, n, size):
    kinds = ["locus_group", "chromosome", "approval_year"]
    def one(i):
        # A width of its own for each job, so that every job draws its chart:
        # this script measures rendering across worker processes, and a
        # worker's render cache would copy repeated charts.
        width = size + i % max(1, 4001 - size)
        st, body = http("POST", f"http://127.0.0.1:{api_port}/image?kind={kinds[i % 3]}&width={width}&height={size}")
        assert st == 202, (st, body)
        return json.loads(body)["id"]
    with ThreadPoolExecutor(16) as ex:
        return list(ex.map(one, range(n)))


def wait_done(stack, ids, limit=300):
    t0 = time.time()
    while True:
        raw = stack.redis_cmd("--raw", "MGET", *[f"gene-api:job:{i}" for i in ids]).splitlines()
        jobs = [json.loads(r) for r in raw if r.startswith("{")]
        if len(jobs) == len(ids) and all(j["status"] in ("done", "failed") for j in jobs):
            return jobs
        if time.time() - t0 > limit:
            sys.exit("jobs did not finish in time")
        time.sleep(0.02)


def throughput(data, workers, n, size):
    stack = Stack(data)
    try:
        _, api = stack.start("api")
        for _ in range(workers):
            stack.start("worker")
        st, _ = http("POST", f"http://127.0.0.1:{api}/data", {"Prefer": "wait=60"})
        assert st == 200, st
        # Rate = jobs / (first start .. last finish), from the job records.
        ids = submit(api, n, size)
        jobs = wait_done(stack, ids)
        assert all(j["status"] == "done" for j in jobs)
        first = min(ts(j["started_at"]) for j in jobs)
        last = max(ts(j["finished_at"]) for j in jobs)
        return n / max(last - first, 1e-3)  # timestamps have 1 ms resolution
    finally:
        stack.close()


def kill_recovery(data, n, size, wait_busy):
    stack = Stack(data)
    try:
        _, api = stack.start("api")
        stack.start("worker")
        victim, _ = stack.start("worker")
        st, _ = http("POST", f"http://127.0.0.1:{api}/data", {"Prefer": "wait=60"})
        assert st == 200, st
        ids = submit(api, n, size)
        tag = f"-{victim.pid}-worker-"
        # Until the victim holds a job (each check is a redis-cli run); past
        # the deadline the jobs are likely all done, and it is killed anyway.
        deadline = time.monotonic() + wait_busy
        while time.monotonic() < deadline:
            out = stack.redis_cmd("XPENDING", "gene-api:jobs:stream", "gene-api:workers")
            lines = out.splitlines()
            busy = any(tag in l for l in lines[3:][::2]) if len(lines) > 3 else False
            if busy:
                break
            time.sleep(0.001)
        victim.send_signal(signal.SIGKILL)
        killed = time.time()
        jobs = wait_done(stack, ids)
        again = [j for j in jobs if j["attempts"] >= 2]
        assert all(j["status"] == "done" for j in jobs)
        if not again:
            return None, 0
        return max(ts(j["finished_at"]) for j in again) - killed, len(again)
    finally:
        stack.close()


def main():
    global BIN
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("--binary", required=True)
    ap.add_argument("--smoke", action="store_true",
                    help="the same code path with tiny counts (20 jobs of 200x200): fails on any error")
    ap.add_argument("--jobs", type=int)
    ap.add_argument("--size", type=int)
    a = ap.parse_args()
    BIN = a.binary
    a.jobs = a.jobs or (20 if a.smoke else 600)
    a.size = a.size or (200 if a.smoke else 1000)
    data = a.data
    print(f"data: {os.path.relpath(data, ROOT)}; {a.jobs} plot jobs of {a.size}x{a.size}; "
          f"worker concurrency {os.environ.get('GENE_API__WORKERS__CONCURRENCY', '4')} per process; {os.cpu_count()} cores")
    one = throughput(data, 1, a.jobs, a.size)
    two = throughput(data, 2, a.jobs, a.size)
    print(f"| worker processes | plot jobs/s |\n|---|---|\n| 1 | {one:.0f} |\n| 2 | {two:.0f} ({two / one:.2f}x) |")
    took, count = kill_recovery(data, a.jobs, a.size, 2 if a.smoke else 20)
    if took is None:
        print("kill -9: the victim held no job at the moment it died (nothing to reclaim)")
    else:
        print(f"kill -9 of a busy worker -> its {count} reclaimed job(s) done after {took * 1000:.0f} ms "
              f"(reclaim_after 1000 ms, reclaim interval 200 ms)")


if __name__ == "__main__":
    main()
