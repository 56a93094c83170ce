"""Figures 16-17 of scripts/bench: losing the Redis primary (issue 22).

Each runs on a Redis set of its own: a primary and two replicas of
redis-server (every node with `min-replicas-to-write 1`, as the shipped HA
configuration has) and three sentinels (quorum 2, down after 1 s), all on
loopback, with gene-api pointed at the sentinels.

- 16: `kill -9` of the primary while a client submits a plot every 20 ms:
  seconds from the kill to the first 202 again, and to `/ready` on every
  gene-api process (a `serve` and an `api`); median of 3 kills, each on a
  fresh set. The reference is the sentinels' own part: the kill to the
  moment they name the new primary.
- 17: what `GENE_API__REDIS__MIN_REPLICAS=1` costs a submission: wrk
  POSTing plots to an `api` process with it, beside one without it on the same
  Redis set, by alternating turns.
"""

import os
import signal
import socket
import statistics
import threading
import time

from benchlib import BenchError, Http, Redis, log, run_tool, wrk_json

MASTER = "gene-api"
HERE = os.path.dirname(os.path.abspath(__file__))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisSet:
    """A primary, two replicas and three sentinels, started by `spawn`
    (the driver's, so that they are stopped with everything else)."""

    def __init__(self, bench, label):
        self.bench = bench
        self.dir = os.path.join(bench.a.work, f"ha-{label}")
        os.makedirs(self.dir, exist_ok=True)
        self.nodes = []  # (port, process), the primary first
        self.sentinels = []
        for i in range(3):
            port = free_port()
            d = os.path.join(self.dir, f"node{i}")
            os.makedirs(d, exist_ok=True)
            args = ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
                    "--dir", d, "--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0",
                    "--min-replicas-to-write", "1", "--min-replicas-max-lag", "5"]
            if self.nodes:
                args += ["--replicaof", "127.0.0.1", str(self.nodes[0][0])]
            proc = bench.spawn(args, dict(os.environ), f"ha-{label}-node{i}.log")
            self.nodes.append((port, proc))
            self.wait(f"node {i} answers", 10, lambda p=port: self.cmd(p, "PING") == "PONG")
        for port, _ in self.nodes[1:]:
            self.wait("a replica in sync", 20,
                      lambda p=port: "master_link_status:up" in (self.cmd(p, "INFO", "replication") or ""))
        for i in range(3):
            port = free_port()
            conf = os.path.join(self.dir, f"sentinel{i}.conf")
            with open(conf, "w") as f:
                f.write(f"port {port}\nbind 127.0.0.1\ndir {self.dir}\n"
                        f"sentinel monitor {MASTER} 127.0.0.1 {self.nodes[0][0]} 2\n"
                        f"sentinel down-after-milliseconds {MASTER} 1000\n"
                        f"sentinel failover-timeout {MASTER} 5000\n")
            proc = bench.spawn(["redis-server", conf, "--sentinel"], dict(os.environ), f"ha-{label}-sentinel{i}.log")
            self.sentinels.append((port, proc))
        for port, _ in self.sentinels:
            def knows(p=port):
                m = self.cmd(p, "SENTINEL", "MASTER", MASTER)
                if not isinstance(m, list):
                    return False
                d = dict(zip(m[::2], m[1::2]))
                return d.get("num-slaves") == "2" and d.get("num-other-sentinels") == "2"
            self.wait("the sentinels know each other", 30, knows)

    @staticmethod
    def cmd(port, *args):
        """One command's reply, bulk strings decoded; None when it fails."""
        def text(v):
            if isinstance(v, bytes):
                return v.decode()
            if isinstance(v, list):
                return [text(x) for x in v]
            return v
        try:
            r = Redis(port, timeout=1)
            try:
                return text(r.cmd(*args))
            finally:
                r.close()
        except (OSError, BenchError):
            return None

    @staticmethod
    def wait(what, secs, ok):
        deadline = time.monotonic() + secs
        while not ok():
            if time.monotonic() > deadline:
                raise BenchError(f"HA set: {what}: not within {secs} s")
            time.sleep(0.02)

    def env(self, min_replicas):
        return {
            "REDIS_IP": "", "REDIS_PORT": "",
            "REDIS_SENTINELS": ",".join(f"127.0.0.1:{p}" for p, _ in self.sentinels),
            "REDIS_SENTINEL_MASTER": MASTER,
            "GENE_API__REDIS__MIN_REPLICAS": str(min_replicas),
        }

    def primary(self):
        for port, _ in self.sentinels:
            r = self.cmd(port, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER)
            if isinstance(r, list) and len(r) == 2:
                return int(r[1])
        return None

    def stop(self):
        for _, proc in self.sentinels + self.nodes:
            self.bench.stop_proc(proc)


class FailoverFigures:
    """Figures 16-17, mixed into driver.Bench (cfg, a, raw, row, spawn,
    stop_proc, start_serve, wait_job)."""

    def start_on_set(self, s, label, min_replicas, command):
        env = s.env(min_replicas)
        # start_serve sets REDIS_IP/REDIS_PORT of the bench's own Redis: the
        # sentinel settings replace them (an empty REDIS_IP counts as unset).
        return self.start_serve(label, env, command=command)

    def failover_once(self, turn):
        s = RedisSet(self, f"kill{turn}")
        try:
            port, serve = self.start_on_set(s, f"kill{turn}-serve", 1, "serve")
            api_port, api = self.start_on_set(s, f"kill{turn}-api", 1, "api")
            http = Http(port)
            job = http.json("POST", "/data", (202,), body=b"")
            job, _ = self.wait_job(job["id"], 60, pause=0.01, http=http)
            if job["status"] != "done":
                raise BenchError(f"failover: the load failed: {job.get('error')}")
            answers = []
            stop = threading.Event()

            def submit():
                client = Http(api_port, timeout=15)
                i = 0
                while not stop.is_set():
                    sent = time.monotonic()
                    try:
                        status = client.request("POST", f"/image?kind=locus_group&width={300 + i % 400}")[0]
                    except (OSError, BenchError):
                        client = Http(api_port, timeout=15)
                        status = 0
                    answers.append((sent, status))
                    i += 1
                    time.sleep(0.02)

            t = threading.Thread(target=submit, daemon=True)
            t.start()
            time.sleep(1.0)
            old_port, old_proc = s.nodes[0]
            killed = time.monotonic()
            os.kill(old_proc.pid, signal.SIGKILL)
            promoted = ready_serve = ready_api = first_202 = None
            deadline = killed + 60
            while None in (promoted, ready_serve, ready_api, first_202):
                now = time.monotonic()
                if now > deadline:
                    raise BenchError(f"failover: after 60 s: promoted {promoted}, first 202 {first_202}, "
                                     f"ready {ready_serve}/{ready_api}")
                if promoted is None:
                    p = s.primary()
                    if p is not None and p != old_port:
                        promoted = now - killed
                if first_202 is None:
                    first_202 = next((a - killed for a, st in list(answers) if st == 202 and a > killed), None)
                for name in ("serve", "api"):
                    if (ready_serve if name == "serve" else ready_api) is None:
                        try:
                            ok = Http(port if name == "serve" else api_port, timeout=1).request("GET", "/ready")[0] == 200
                        except (OSError, BenchError):
                            ok = False
                        # Ready only counts once the sentinels moved: before
                        # the kill is noticed, the processes still say ready.
                        if ok and promoted is not None:
                            if name == "serve":
                                ready_serve = now - killed
                            else:
                                ready_api = now - killed
                time.sleep(0.02)
            stop.set()
            t.join(timeout=20)
            bad = [st for _, st in answers if st not in (202, 503)]
            if bad:
                raise BenchError(f"failover: answers other than 202 or 503: {sorted(set(bad))}")
            self.stop_proc(api)
            self.stop_proc(serve)
            return {"promoted_s": promoted, "first_202_s": first_202, "ready_serve_s": ready_serve,
                    "ready_api_s": ready_api, "answers": len(answers),
                    "answers_503": sum(1 for _, st in answers if st == 503)}
        finally:
            s.stop()

    def failover_time(self):
        turns = [self.failover_once(i) for i in range(self.cfg["failover_turns"])]
        self.raw["failover"] = turns
        log("failover: " + "; ".join(
            f"promoted {x['promoted_s']:.2f} s, first 202 {x['first_202_s']:.2f} s, ready {x['ready_serve_s']:.2f}/"
            f"{x['ready_api_s']:.2f} s" for x in turns))

    def min_replicas_cost(self):
        c = self.cfg
        s = RedisSet(self, "cost")
        try:
            ports = {}
            for m in (1, 0):
                ports[m], _ = self.start_on_set(s, f"cost-min{m}", m, "api")
            # The data set must be there for plots to be accepted: load once.
            http = Http(ports[0])
            job = http.json("POST", "/data", (202,), body=b"")
            serve_port, serve = self.start_on_set(s, "cost-worker", 0, "serve")
            self.wait_job(job["id"], 60, pause=0.01, http=http)
            self.stop_proc(serve)
            turns = {1: [], 0: []}
            for i in range(c["replicas_turns"]):
                for m in ((1, 0) if i % 2 == 0 else (0, 1)):
                    out = run_tool(
                        ["wrk", "--latency", "-t", "2", "-c", str(c["wrk_conns"]), "-d", f"{c['replicas_secs']}s",
                         "--timeout", "5s", "-s", os.path.join(HERE, "submit.lua"),
                         f"http://127.0.0.1:{ports[m]}"],
                        env={"BENCH_PATH": "/image?kind=locus_group&width=200&height=200",
                             "BENCH_PER_THREAD": "1000000",
                             "BENCH_IDS_OUT": os.path.join(self.a.work, f"cost-{m}.txt")},
                        timeout=c["replicas_secs"] + 60)
                    w = wrk_json(out)
                    bad = w["status_errors"] + w["connect_errors"] + w["read_errors"] + w["write_errors"] + w["timeout_errors"]
                    if w["requests"] == 0 or bad:
                        raise BenchError(f"wrk POST /image (MIN_REPLICAS={m}): {w['requests']} requests, {bad} errors")
                    turns[m].append({"req_s": w["requests"] / (w["duration_us"] / 1e6),
                                     "p99_ms": w["p99_us"] / 1000})
            self.raw["min_replicas_cost"] = turns
            log("MIN_REPLICAS=1 vs 0: " + ", ".join(
                f"{x['req_s']:.0f}/{y['req_s']:.0f} req/s" for x, y in zip(turns[1], turns[0])))
        finally:
            s.stop()

    def failover_rows(self):
        r, R = self.raw, self.row
        if "failover" in r:
            t = r["failover"]
            n = len(t)
            med = {k: statistics.median(x[k] for x in t) for k in ("promoted_s", "first_202_s", "ready_serve_s", "ready_api_s")}
            R(f"16 failover: kill -9 of the primary -> first 202 again (median of {n})", med["first_202_s"], "s",
              med["promoted_s"], "kill -> the sentinels name the new primary (down-after 1 s)",
              med["first_202_s"] / med["promoted_s"])
            ready = max(med["ready_serve_s"], med["ready_api_s"])
            R(f"16 failover: kill -9 -> /ready 200 on every process (median of {n})", ready, "s",
              med["promoted_s"], "kill -> the sentinels name the new primary", ready / med["promoted_s"])
        if "min_replicas_cost" in r:
            t = r["min_replicas_cost"]
            on = statistics.median(x["req_s"] for x in t[1])
            off = statistics.median(x["req_s"] for x in t[0])
            on_p99 = statistics.median(x["p99_ms"] for x in t[1])
            off_p99 = statistics.median(x["p99_ms"] for x in t[0])
            R(f"17 submissions with MIN_REPLICAS=1 (WAIT 1), wrk -c{self.cfg['wrk_conns']} (median of {len(t[1])} "
              "paired turns)", on, "req/s", off, "MIN_REPLICAS=0, same Redis set, alternating turns", on / off)
            R("17 the same, p99", on_p99, "ms", off_p99, "MIN_REPLICAS=0", on_p99 / off_p99)
