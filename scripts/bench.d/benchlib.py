"""What every figure of scripts/bench uses (Python 3 standard library only):
the error a failed step raises, small HTTP and Redis clients, percentiles,
CPU meters of processes and of the machine, and the tools' output.

driver.py runs the figures; releases.py holds those of issue 21.
"""

import http.client
import json
import math
import os
import resource
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
from datetime import datetime


class BenchError(Exception):
    """A step failed: the message says which and why."""


def log(msg):
    print(f"  - {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# Small clients: HTTP (keep-alive) and Redis (RESP over a socket).
# --------------------------------------------------------------------------


class Http:
    """One keep-alive connection to gene-api."""

    def __init__(self, port, timeout=60.0):
        self.port = port
        self.timeout = timeout
        self.conn = None

    def _connect(self):
        self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)

    def _send(self, method, path, body=None, headers=None):
        """Sends a request and returns the response, body unread. Reconnects
        once if the connection was dropped (gene-api closes keep-alive
        connections idle for longer than http.header_timeout_secs)."""
        for attempt in (1, 2):
            if self.conn is None:
                self._connect()
            try:
                self.conn.request(method, path, body=body, headers=headers or {})
                return self.conn.getresponse()
            except (ConnectionError, http.client.HTTPException, socket.timeout) as e:
                self.close()
                if attempt == 2:
                    raise BenchError(f"{method} {path}: {type(e).__name__}: {e}") from e
        raise AssertionError("unreachable")

    def request(self, method, path, body=None, headers=None):
        """Returns (status, headers, body bytes)."""
        resp = self._send(method, path, body, headers)
        try:
            data = resp.read()
        except (ConnectionError, http.client.HTTPException, socket.timeout) as e:
            self.close()
            raise BenchError(f"{method} {path}: {type(e).__name__}: {e}") from e
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data

    def json(self, method, path, expect, body=None, headers=None):
        status, _, data = self.request(method, path, body, headers)
        if status not in expect:
            raise BenchError(f"{method} {path} answered {status}, expected {expect}: {data[:300]!r}")
        try:
            return json.loads(data)
        except ValueError as e:
            raise BenchError(f"{method} {path}: body is not JSON: {e}") from e

    def stream(self, path, chunk=1 << 20):
        """GET path reading the body in chunks and dropping it; returns (status, bytes read, Content-Length)."""
        resp = self._send("GET", path)
        n = 0
        while True:
            piece = resp.read(chunk)
            if not piece:
                break
            n += len(piece)
        length = resp.getheader("content-length")
        return resp.status, n, int(length) if length is not None else None

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def resp_encode(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if isinstance(a, str):
            a = a.encode()
        elif isinstance(a, int):
            a = str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class Redis:
    """A minimal RESP2 client: enough for INFO, DEL, GET and a raw pipeline."""

    def __init__(self, port, timeout=60.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.file = self.sock.makefile("rb", buffering=1 << 20)

    def _reply(self):
        line = self.file.readline()
        if not line:
            raise BenchError("Redis closed the connection")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise BenchError(f"Redis error: {rest.decode()}")
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.file.read(n + 2)
            return data[:-2]
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self._reply() for _ in range(n)]
        raise BenchError(f"unexpected Redis reply {line[:50]!r}")

    def cmd(self, *args):
        self.sock.sendall(resp_encode(*args))
        return self._reply()

    def pipeline(self, payload, replies):
        """Sends pre-encoded commands while reading their replies; returns seconds taken."""
        err = []

        def send():
            try:
                self.sock.sendall(payload)
            except OSError as e:
                err.append(e)

        t0 = time.perf_counter()
        sender = threading.Thread(target=send)
        sender.start()
        for _ in range(replies):
            self._reply()
        elapsed = time.perf_counter() - t0
        sender.join()
        if err:
            raise BenchError(f"sending to Redis failed: {err[0]}")
        return elapsed

    def info(self, section):
        text = self.cmd("INFO", section).decode()
        out = {}
        for line in text.splitlines():
            if ":" in line and not line.startswith("#"):
                k, v = line.split(":", 1)
                out[k] = v
        return out

    def close(self):
        self.file.close()
        self.sock.close()


# --------------------------------------------------------------------------
# Numbers and processes.
# --------------------------------------------------------------------------


def paired(rps):
    """Side-by-side turns: each round measured "on" and "off" back to back, so
    the figure is the median of the rounds' on/off ratios (drift cancels
    within a round), beside the medians of each side."""
    ratios = [a / b for a, b in zip(rps["on"], rps["off"])]
    return {"on_req_s": rps["on"], "off_req_s": rps["off"], "round_ratios": ratios,
            "on_median": statistics.median(rps["on"]), "off_median": statistics.median(rps["off"]),
            "ratio": statistics.median(ratios)}


def pct(values, q):
    """Nearest-rank percentile (q in 0..100)."""
    s = sorted(values)
    if not s:
        return float("nan")
    return s[max(0, math.ceil(q / 100 * len(s)) - 1)]


def proc_status_kb(pid, field):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except FileNotFoundError:
        raise BenchError(f"process {pid} is gone (did gene-api or redis-server die?)") from None
    raise BenchError(f"/proc/{pid}/status has no {field}")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu():
    """CPU seconds of this driver and its finished children (wrk, redis-benchmark)."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        r = resource.getrusage(who)
        total += r.ru_utime + r.ru_stime
    return total


def machine_ticks():
    """(busy without softirq, softirq) clock ticks of the whole machine, from /proc/stat."""
    with open("/proc/stat") as f:
        user, nice, system, _idle, _iowait, irq, softirq, *_ = map(int, f.readline().split()[1:])
    return user + nice + system + irq, softirq


class CpuMeter:
    """CPU use of gene-api, redis-server and this driver's children over a stretch of
    time, and of the machine as a whole: whatever else runs on it shows up as "other"."""

    def __init__(self, pids):
        self.pids = pids
        self.t0 = time.perf_counter()
        self.c0 = {k: cpu_seconds(p) for k, p in pids.items()}
        self.k0 = children_cpu()
        self.m0 = machine_ticks()

    def stop(self):
        """{name: CPU seconds}: each process, "load generator" (this driver and its children:
        wrk, redis-benchmark), "softirq" (network stack, charged to no process),
        "other" (everything else on the machine), and "wall" (seconds)."""
        out = {k: cpu_seconds(p) - self.c0[k] for k, p in self.pids.items()}
        out["load generator"] = children_cpu() - self.k0
        tick = os.sysconf("SC_CLK_TCK")
        busy, soft = (b - a for a, b in zip(self.m0, machine_ticks()))
        out["softirq"] = soft / tick
        out["other"] = max(0.0, busy / tick - sum(out.values()) + out["softirq"])
        out["wall"] = time.perf_counter() - self.t0
        return out


def cpu_percent(cpu):
    """CPU seconds as % of one core over the wall time (200 = both cores of this machine)."""
    return {k: round(100 * v / cpu["wall"], 1) for k, v in cpu.items() if k != "wall"}


def cpu_per(cpu, n):
    """CPU microseconds per operation, for n operations (machine-wide shares left out)."""
    return {k: round(1e6 * v / n, 1) for k, v in cpu.items() if k not in ("wall", "softirq", "other")}


def fmt_dict(d):
    return ", ".join(f"{k} {v:g}" for k, v in d.items())


def ts(s):
    """An RFC 3339 job timestamp as seconds since the epoch."""
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


def run_tool(args, env=None, timeout=120):
    try:
        p = subprocess.run(
            args, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}
        )
    except FileNotFoundError:
        raise BenchError(f"{args[0]} is not installed") from None
    except subprocess.TimeoutExpired:
        raise BenchError(f"{' '.join(args)} did not finish in {timeout} s") from None
    if p.returncode != 0:
        raise BenchError(f"{' '.join(args)} exited with {p.returncode}: {p.stderr.strip()[-500:]}")
    return p.stdout


def wrk_json(out):
    for line in out.splitlines():
        if line.startswith("WRK_JSON "):
            return json.loads(line[len("WRK_JSON "):])
    raise BenchError(f"wrk printed no summary: {out[-500:]}")


def redis_benchmark_row(out, test="GET"):
    """The row of `test` in `redis-benchmark --csv` output, as a dict by
    column name (`rps`, `p99_latency_ms`, ...)."""
    lines = [ln for ln in out.splitlines() if ln.strip()]
    header = [h.strip('"') for h in lines[0].split(",")] if lines else []
    for ln in lines[1:]:
        vals = [v.strip('"') for v in ln.split(",")]
        if vals[0] == test:
            return dict(zip(header, vals))
    raise BenchError(f"redis-benchmark printed no {test} line: {out[-300:]}")


def png_size(data):
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        raise BenchError("GET /image/<id> did not return a PNG")
    return struct.unpack(">II", data[16:24])
