"""Figures 11-15 of scripts/bench: HGNC releases (issue 21).

They run on redis-servers and gene-apis of their own, so that neither the
main server's data set nor the other figures' keys take part:

- the *releases server*, a redis-server and a `gene-api serve` started once
  and shared by figures 11, 12, 14 and 15. Its source is the newer complete
  set with no withdrawn file (`GENE_API__DATA__WITHDRAWN=""`), and its archive
  templates point at the --releases directory, so `POST /data {"release":
  "<date>"}` loads either release with its withdrawn file. Two files thus give
  three releases: "older", "newer" (each with its withdrawn file) and "bare"
  (the newer complete set alone);
- fresh `gene-api api` processes on that Redis, for what a process pays the
  first time it reads a release (figure 11's cold diff, figure 14's RSS);
- figure 13's own redis-server and server, so that Redis's memory holds these
  releases and nothing else.

Every load is checked (done, not `unchanged`, the source's record count and
the withdrawn file's counts), and answers are compared with the files.
Each figure first loads the older release, which no figure leaves live, so
that its own loads are never `unchanged` whatever ran before it.
"""

import json
import os
import random
import re
import socket
import statistics
import time
from collections import Counter
from urllib.parse import quote

from benchlib import BenchError, CpuMeter, Http, Redis, log, machine_ticks, paired, proc_status_kb, ts

RELEASE_JSON = re.compile(r"^hgnc_complete_set_(\d{4}-\d{2}-\d{2})\.json$")
GONE_KINDS = ("withdrawn", "merged", "split", "removed")
OTHER_KEYS = "other (jobs, events)"


class ReleaseFiles:
    """One release on disk: its complete set, parsed, and its withdrawn
    file's counts as a load reports them."""

    def __init__(self, directory, date):
        self.date = date
        self.json_path = os.path.join(directory, f"hgnc_complete_set_{date}.json")
        self.withdrawn_path = os.path.join(directory, f"withdrawn_{date}.txt")
        with open(self.json_path, "rb") as f:
            body = f.read()
        self.bytes = len(body)
        self.docs = json.loads(body)["response"]["docs"]
        self.by_id = {d["hgnc_id"]: d for d in self.docs}
        if len(self.by_id) != len(self.docs):
            raise BenchError(f"{self.json_path} repeats hgnc_ids")
        if not os.path.isfile(self.withdrawn_path):
            raise BenchError(f"{self.json_path} has no withdrawn file beside it ({self.withdrawn_path})")
        self.withdrawn_bytes = os.path.getsize(self.withdrawn_path)
        with open(self.withdrawn_path, encoding="utf-8") as f:
            rows = [line.rstrip("\r\n").split("\t") for line in f][1:]
        rows = [r for r in rows if len(r) > 1 and r[0]]
        status = Counter(r[1] for r in rows)
        self.withdrawn = {"records": len(rows), "entry_withdrawn": status["Entry Withdrawn"],
                          "merged_split": status["Merged/Split"]}


def expected_diff(old, new):
    """What GET /releases/<old>/diff/<new> must count, from the files: genes
    added, gone (withdrawn, merged, split or removed), renamed (another
    approved symbol) and changed (any other field)."""
    a, b = old.by_id, new.by_id
    out = {"added": sum(1 for i in b if i not in a), "gone": sum(1 for i in a if i not in b),
           "renamed": 0, "changed": 0}
    for i, ra in a.items():
        rb = b.get(i)
        if rb is not None and ra != rb:
            out["renamed" if ra.get("symbol") != rb.get("symbol") else "changed"] += 1
    out["total"] = sum(out.values())
    return out


def key_group(key):
    """Which of gene-api's parts a Redis key belongs to, for figure 13."""
    name = key.split(":", 1)[1] if ":" in key else key
    if name == "records":
        return "records"
    if name.startswith("release:"):
        return "release " + name.rsplit(":", 1)[1]
    if name.startswith("releases") or name.startswith("data:"):
        return "release bookkeeping"
    return OTHER_KEYS


class ReleaseFigures:
    """Figures 11-15, mixed into driver.Bench, whose helpers they use
    (cfg, a, raw, row, wait_job, start_serve, spawn, stop_proc, wrk_run)."""

    def __init__(self):
        self._releases = None  # (older, newer) ReleaseFiles, read once
        self._server = None  # the releases server of figures 11, 12, 14 and 15

    # -- set-up ------------------------------------------------------------

    def releases(self):
        """The two releases of the --releases directory, oldest first."""
        if self._releases is None:
            d = self.a.releases
            dates = sorted(m.group(1) for m in map(RELEASE_JSON.match, os.listdir(d)) if m)
            if len(dates) != 2:
                raise BenchError(f"{d} holds {len(dates)} complete sets {dates}; figures 11-15 need two")
            self._releases = tuple(ReleaseFiles(d, date) for date in dates)
            self.raw["releases"] = {
                r.date: {"path": r.json_path, "bytes": r.bytes, "records": len(r.docs),
                         "withdrawn_bytes": r.withdrawn_bytes, "withdrawn": r.withdrawn}
                for r in self._releases
            }
            log("releases: " + "; ".join(
                f"{r.date}: {len(r.docs)} records, {r.bytes / 1e6:.1f} MB, {r.withdrawn['records']} withdrawn"
                for r in self._releases))
            # What else the machine was doing (these figures do not wait for quiet).
            a = sum(machine_ticks())
            time.sleep(1.0)
            self.raw["releases_busy_before_percent"] = round(100 * (sum(machine_ticks()) - a) / os.sysconf("SC_CLK_TCK"), 1)
        return self._releases

    def release_env(self):
        """A gene-api's data settings for the releases (3 kept, the default)."""
        _, newer = self.releases()
        d = self.a.releases
        return {
            # The same path the archive template gives for the newer date, so
            # "bare" and "newer" differ in the withdrawn file only.
            "GENE_API__DATA__SOURCE": newer.json_path,
            "GENE_API__DATA__WITHDRAWN": "",
            "GENE_API__DATA__ARCHIVE_SOURCE": os.path.join(d, "hgnc_complete_set_{date}.json"),
            "GENE_API__DATA__ARCHIVE_WITHDRAWN": os.path.join(d, "withdrawn_{date}.txt"),
            "GENE_API__DATA__KEEP_RELEASES": "3",
        }

    def start_redis(self, label):
        """A redis-server of the figure's own (no persistence) on a free port;
        returns (port, process)."""
        for _ in range(3):  # a port found free can be taken before Redis binds it
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                port = sock.getsockname()[1]
            proc = self.spawn(["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "",
                               "--appendonly", "no", "--dir", self.a.work, "--daemonize", "no"],
                              dict(os.environ), f"redis-{label}.log")
            deadline = time.monotonic() + 10
            while proc.poll() is None and time.monotonic() < deadline:
                try:
                    r = Redis(port, timeout=2)
                    try:
                        if r.cmd("PING") == "PONG":
                            return port, proc
                    finally:
                        r.close()
                except (OSError, BenchError):
                    pass
                time.sleep(0.05)
            self.stop_proc(proc)
        raise BenchError(f"redis-server ({label}) did not start")

    def release_server(self):
        """The releases server (started on first use)."""
        if self._server is None:
            rport, rproc = self.start_redis("releases")
            port, proc = self.start_serve("releases", self.release_env(), redis_port=rport)
            self._server = {"redis_port": rport, "redis_proc": rproc, "port": port, "proc": proc,
                            "http": Http(port)}
        for name in ("redis_proc", "proc"):
            if self._server[name].poll() is not None:
                raise BenchError(f"the releases server's {name.split('_')[0]} process has exited")
        return self._server

    def fresh_api(self, label, redis_port):
        """A new `gene-api api` on `redis_port` that has read nothing yet: (Http, process)."""
        port, proc = self.start_serve(label, self.release_env(), redis_port=redis_port, command="api")
        return Http(port), proc

    def load_release(self, http, which):
        """Loads "older" or "newer" (by date, with its withdrawn file) or
        "bare" (the server's source: the newer set, no withdrawn file), polling
        the job every 2 ms; returns (job, client seconds POST -> seen done)."""
        older, newer = self.releases()
        files = older if which == "older" else newer
        body = b"" if which == "bare" else json.dumps({"release": files.date}).encode()
        t0 = time.perf_counter()
        job = http.json("POST", "/data", (202,), body=body, headers={"Content-Type": "application/json"})
        job, _ = self.wait_job(job["id"], 120, pause=0.002, http=http)
        elapsed = time.perf_counter() - t0
        if job["status"] != "done":
            raise BenchError(f"load of the {which} release ({files.date}): job {job['id']} failed: {job.get('error')}")
        res = job.get("result") or {}
        want = {"unchanged": False, "records": len(files.docs),
                "withdrawn": None if which == "bare" else files.withdrawn}
        got = {k: res.get(k) for k in want}
        if got != want:
            raise BenchError(f"load of the {which} release ({files.date}): result {got}, the files give {want}")
        return job, elapsed

    def get_release_json(self, http, path, release):
        """GET path: must be 200 and name `release` in X-HGNC-Release; returns the JSON body."""
        status, headers, body = http.request("GET", path)
        if status != 200:
            raise BenchError(f"GET {path} answered {status}: {body[:300]!r}")
        if headers.get("x-hgnc-release") != release:
            raise BenchError(f"GET {path} answered from release {headers.get('x-hgnc-release')}, not {release}")
        return json.loads(body)

    def check_kept(self, http, ids, live):
        """GET /releases must list exactly `ids` as kept, `live` the live one."""
        got = http.json("GET", "/releases", (200,))
        kept = sorted(r["id"] for r in got["releases"])
        if kept != sorted(ids) or got["live"] != live:
            raise BenchError(f"GET /releases: kept {kept}, live {got['live']}; expected {sorted(ids)}, live {live}")

    # -- figures -----------------------------------------------------------

    def release_diff(self):
        """Figure 11: GET /releases/<older>/diff/<newer>?limit=1, first on a
        freshly started api process (cold: it reads both releases, builds the
        older one's index from its records and computes the diff), then again
        on that process (the diff is kept). Reference: the newer release's
        load job (started_at -> finished_at) in the same run. Every answer's
        counts are compared with the files."""
        c = self.cfg
        older, newer = self.releases()
        srv = self.release_server()
        jo, _ = self.load_release(srv["http"], "older")
        jn, load_client = self.load_release(srv["http"], "newer")
        a, b = jo["result"]["release"], jn["result"]["release"]
        want = expected_diff(older, newer)
        path = f"/releases/{a}/diff/{b}?limit=1"

        def timed_diff(h):
            t0 = time.perf_counter()
            status, _, body = h.request("GET", path)
            t = time.perf_counter() - t0
            if status != 200:
                raise BenchError(f"GET {path} answered {status}: {body[:300]!r}")
            d = json.loads(body)
            kinds = d["summary"]["by_kind"]
            got = {"added": kinds.get("added", 0), "gone": sum(kinds.get(k, 0) for k in GONE_KINDS),
                   "renamed": kinds.get("renamed", 0), "changed": kinds.get("changed", 0), "total": d["total"]}
            if (got != want or d["summary"]["total"] != want["total"] or (d["from"], d["to"]) != (a, b)
                    or len(d["changes"]) != min(1, want["total"])):
                raise BenchError(f"GET {path}: {got}, {len(d['changes'])} changes on the page; the files give {want}")
            return t, kinds

        cold, repeat = [], []
        for i in range(c["diff_cold_runs"]):
            h, proc = self.fresh_api(f"diff-{i + 1}", srv["redis_port"])
            t, kinds = timed_diff(h)
            cold.append(t)
            if i == 0:
                repeat = [timed_diff(h)[0] for _ in range(c["diff_repeats"])]
            h.close()
            self.stop_proc(proc)
        # The older release alone, on one more fresh process: the part of a
        # cold diff that builds its index from its records.
        h, proc = self.fresh_api("older-info", srv["redis_port"])
        t0 = time.perf_counter()
        info = self.get_release_json(h, f"/info?release={a}", a)
        older_cold = time.perf_counter() - t0
        if info["records"] != len(older.docs):
            raise BenchError(f"GET /info?release={a}: {info['records']} records, the file has {len(older.docs)}")
        h.close()
        self.stop_proc(proc)
        self.raw["release_diff"] = {
            "from": a, "to": b, "expected": want, "by_kind": kinds,
            "cold_s": cold, "repeat_s": repeat, "older_info_cold_s": older_cold,
            "load": {"release": b, "client_s": load_client,
                     "run_s": ts(jn["finished_at"]) - ts(jn["started_at"]),
                     "server_s": ts(jn["finished_at"]) - ts(jn["created_at"])},
        }
        log(f"diff {a} -> {b}: {want['total']} changes {kinds}; cold {', '.join(f'{t * 1000:.0f}' for t in cold)} ms, "
            f"repeat median {statistics.median(repeat) * 1000:.2f} ms; cold /info of {a} {older_cold * 1000:.0f} ms; "
            f"load of {b} {self.raw['release_diff']['load']['run_s'] * 1000:.0f} ms")

    def release_withdrawn_load(self):
        """Figure 12: the newer release loaded with its withdrawn file beside
        the same complete set without one, by turns (each load differs from
        the live release only in its withdrawn file, so none is unchanged)."""
        c = self.cfg
        srv = self.release_server()
        self.load_release(srv["http"], "older")
        runs = {"with": [], "without": []}
        for _ in range(c["withdrawn_rounds"]):
            for side, which in (("without", "bare"), ("with", "newer")):
                job, t = self.load_release(srv["http"], which)
                runs[side].append({"release": job["result"]["release"], "client_s": t,
                                   "run_s": ts(job["finished_at"]) - ts(job["started_at"]),
                                   "server_s": ts(job["finished_at"]) - ts(job["created_at"])})
        ratios = [w["client_s"] / o["client_s"] for w, o in zip(runs["with"], runs["without"])]
        _, newer = self.releases()
        self.raw["release_withdrawn_load"] = {**runs, "round_ratios": ratios, "ratio": statistics.median(ratios),
                                              "date": newer.date, "withdrawn_bytes": newer.withdrawn_bytes}
        ms = {side: ", ".join(f"{x['client_s'] * 1000:.0f}" for x in xs) for side, xs in runs.items()}
        log(f"load of {newer.date}, with its withdrawn file: {ms['with']} ms; without: {ms['without']} ms")

    def redis_memory(self, r):
        """Redis's used_memory once settled (UNLINKed values freed, client
        buffers trimmed back under 1 MiB, two readings 0.2 s apart within
        64 KiB; at most 10 s), the part of it that is client buffers
        (mem_clients_normal), and MEMORY USAGE of every key by group
        (key_group)."""
        prev = used = None
        for _ in range(50):
            m = r.info("memory")
            used, clients = int(m["used_memory"]), int(m["mem_clients_normal"])
            if (int(m.get("lazyfree_pending_objects", "0")) == 0 and clients < 2**20
                    and prev is not None and abs(used - prev) < 65536):
                break
            prev = used
            time.sleep(0.2)
        groups = Counter()
        cursor = b"0"
        while True:
            cursor, keys = r.cmd("SCAN", cursor, "COUNT", 1000)
            for k in keys:
                groups[key_group(k.decode())] += r.cmd("MEMORY", "USAGE", k, "SAMPLES", "0") or 0
            if cursor == b"0":
                break
        return {"used_memory": used, "clients": clients, "dataset": int(m["used_memory_dataset"]), "keys": dict(groups)}

    def release_memory(self):
        """Figure 13: on a fresh redis-server and server of its own, Redis's
        used_memory over its value before any load, with the newer release
        alone, then (after DELETE /data) with the older and the newer kept.
        Two things that are not the releases' are taken out: client buffers
        (mem_clients_normal: a load's 4 MB pipelines leave the api's query
        buffer at about 8 MB until Redis trims it, a second or two later;
        redis_memory waits for that, and what is left is subtracted) and keys
        that are not the releases' (job records, the jobs stream, events), by
        their MEMORY USAGE."""
        rport, rproc = self.start_redis("memory")
        r = Redis(rport)
        try:
            port, proc = self.start_serve("memory", self.release_env(), redis_port=rport)
            http = Http(port)
            time.sleep(0.5)  # let the fresh process settle
            base = self.redis_memory(r)
            jn, _ = self.load_release(http, "newer")
            self.check_kept(http, [jn["result"]["release"]], jn["result"]["release"])
            one = self.redis_memory(r)
            http.json("DELETE", "/data", (200,))
            emptied = self.redis_memory(r)
            jo, _ = self.load_release(http, "older")
            jn, _ = self.load_release(http, "newer")
            self.check_kept(http, [jo["result"]["release"], jn["result"]["release"]], jn["result"]["release"])
            both = self.redis_memory(r)
            http.close()
            self.stop_proc(proc)
        finally:
            r.close()
        self.stop_proc(rproc)

        def growth(m):
            other = m["keys"].get(OTHER_KEYS, 0) - base["keys"].get(OTHER_KEYS, 0)
            return m["used_memory"] - base["used_memory"] - (m["clients"] - base["clients"]) - other

        self.raw["release_memory"] = {"base": base, "one": one, "after_delete": emptied, "both": both,
                                      "one_bytes": growth(one), "both_bytes": growth(both),
                                      "after_delete_bytes": growth(emptied)}
        log(f"Redis memory: one release {growth(one) / 2**20:.1f} MiB, both {growth(both) / 2**20:.1f} MiB "
            f"(ratio {growth(both) / growth(one):.2f}); after DELETE /data {growth(emptied) / 2**20:.2f} MiB; "
            f"by key, both: {', '.join(f'{k} {v / 2**20:.2f}' for k, v in sorted(both['keys'].items()))} MiB")

    def release_rss(self):
        """Figure 14: a fresh api process's RSS once it holds all three kept
        releases (older, newer, bare), each read with ?release=, against the
        three source files' bytes."""
        older, newer = self.releases()
        srv = self.release_server()
        jobs = [self.load_release(srv["http"], which)[0] for which in ("older", "newer", "bare")]
        ids = [j["result"]["release"] for j in jobs]
        if len(set(ids)) != 3:
            raise BenchError(f"three loads gave the releases {ids}: not three")
        self.check_kept(srv["http"], ids, ids[-1])
        h, proc = self.fresh_api("rss", srv["redis_port"])
        time.sleep(0.5)  # let the fresh process settle
        rss0 = proc_status_kb(proc.pid, "VmRSS")
        for rid, files in zip(ids, (older, newer, newer)):
            info = self.get_release_json(h, f"/info?release={rid}", rid)
            if info["records"] != len(files.docs):
                raise BenchError(f"GET /info?release={rid}: {info['records']} records, the file has {len(files.docs)}")
            gid = files.docs[len(files.docs) // 2]["hgnc_id"]
            if self.get_release_json(h, f"/genes/{gid}?release={rid}", rid) != files.by_id[gid]:
                raise BenchError(f"GET /genes/{gid}?release={rid} differs from the {files.date} record")
        time.sleep(0.5)
        rss1 = proc_status_kb(proc.pid, "VmRSS")
        hwm = proc_status_kb(proc.pid, "VmHWM")
        h.close()
        self.stop_proc(proc)
        self.raw["release_rss"] = {"releases": ids, "source_bytes": older.bytes + 2 * newer.bytes,
                                   "api_rss_kb_fresh": rss0, "api_rss_kb": rss1, "api_hwm_kb": hwm}
        log(f"api RSS: {rss0 / 1024:.1f} MiB fresh, {rss1 / 1024:.1f} MiB holding {len(ids)} releases "
            f"(peak {hwm / 1024:.1f} MiB)")

    def release_reads(self):
        """Figure 15: point and symbol reads of the older release
        (?release=<older>) beside the same reads of the live (newer) one, on
        the same server, by turns (pinned, live, live, pinned, ...), over the
        genes in both releases; the figure is the median of the paired
        ratios. A sample of each kind of read is first compared with the files."""
        c = self.cfg
        older, newer = self.releases()
        srv = self.release_server()
        jo, _ = self.load_release(srv["http"], "older")
        jn, _ = self.load_release(srv["http"], "newer")
        a, b = jo["result"]["release"], jn["result"]["release"]
        common = [d["hgnc_id"] for d in older.docs if d["hgnc_id"] in newer.by_id]
        sides = {"pinned": (a, older, f"?release={a}"), "live": (b, newer, "")}

        def path(kind, rec, suffix):
            base = f"/genes/{rec['hgnc_id']}" if kind == "id" else "/genes/symbol/" + quote(rec["symbol"], safe="")
            return base + suffix

        for gid in random.Random(21).sample(common, min(c["check_genes"], len(common))):
            for rid, files, suffix in sides.values():
                for kind in ("id", "symbol"):
                    p = path(kind, files.by_id[gid], suffix)
                    if self.get_release_json(srv["http"], p, rid) != files.by_id[gid]:
                        raise BenchError(f"GET {p} differs from the {files.date} record of {gid}")
        paths = {}
        for kind in ("id", "symbol"):
            for side, (_, files, suffix) in sides.items():
                paths[kind, side] = os.path.join(self.a.work, f"paths-release-{kind}-{side}.txt")
                with open(paths[kind, side], "w") as f:
                    f.write("\n".join(path(kind, files.by_id[gid], suffix) for gid in common) + "\n")
        pids = {"gene-api": srv["proc"].pid, "redis-server": srv["redis_proc"].pid}
        rps = {kind: {"pinned": [], "live": []} for kind in ("id", "symbol")}
        cpu = {kind: {side: Counter() for side in sides} for kind in ("id", "symbol")}
        other = Counter()  # CPU seconds of other processes on the machine, and wall seconds
        for i in range(c["release_rounds"]):
            for kind in ("id", "symbol"):
                for side in (("pinned", "live") if i % 2 == 0 else ("live", "pinned")):
                    meter = CpuMeter(pids)
                    w = self.wrk_run(srv["port"], {"BENCH_PATHS": paths[kind, side]}, f"GET /genes/{kind} ({side})")
                    used = meter.stop()
                    rps[kind][side].append(w["req_s"])
                    cpu[kind][side].update({"requests": w["requests"], **{k: used[k] for k in pids}})
                    other.update({"cpu": used["other"], "wall": used["wall"]})
        out = {"pinned": a, "live": b, "genes": len(common),
               "other_percent": round(100 * other["cpu"] / other["wall"], 1)}
        for kind in ("id", "symbol"):
            out[kind] = paired({"on": rps[kind]["pinned"], "off": rps[kind]["live"]})
            out[kind]["cpu_us_per_request"] = {
                side: {k: round(1e6 * n[k] / n["requests"], 1) for k in pids} for side, n in cpu[kind].items()}
        self.raw["release_reads"] = out
        for kind in ("id", "symbol"):
            o = out[kind]
            log(f"GET /genes/{kind}: ?release={a} {o['on_median']:.0f} req/s, live {o['off_median']:.0f} req/s, "
                f"median paired ratio {o['ratio']:.3f}; CPU us/request {o['cpu_us_per_request']}")

    # -- the table ---------------------------------------------------------

    def release_rows(self):
        """The table rows of figures 11-15 that ran."""
        r, R = self.raw, self.row
        mib = 2**20
        if "release_diff" in r:
            d = r["release_diff"]
            cold, rep = statistics.median(d["cold_s"]), statistics.median(d["repeat_s"])
            load = d["load"]["run_s"]
            R(f"11 full diff {d['from']} -> {d['to']} ({d['expected']['total']:,} changes), cold: first GET "
              f"on a fresh api (median of {len(d['cold_s'])})", cold * 1000, "ms", load * 1000,
              f"load of {d['to']} (its job, started -> finished)", cold / load, "<= 500 ms", cold <= 0.5)
            R(f"11 the same diff again, kept by the process (median of {len(d['repeat_s'])})", rep * 1000, "ms",
              cold * 1000, "the cold diff (row above)", rep / cold)
            R(f"11 cold GET /info?release={d['from']} (fresh api: the index built from its records)",
              d["older_info_cold_s"] * 1000, "ms", cold * 1000, "the cold diff", d["older_info_cold_s"] / cold)
        if "release_withdrawn_load" in r:
            w = r["release_withdrawn_load"]
            on = statistics.median(x["client_s"] for x in w["with"])
            off = statistics.median(x["client_s"] for x in w["without"])
            R(f"12 load of {w['date']} with its withdrawn file: POST /data -> done (median of {len(w['with'])} "
              "paired turns)", on * 1000, "ms", off * 1000,
              'the same complete set, no withdrawn file (GENE_API__DATA__WITHDRAWN="")', w["ratio"],
              "<= 500 ms", on <= 0.5)
            on = statistics.median(x["run_s"] for x in w["with"])
            off = statistics.median(x["run_s"] for x in w["without"])
            R("12 the same, the job alone (started -> finished, median)", on * 1000, "ms", off * 1000,
              "without the withdrawn file", on / off)
        if "release_memory" in r:
            m = r["release_memory"]
            older, newer = self.releases()
            R(f"13 Redis memory, one release kept ({newer.date})", m["one_bytes"] / mib, "MiB", newer.bytes / mib,
              "its source file", m["one_bytes"] / newer.bytes)
            R(f"13 Redis memory, both releases kept ({older.date}, {newer.date})", m["both_bytes"] / mib, "MiB",
              m["one_bytes"] / mib, "one release kept (row above)", m["both_bytes"] / m["one_bytes"],
              "<= 1.3 x ref", m["both_bytes"] <= 1.3 * m["one_bytes"])
        if "release_rss" in r:
            s = r["release_rss"]
            R("14 api RSS, 3 kept releases each read with ?release= (fresh api)", s["api_rss_kb"] / 1024, "MiB",
              s["source_bytes"] / mib, "the 3 releases' source files", s["api_rss_kb"] * 1024 / s["source_bytes"])
            grow = (s["api_rss_kb"] - s["api_rss_kb_fresh"]) * 1024
            R("14 api RSS growth for the 3 releases", grow / mib, "MiB", s["source_bytes"] / mib,
              "the 3 releases' source files", grow / s["source_bytes"])
        if "release_reads" in r:
            x = r["release_reads"]
            for kind, what in (("id", "/genes/<id>"), ("symbol", "/genes/symbol/<s>")):
                o = x[kind]
                R(f"15 GET {what}?release=<older> (wrk -c{self.cfg['wrk_conns']}, median of "
                  f"{len(o['on_req_s'])} paired turns)", o["on_median"], "req/s", o["off_median"],
                  f"GET {what} of the live release, same server, alternating turns", o["ratio"],
                  ">= 0.90 x ref", o["ratio"] >= 0.90)

    def print_release_notes(self):
        """The lines under the table for figures 11-15 (those that ran)."""
        r = self.raw
        if "releases" not in r:
            return
        if self.a.only:
            self.print_machine()
        print("Releases: " + "; ".join(
            f"{date}: {x['records']:,} records, {x['bytes']:,} bytes, withdrawn file {x['withdrawn_bytes']:,} bytes "
            f"({x['withdrawn']['records']:,} rows)" for date, x in r["releases"].items()) + ".")
        print(f"Before figures 11-15, the machine was busy {r['releases_busy_before_percent']:g}% of a core "
              "(they do not wait for quiet).")
        if "release_diff" in r:
            d = r["release_diff"]
            print(f"Diff: {d['by_kind']} (the files give {d['expected']}); cold runs "
                  + ", ".join(f"{t * 1000:.0f}" for t in d["cold_s"]) + f" ms; load of {d['to']}: client "
                  f"{d['load']['client_s'] * 1000:.0f} ms, job created -> finished {d['load']['server_s'] * 1000:.0f} ms.")
        if "release_memory" in r:
            m = r["release_memory"]
            groups = sorted(set(m["one"]["keys"]) | set(m["both"]["keys"]))
            print("Redis MEMORY USAGE by key, one release / both (MiB): " + ", ".join(
                f"{g} {m['one']['keys'].get(g, 0) / 2**20:.2f} / {m['both']['keys'].get(g, 0) / 2**20:.2f}"
                for g in groups) + f"; subtracted: the growth of '{OTHER_KEYS}' and of client buffers "
                f"({(m['one']['clients'] - m['base']['clients']) / 2**20:.2f} / "
                f"{(m['both']['clients'] - m['base']['clients']) / 2**20:.2f} MiB); used_memory growth as read, "
                f"nothing subtracted: {(m['one']['used_memory'] - m['base']['used_memory']) / 2**20:.1f} / "
                f"{(m['both']['used_memory'] - m['base']['used_memory']) / 2**20:.1f} MiB; after DELETE /data "
                f"{m['after_delete_bytes'] / 2**20:.2f} MiB over the empty Redis, in no key.")
        if "release_rss" in r:
            s = r["release_rss"]
            print(f"api RSS for figure 14: {s['api_rss_kb_fresh'] / 1024:.1f} MiB fresh, peak "
                  f"{s['api_hwm_kb'] / 1024:.1f} MiB while reading; releases {', '.join(s['releases'])}.")
        if "release_reads" in r:
            x = r["release_reads"]
            print(f"Reads with ?release= over {x['genes']:,} genes in both releases; other processes used "
                  f"{x['other_percent']:g}% of a core during the turns; CPU us per request, "
                  "pinned / live: " + "; ".join(
                      f"{kind}: " + ", ".join(
                          f"{k} {x[kind]['cpu_us_per_request']['pinned'][k]:g} / {x[kind]['cpu_us_per_request']['live'][k]:g}"
                          for k in x[kind]["cpu_us_per_request"]["pinned"])
                      for kind in ("id", "symbol")) + ".")
