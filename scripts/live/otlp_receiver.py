#!/usr/bin/env python3
"""A stand-in for an OpenTelemetry collector: an OTLP/HTTP receiver of traces.

Debian has no OpenTelemetry Collector package and no registry is reachable
for its image, so this is the receiver: the OTLP protocol's own messages,
decoded with the `opentelemetry-proto` package (PyPI), which the collector
itself is generated from. It takes what a collector's `otlphttp` receiver
takes (`POST /v1/traces`, `application/x-protobuf`), answers as it does
(an `ExportTraceServiceResponse`), and keeps every span it got, which
`GET /spans` lists as JSON (ids in hex, resource attributes by name).

Usage: otlp_receiver.py --port N     (runs until killed)
"""

import argparse
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

SPANS = []
LOCK = threading.Lock()


def value(v):
    kind = v.WhichOneof("value")
    return getattr(v, kind) if kind else None


def decode(body):
    req = ExportTraceServiceRequest()
    req.ParseFromString(body)
    out = []
    for rs in req.resource_spans:
        resource = {a.key: value(a.value) for a in rs.resource.attributes}
        for ss in rs.scope_spans:
            for s in ss.spans:
                out.append({
                    "trace_id": s.trace_id.hex(),
                    "span_id": s.span_id.hex(),
                    "parent_span_id": s.parent_span_id.hex(),
                    "name": s.name,
                    "kind": s.kind,
                    "start_ns": s.start_time_unix_nano,
                    "end_ns": s.end_time_unix_nano,
                    "attributes": {a.key: value(a.value) for a in s.attributes},
                    "resource": resource,
                })
    return out


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path != "/v1/traces":
            self.send_error(404)
            return
        if "protobuf" not in (self.headers.get("Content-Type") or ""):
            self.send_error(415, "OTLP/HTTP protobuf only")
            return
        try:
            spans = decode(body)
        except Exception as e:  # a malformed request is the exporter's bug: say so
            self.send_error(400, f"not an ExportTraceServiceRequest: {e}")
            return
        with LOCK:
            SPANS.extend(spans)
        reply = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def do_GET(self):
        if self.path != "/spans":
            self.send_error(404)
            return
        with LOCK:
            body = json.dumps(SPANS).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    args = ap.parse_args()
    ThreadingHTTPServer(("127.0.0.1", args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
