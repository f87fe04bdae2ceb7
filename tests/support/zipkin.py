"""A test Zipkin collector: accepts ``POST /api/v2/spans`` and keeps the spans."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class ZipkinCollector:
    def __init__(self, host="127.0.0.1"):
        collector = self
        self.spans = []
        self.lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                if self.path != "/api/v2/spans":
                    self.send_response(404)
                    self.end_headers()
                    return
                try:
                    spans = json.loads(body)
                except ValueError:
                    self.send_response(400)
                    self.end_headers()
                    return
                with collector.lock:
                    collector.spans.extend(spans)
                self.send_response(202)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://{host}:{self.server.server_port}/api/v2/spans"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def trace(self, trace_id, count, timeout=15.0):
        """Wait until at least ``count`` spans of ``trace_id`` arrived; return them."""
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                found = [s for s in self.spans if s.get("traceId") == trace_id]
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.1)
