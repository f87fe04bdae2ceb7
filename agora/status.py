"""``agora status`` (``make status``): what runs, in a terminal table.

Every service with its live instances (from the registry: process, pid, host,
age, last heartbeat, metrics endpoint), its RPC queue's depth and consumers and
the gateway's circuit breaker for it (read from the gateway workers' metrics);
the event handler queues' depths and consumers; each service's dead letters;
the gateway's worker processes and whether it answers ``/readyz``. What cannot
be reached (Redis, RabbitMQ, the gateway) is said, not raised: the command
works, and is most useful, when the platform is down.

``collect(config)`` gathers (I/O); ``render(status)`` lays it out (pure).
"""

import datetime
import time

from services.chassis.deadletter import dead_letter_queue_name

GATEWAY = "gateway"


def _reason(exc):
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    name = exc.__class__.__name__
    return f"{name}: {text}" if text else name


def handler_queues(service):
    """The queues ``service``'s event handlers consume (shared by its
    instances; broadcast queues are per instance and come and go with them)."""
    from nameko.events import BROADCAST, SINGLETON

    from agora.broker import wiring_of

    queues = []
    for source, event_type, method, handler_type in wiring_of(service).handles:
        if handler_type == BROADCAST:
            continue
        if handler_type == SINGLETON:
            queues.append(f"evt-{source}-{event_type}")
        else:
            queues.append(f"evt-{source}-{event_type}--{service}.{method}")
    return sorted(queues)


def _instances(config):
    from services.chassis.discovery import registry_from_config

    registry = registry_from_config(config)
    try:
        return registry.instances(), None
    except Exception as exc:
        return None, f"Redis (the registry) is unreachable: {_reason(exc)}"
    finally:
        registry.redis.close()


def _queues(config, names):
    """``{queue: (messages, consumers) or None if it does not exist}``, or an error."""
    from amqp.exceptions import NotAllowed, NotFound
    from kombu import Connection

    from services.chassis.config import amqp_vhost

    found = {}
    try:
        with Connection(config["amqp"]["uri"], connect_timeout=3) as connection:
            connection.connect()
            channel = connection.channel()
            for name in names:
                try:
                    _queue, messages, consumers = channel.queue_declare(name, passive=True)
                    found[name] = (messages, consumers)
                except NotFound:
                    found[name] = None
                    channel = connection.channel()  # the broker closed it on the 404
    except NotAllowed:
        vhost = amqp_vhost(config)
        return None, f"RabbitMQ has no vhost {vhost!r} (`agora setup` or `make run` creates it)"
    except Exception as exc:
        return None, f"RabbitMQ is unreachable: {_reason(exc)}"
    return found, None


def _readiness(config):
    import requests

    gateway = config["gateway"]
    url = f"http://{gateway['host']}:{gateway['port']}/readyz"
    try:
        response = requests.get(url, timeout=config["gateway"]["readiness_timeout"] + 1)
    except requests.RequestException as exc:
        return {"url": url, "ready": False, "detail": f"not answering ({exc.__class__.__name__})"}
    if response.status_code == 200:
        return {"url": url, "ready": True, "detail": "ready"}
    return {"url": url, "ready": False, "detail": f"not ready (HTTP {response.status_code})"}


BREAKER_STATES = {0: "closed", 1: "half_open", 2: "open"}


def gateway_breakers(instances, timeout=2.0):
    """``{service: state}`` of the gateway's circuit breakers, read from each
    worker's ``agora_gateway_breaker_state`` gauge on its /metrics endpoint;
    each worker has its own breakers, and the worst state is shown."""
    import requests
    from prometheus_client.parser import text_string_to_metric_families

    worst = {}
    for worker in instances or ():
        if worker["service"] != GATEWAY or not worker.get("metrics_url"):
            continue
        try:
            text = requests.get(worker["metrics_url"], timeout=timeout).text
            families = list(text_string_to_metric_families(text))
        except (requests.RequestException, ValueError):
            continue  # a worker that just exited, or not a metrics endpoint
        for family in families:
            if family.name != "agora_gateway_breaker_state":
                continue
            for sample in family.samples:
                service, value = sample.labels.get("service"), int(sample.value)
                if service and value in BREAKER_STATES:
                    worst[service] = max(worst.get(service, 0), value)
    return {service: BREAKER_STATES[value] for service, value in worst.items()}


def collect(config, services):
    """Everything ``render`` shows, for ``services`` (names), as plain data."""
    events = {service: handler_queues(service) for service in services}
    # A service whose handlers failed for good parks the events in its dead letters.
    dead = {s: dead_letter_queue_name(s) for s in services if events[s]}
    names = [f"rpc-{s}" for s in services] + [q for s in services for q in events[s]]
    names += list(dead.values())
    instances, registry_error = _instances(config)
    queues, broker_error = _queues(config, names)
    return {
        "services": list(services),
        "instances": instances,
        "registry_error": registry_error,
        "queues": queues,
        "broker_error": broker_error,
        "event_queues": events,
        "dead_letter_queues": dead,
        "breakers": gateway_breakers(instances),
        "gateway": _readiness(config),
        "now": time.time(),
    }


def _since(iso, now):
    moment = datetime.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
    return duration(max(0.0, now - moment))


def duration(seconds):
    """``42s``, ``5m03s``, ``2h07m``, ``3d04h``: short and sortable by eye."""
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


def table(header, rows):
    """Columns left-aligned to their widest cell, two spaces apart."""
    rows = [[str(cell) for cell in row] for row in rows]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = []
    for row in [header, *rows]:
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def _queue_cells(status, name):
    if status["queues"] is None:
        return ["?", "?"]
    state = status["queues"].get(name)
    if state is None:
        return ["-", "-"]  # not declared yet: its service never ran on this vhost
    return [state[0], state[1]]


def render(status):
    """The report as text; every part says what it could not find out and why."""
    now = status["now"]
    out = []
    problems = [e for e in (status["registry_error"], status["broker_error"]) if e]

    rows = []
    instances = status["instances"]
    for service in [*status["services"], GATEWAY]:
        own = [] if instances is None else [i for i in instances if i["service"] == service]
        rpc = ["", "", ""]
        if service != GATEWAY:
            rpc = [*_queue_cells(status, f"rpc-{service}"), status["breakers"].get(service, "-")]
        if not own:
            live = "?" if instances is None else "none running"
            rows.append([service, live, "", "", "", "", "", *rpc])
            continue
        for n, instance in enumerate(own):
            rows.append(
                [
                    service if n == 0 else "",
                    instance["process"],
                    instance["pid"],
                    instance["host"],
                    _since(instance["started_at"], now),
                    _since(instance["last_heartbeat"], now) + " ago",
                    instance["metrics_url"] or "-",
                    *(rpc if n == 0 else ["", "", ""]),
                ]
            )
    header = ["SERVICE", "PROCESS", "PID", "HOST", "AGE", "HEARTBEAT", "METRICS"]
    header += ["RPC QUEUE", "CONSUMERS", "BREAKER"]
    out += ["Services", table(header, rows), ""]

    rows = []
    for service in status["services"]:
        for queue in status["event_queues"][service]:
            rows.append([queue, *_queue_cells(status, queue)])
    out += ["Event queues", table(["QUEUE", "MESSAGES", "CONSUMERS"], rows), ""]

    rows = [
        [service, queue, _queue_cells(status, queue)[0]]
        for service, queue in status["dead_letter_queues"].items()
    ]
    out += ["Dead letters", table(["SERVICE", "QUEUE", "MESSAGES"], rows), ""]

    gateway = status["gateway"]
    out.append(f"Gateway {gateway['url']}: {gateway['detail']}")
    if instances is not None:
        down = [s for s in status["services"] if not any(i["service"] == s for i in instances)]
        if down:
            problems.append(f"no live instance of: {', '.join(down)}")
    if not gateway["ready"]:
        problems.append(f"the gateway is {gateway['detail']}")
    if problems:
        out += ["", "Down:"] + [f"  {problem}" for problem in problems]
    return "\n".join(out) + "\n"
