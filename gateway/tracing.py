"""One Zipkin server span per request, continuing an incoming B3 context, and
one access line per request (``gateway.access``): method, route template,
status and duration, under the request's trace id."""

import logging
import time

from flask import g, request

from services.chassis.tracing import mark_error, parse_http_headers

log = logging.getLogger("gateway.access")


def init_tracing(app, tracer):
    @app.before_request
    def start_span():
        g.started = time.perf_counter()
        rule = request.url_rule.rule if request.url_rule else "unmatched"
        g.span = tracer.start_root(
            f"{request.method} {rule}",
            parent=parse_http_headers(request.headers),
            tags={"http.method": request.method, "http.path": request.path},
        )

    @app.after_request
    def add_trace_header(response):
        span = g.get("span")
        if span is not None and span.zipkin_attrs is not None:
            response.headers["X-B3-TraceId"] = span.zipkin_attrs.trace_id
            span.update_binary_annotations({"http.status_code": str(response.status_code)})
            if response.status_code >= 500:
                span.update_binary_annotations({"error": str(response.status_code)})
        duration_ms = round((time.perf_counter() - g.get("started", 0)) * 1000, 2)
        # The route template (no ids) says which endpoint; the path, which resource.
        route = request.url_rule.rule if request.url_rule else "unmatched"
        log.info(
            "%s %s %s %.1f ms",
            request.method,
            route,
            response.status_code,
            duration_ms,
            extra={
                "http_method": request.method,
                "route": route,
                "path": request.path,
                "status": response.status_code,
                "duration_ms": duration_ms,
            },
        )
        return response

    @app.teardown_request
    def stop_span(exc):
        span = g.pop("span", None)
        if span is None:
            return
        if exc is not None:
            mark_error(span, exc)
        span.stop()
