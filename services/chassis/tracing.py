"""Zipkin tracing shared by the gateway and every service.

Trace context travels as one B3 single-header value (``{trace}-{span}-{1|0}``):
in HTTP as ``b3`` or the ``X-B3-*`` headers, and between Nameko workers as the
context-data key ``b3`` (so the AMQP header ``nameko.b3``). Every server-side
span is a child of the caller's span, never shared with it.

Spans leave through :class:`SpanSender`: a bounded in-memory queue drained by
a background thread that POSTs batches to Zipkin's ``/api/v2/spans``. A slow
or dead collector costs dropped spans, never a slower request.
"""

import json
import logging
import queue
import random
import socket
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass

import requests
from py_zipkin import Encoding, Kind
from py_zipkin.storage import get_default_tracer
from py_zipkin.util import ZipkinAttrs, generate_random_64bit_string, generate_random_128bit_string
from py_zipkin.zipkin import zipkin_span

log = logging.getLogger(__name__)

B3_KEY = "b3"
_HEX = set("0123456789abcdef")


@dataclass(frozen=True)
class TraceContext:
    trace_id: str
    span_id: str
    sampled: bool | None = None


def _is_hex_id(value, lengths):
    return isinstance(value, str) and len(value) in lengths and set(value) <= _HEX


def parse_b3(value):
    """Parse a B3 single header (``trace-span[-sampled[-parent]]``); None if absent or bad."""
    if not value or not isinstance(value, str):
        return None
    parts = value.strip().lower().split("-")
    if len(parts) < 2:
        return None
    trace_id, span_id = parts[0], parts[1]
    if not (_is_hex_id(trace_id, (16, 32)) and _is_hex_id(span_id, (16,))):
        return None
    sampled = None
    if len(parts) > 2:
        sampled = {"1": True, "d": True, "0": False}.get(parts[2])
    return TraceContext(trace_id, span_id, sampled)


def parse_http_headers(headers):
    """A TraceContext from ``b3`` or ``X-B3-TraceId``/``X-B3-SpanId``/``X-B3-Sampled``."""
    single = parse_b3(headers.get("b3"))
    if single:
        return single
    trace_id = (headers.get("X-B3-TraceId") or "").lower()
    span_id = (headers.get("X-B3-SpanId") or "").lower()
    if not (_is_hex_id(trace_id, (16, 32)) and _is_hex_id(span_id, (16,))):
        return None
    flag = headers.get("X-B3-Sampled")
    sampled = {"1": True, "true": True, "0": False, "false": False}.get((flag or "").lower())
    if headers.get("X-B3-Flags") == "1":
        sampled = True
    return TraceContext(trace_id, span_id, sampled)


def format_b3(attrs):
    return f"{attrs.trace_id}-{attrs.span_id}-{'1' if attrs.is_sampled else '0'}"


def current_b3():
    """The B3 value naming the span active here, for an outgoing call; None outside a trace."""
    attrs = get_default_tracer().get_zipkin_attrs()
    return format_b3(attrs) if attrs else None


# How to get a collector, or do without one: in every "collector down" warning.
ZIPKIN_HINT = (
    "Run one locally with `docker compose -f compose/docker-compose.yml up -d zipkin` "
    "(UI at http://127.0.0.1:9411), or set AGORA_ZIPKIN_URL= (empty: tracing.zipkin_url "
    "unset) to send no spans; trace ids stay in the logs and X-B3-TraceId either way."
)


class DiscardSpans:
    """The sender when ``tracing.zipkin_url`` is empty: no collector, no spans."""

    dropped = sent = 0
    collector_down = False

    def __call__(self, payload):
        pass

    def close(self, timeout=None):
        pass


class SpanSender:
    """py_zipkin transport: queue encoded spans, POST them in batches off the request path."""

    def __init__(self, url, batch_size=200, flush_interval=1.0, queue_size=10000, timeout=2.0):
        self.url = url
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.timeout = timeout
        self._queue = queue.Queue(maxsize=queue_size)
        self._thread = None
        self._lock = threading.Lock()
        self._http = None
        self.dropped = 0
        self.sent = 0
        # True from the first failed POST until one succeeds: one warning per outage.
        self.collector_down = False

    def __call__(self, payload):
        # Called by py_zipkin when a local root span ends: must never block.
        self._ensure_thread()
        try:
            self._queue.put_nowait(payload)
        except queue.Full:
            self.dropped += 1

    def _ensure_thread(self):
        if self._thread is None or not self._thread.is_alive():
            with self._lock:
                if self._thread is None or not self._thread.is_alive():
                    self._thread = threading.Thread(
                        target=self._run, name="zipkin-sender", daemon=True
                    )
                    self._thread.start()

    def _run(self):
        self._http = requests.Session()
        batch = []
        deadline = None
        while True:
            # A batch is sent at most flush_interval after its first span; with
            # none waiting, the thread sleeps until one comes (an idle process
            # would otherwise wake every flush_interval for nothing).
            timeout = None if not batch else max(0.0, deadline - time.monotonic())
            try:
                item = self._queue.get(timeout=timeout)
            except queue.Empty:
                item = None
            if item is _STOP:
                self._post(batch)
                return
            if item is not None:
                if not batch:
                    deadline = time.monotonic() + self.flush_interval
                batch.extend(self._decode(item))
            if batch and (len(batch) >= self.batch_size or time.monotonic() >= deadline):
                self._post(batch)
                batch = []

    @staticmethod
    def _decode(payload):
        try:
            spans = json.loads(payload)
        except (TypeError, ValueError):
            return []
        return spans if isinstance(spans, list) else [spans]

    def _post(self, batch):
        if not batch:
            return
        try:
            response = self._http.post(
                self.url,
                data=json.dumps(batch),
                headers={"Content-Type": "application/json"},
                timeout=self.timeout,
            )
            response.raise_for_status()
            self.sent += len(batch)
        except requests.RequestException as exc:
            self.dropped += len(batch)
            if not self.collector_down:
                self.collector_down = True
                log.warning(
                    "zipkin collector at %s unreachable (%s): spans are dropped until it "
                    "answers (said once per outage). %s",
                    self.url,
                    exc.__class__.__name__,
                    ZIPKIN_HINT,
                )
            return
        if self.collector_down:
            self.collector_down = False
            log.info("zipkin collector at %s answers again: spans are sent", self.url)

    def close(self, timeout=3.0):
        """Flush what is queued and stop the sender thread."""
        if self._thread is not None and self._thread.is_alive():
            try:
                self._queue.put(_STOP, timeout=timeout)
            except queue.Full:
                return
            self._thread.join(timeout)


_STOP = object()


class Tracer:
    """Starts spans for one process (one ``service_name``) with one sender."""

    def __init__(self, service_name, settings, sender=None):
        self.service_name = service_name
        self.sample_rate = float(settings["sample_rate"])
        self.host = _own_address()
        if sender is None and not settings["zipkin_url"]:
            # No collector: trace ids are still made and passed on (logs, the
            # X-B3-TraceId header), but no span is recorded.
            sender, self.sample_rate = DiscardSpans(), 0.0
        self.sender = sender or SpanSender(
            settings["zipkin_url"],
            batch_size=settings["batch_size"],
            flush_interval=settings["flush_interval"],
            queue_size=settings["queue_size"],
            timeout=settings["send_timeout"],
        )

    def _attrs_for(self, parent):
        if parent is None:
            return ZipkinAttrs(
                trace_id=generate_random_128bit_string(),
                span_id=generate_random_64bit_string(),
                parent_span_id=None,
                flags="0",
                is_sampled=random.random() < self.sample_rate,
            )
        sampled = parent.sampled
        if sampled is None:
            sampled = random.random() < self.sample_rate
        return ZipkinAttrs(
            trace_id=parent.trace_id,
            span_id=generate_random_64bit_string(),
            parent_span_id=parent.span_id,
            flags="0",
            is_sampled=sampled,
        )

    def start_root(self, name, parent=None, tags=None):
        """Start this process's local root span for one request or worker; returns it started.

        It is a SERVER span: py_zipkin reports a local root only as SERVER or
        CLIENT, whatever kind it is given. The caller must ``stop()`` it in the
        same thread or greenlet.
        """
        span = zipkin_span(
            service_name=self.service_name,
            span_name=name,
            zipkin_attrs=self._attrs_for(parent),
            transport_handler=self.sender,
            kind=Kind.SERVER,
            host=self.host,
            binary_annotations=dict(tags or {}),
            report_root_timestamp=True,
            encoding=Encoding.V2_JSON,
        )
        return span.start()

    @contextmanager
    def client_span(self, name, tags=None):
        """A child span for one outgoing call; yields the B3 value to send with it."""
        if get_default_tracer().get_zipkin_attrs() is None:
            yield None
            return
        span = zipkin_span(
            service_name=self.service_name,
            span_name=name,
            kind=Kind.CLIENT,
            host=self.host,
            binary_annotations=dict(tags or {}),
        )
        with span:
            try:
                yield format_b3(span.zipkin_attrs)
            except BaseException as exc:
                span.update_binary_annotations({"error": exc.__class__.__name__})
                raise

    def start_client_span(self, name):
        """Start a child span for a call answered later: ``(span, b3)``, or
        ``(None, None)`` outside a trace.

        Unlike ``client_span`` it is not left as the current span, so calls
        started before it ends are its siblings, not its children; end it with
        ``finish_client_span`` in the same thread.
        """
        current = get_default_tracer()
        if current.get_zipkin_attrs() is None:
            return None, None
        span = zipkin_span(service_name=self.service_name, span_name=name, kind=Kind.CLIENT)
        span.start()
        current.pop_zipkin_attrs()
        return span, format_b3(span.zipkin_attrs)

    @staticmethod
    def finish_client_span(span, error=None):
        if span is None:
            return
        if error is not None:
            span.update_binary_annotations({"error": error.__class__.__name__})
        # stop() pops the span's context: put it back for that.
        get_default_tracer().push_zipkin_attrs(span.zipkin_attrs)
        span.stop()

    def close(self):
        self.sender.close()


def _own_address():
    """The span endpoint's address, as py_zipkin finds it. Given to every span:
    left out, py_zipkin resolves the host name at each span's start and stop,
    through eventlet's pure-Python resolver in a service."""
    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        return "127.0.0.1"


def mark_error(span, exc):
    """Tag ``span`` with the error's class name; tracing never breaks the caller."""
    if span is None:
        return
    try:
        span.update_binary_annotations({"error": exc.__class__.__name__})
    except Exception:
        log.debug("could not tag span", exc_info=True)
