#!/usr/bin/env python3
"""Many idle `GET /events` clients in one process, for figure 19 of
scripts/bench (run as several processes, so that the clients keep up on a
machine of few cores).

    sse_clients.py PORT CLIENTS EVENTS TIMEOUT_S

Opens CLIENTS connections to 127.0.0.1:PORT, asks each for
`/events?kind=plot`, prints `ready` once every stream has answered 200, then
reads until each stream has carried EVENTS `id:` lines, a line arrives on
stdin (the driver's "every job is done, stop"), or TIMEOUT_S pass.
The receive loop does as little as it can: one clock reading per epoll batch
(every socket of a batch was readable at that moment, so the stamp is an
upper bound of its arrival), one read per ready socket, and the bytes kept
for later. Parsing comes after the last event. Prints one JSON line:
{"latency_ms": {event id: [ms, ...]}, "busy_ms_max": the longest batch of
reads, "busy_s": seconds spent reading, "window_s": first to last arrival,
"cpu_s": CPU of the receive loop, "missing": events not received}.
"""

import json
import os
import select
import socket
import sys
import time


def main():
    port, clients, events, timeout = (int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]),
                                      float(sys.argv[4]))
    request = b"GET /events?kind=plot HTTP/1.1\r\nHost: bench\r\nAccept: text/event-stream\r\n\r\n"
    socks, got = {}, {}
    for _ in range(clients):
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        s.sendall(request)
        socks[s.fileno()] = s
    for fd, s in socks.items():
        head = b""
        while b"\r\n\r\n" not in head:
            piece = s.recv(65536)
            if not piece:
                sys.exit(f"an /events stream closed before its head: {head[:80]!r}")
            head += piece
        if b" 200 " not in head.split(b"\r\n", 1)[0]:
            sys.exit(f"GET /events answered {head[:80]!r}")
        s.setblocking(False)
        got[fd] = [(0.0, head.split(b"\r\n\r\n", 1)[1])]
    ep = select.epoll()
    for fd in socks:
        ep.register(fd, select.EPOLLIN)
    stdin = sys.stdin.fileno()
    ep.register(stdin, select.EPOLLIN)
    print("ready", flush=True)

    want = clients * events
    seen, busy, busy_max, first, last = 0, 0.0, 0.0, None, None
    deadline = time.monotonic() + timeout
    read = os.read
    stop = False
    cpu0 = time.process_time()
    while seen < want and not stop and time.monotonic() < deadline:
        ready = ep.poll(1.0)
        if not ready:
            continue
        t = time.time()
        for fd, _ in ready:
            if fd == stdin:
                stop = True
                continue
            data = read(fd, 65536)
            if not data:
                ep.unregister(fd)
                continue
            got[fd].append((t, data))
            seen += data.count(b"\nid:")
        done = time.time()
        busy += done - t
        busy_max = max(busy_max, done - t)
        first = first or t
        last = t

    cpu = time.process_time() - cpu0
    latency, missing = {}, 0
    for fd, chunks in got.items():
        # Lines may be split across reads: the chunks are joined, and each
        # `id:` line takes the stamp of the read that completed it.
        buf, stamps = b"", []
        for t, data in chunks:
            start = len(buf)
            buf += data
            stamps.append((start, len(buf), t))
        n, pos, k = 0, 0, 0
        while True:
            i = buf.find(b"\nid:", pos)
            if i < 0:
                break
            end = buf.find(b"\n", i + 1)
            if end < 0:
                break
            while stamps[k][1] <= end:
                k += 1
            pos = end
            if stamps[k][2] == 0.0:
                continue  # came with the head, before the figure's jobs
            event_id = buf[i + 4:end].strip().decode()
            ms = int(event_id.split("-")[0])
            latency.setdefault(event_id, []).append(round(stamps[k][2] * 1000 - ms, 3))
            n += 1
        missing += max(0, events - n)
    for s in socks.values():
        s.close()
    print(json.dumps({"latency_ms": latency, "busy_ms_max": busy_max * 1000, "busy_s": busy,
                      "window_s": (last - first) if first else 0.0, "cpu_s": cpu,
                      "missing": missing}), flush=True)


if __name__ == "__main__":
    main()
