"""The ``agora`` command: everything the Makefile does, in one place.

agora check            are RabbitMQ, PostgreSQL and Redis reachable?
agora setup            check, create the vhost and databases, migrate
agora migrate          create the databases and apply every migration
agora run              setup, build the storefront (web/), start every service and
                       the gateway, seed demo data
agora service NAME [--instance NAME-N]
                       run one service (one instance of it): `nameko run` with a
                       bounded graceful stop (services/chassis/runner.py)
agora gateway          run the gateway with gunicorn (gthread)
agora seed             load demo data through RPC (services must be running)
agora shell            `nameko shell` on the platform's vhost and config
agora rotate-keys      new token-signing key (services must be running)
agora login            tokens through the code flow with PKCE (admins: the only way)
agora dead-letters     list | show ID | replay [ID] | discard ID  [--service NAME]
agora prometheus       a local Prometheus over what `agora run` started (docs/observability.md)
agora trace TRACE_ID [--log-dir DIR]
                       every log line of one trace across all processes (the
                       files `agora run` writes), in time order, and its Zipkin link
agora reset [--yes]    remove what `agora run` created: the vhost and broker users,
                       the databases and roles, the Redis keys, the local state
agora asyncapi         write docs/asyncapi.yaml from the services' EVENTS contracts
agora status           what runs: instances, queues, dead letters, the gateway
agora broker-definitions [--with-operator]
                       the broker users and permissions as RabbitMQ definitions (JSON)
agora web-build [--force]
                       npm ci (when the lockfile changed) and the Vite build into
                       web/dist (when the sources changed), which the gateway serves at /
agora web-dev          Vite's dev server on 127.0.0.1:5173 against the gateway's public
                       URL (VITE_API_BASE_URL), for front-end work with hot reload
"""

import argparse
import atexit
import json
import os
import re
import sys
import time
from pathlib import Path

import yaml

from services.chassis.eventlet_notice import ignore_eventlet_notice

# Before anything imports eventlet (services.chassis.eventlet_notice says why).
ignore_eventlet_notice()

from services.chassis.config import (  # noqa: E402
    ROOT,
    ConfigError,
    amqp_vhost,
    load_config,
    nameko_config,
    public_url,
)
from services.chassis.files import UnsafeStateFolder, private_folder, write_private  # noqa: E402
from services.chassis.logs import logging_config  # noqa: E402

SERVICES = {
    "users": "services.users.service:UsersService",
    "auth": "services.auth.service:AuthService",
    "catalog": "services.catalog.service:CatalogService",
    "inventory": "services.inventory.service:InventoryService",
    "orders": "services.orders.service:OrdersService",
    "billing": "services.billing.service:BillingService",
    "notifications": "services.notifications.service:NotificationsService",
}


def instance_names(config, service):
    """The process names of ``service``'s instances (``services.<name>.instances``):
    ``orders`` when it runs alone, ``orders-1``, ``orders-2``... when it runs several."""
    count = config["services"][service]["instances"]
    return [service] if count == 1 else [f"{service}-{n}" for n in range(1, count + 1)]


def state_dir():
    """Local, git-ignored state: rendered configs (they hold secrets)."""
    return Path(os.environ.get("AGORA_STATE_DIR", ROOT / ".agora"))


def log_dir():
    """Where `agora run` writes each process's log lines (``<name>.log``, rotated)."""
    return state_dir() / "logs"


def fail(message, code=1):
    print(message, file=sys.stderr)
    sys.exit(code)


def config_or_exit(process=None):
    try:
        return load_config(process=process)
    except ConfigError as exc:
        fail(str(exc), 2)


def render_nameko_config(config, service, instance=None):
    """Write the validated config for ``nameko run``/``nameko shell`` (0600: it holds
    secrets): only what ``service`` reads (services.chassis.config.settings_paths).
    An ``instance`` (``orders-2``) is named in its logs and health() answers."""
    settings = nameko_config(config, service)
    settings["LOGGING"] = logging_config(service, config["logging"]["level"], instance)
    if instance is not None:
        settings["INSTANCE"] = instance
    name = instance or service
    return write_state_file(config, f"{name}.yaml", yaml.safe_dump(settings, sort_keys=False))


def write_state_file(config, name, text):
    """A private file under .agora/run/<vhost>/ (mode 0600: it may hold secrets),
    created afresh without following a symlink (services.chassis.files)."""
    folder = private_folder(state_dir() / "run" / amqp_vhost(config).replace("/", "_"))
    return write_private(folder / name, text)


def cmd_check(config, args):
    from agora.infra import preflight

    problems = preflight(config)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        sys.exit(1)
    print("agora: RabbitMQ, PostgreSQL and Redis are reachable")


def cmd_migrate(config, args):
    from services.chassis.migrations import upgrade

    for service in SERVICES:
        upgrade(config, service)
        print(f"agora: {service} database migrated")


def cmd_setup(config, args):
    from agora.infra import VhostError, ensure_vhost

    cmd_check(config, args)
    try:
        ensure_vhost(config)
    except VhostError as exc:
        fail(f"agora: cannot create RabbitMQ vhost {amqp_vhost(config)!r} and its users: {exc}")
    cmd_migrate(config, args)


def cmd_service(config, args):
    if args.name not in SERVICES:
        fail(f"agora: unknown service {args.name!r} (one of: {', '.join(SERVICES)})", 2)
    instance = args.instance or args.name
    if instance not in instance_names(config, args.name):
        names = ", ".join(instance_names(config, args.name))
        fail(f"agora: {args.name} has no instance {instance!r} (one of: {names})", 2)
    path = render_nameko_config(config, args.name, instance)
    # nameko run, with a bounded graceful stop (services/chassis/runner.py).
    argv = [sys.executable, "-m", "services.chassis.runner", str(path), SERVICES[args.name]]
    os.execv(sys.executable, argv)


def gateway_argv(config):
    gateway = config["gateway"]
    log_config = write_state_file(
        config,
        "gateway-logging.json",
        json.dumps(logging_config("gateway", config["logging"]["level"])),
    )
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "--worker-class",
        "gthread",
        "--workers",
        str(gateway["workers"]),
        "--threads",
        str(gateway["threads"]),
        "--bind",
        f"{gateway['host']}:{gateway['port']}",
        "--no-control-socket",
        # Numbers the workers (gateway.workers): each serves /metrics on a port of its own.
        "--config",
        "python:gateway.workers",
        "--graceful-timeout",
        str(gateway["graceful_timeout"]),
        "--log-config-json",
        str(log_config),
        "gateway.app:create_app()",
    ]


def cmd_gateway(config, args):
    os.execv(sys.executable, gateway_argv(config))


def wait_for_services(config, names, timeout=90.0, children=()):
    """Until every instance of every service answers health(); raises TimeoutError
    naming the laggards. The broker hands a service's calls to its consumers in
    turn, so a service of N instances is asked until N different ones answered.

    A service is asked only once its RPC queue has a consumer: a call to a
    queue not declared yet is returned unroutable, and py-amqp then logged
    "Received method (60, 80) during closing channel 1" for each (dozens per
    `make run`) while the call waited out its timeout for nothing."""
    from nameko.standalone.rpc import ClusterRpcProxy

    from agora.infra import operator_connection, queue_consumers

    deadline = time.monotonic() + timeout
    pending = {instance: name for name in names for instance in instance_names(config, name)}
    broker = operator_connection(config)
    try:
        with ClusterRpcProxy(nameko_config(config, "agora-cli"), timeout=2) as rpc:
            while pending:
                for child in children:
                    if not child.alive():
                        raise RuntimeError(
                            f"{child.spec.name} exited with code {child.process.returncode}"
                        )
                for name in sorted(set(pending.values())):
                    if not queue_consumers(broker, f"rpc-{name}"):
                        continue
                    try:
                        report = rpc[name].health()
                    except Exception:
                        continue
                    if report["status"] == "ok":
                        pending.pop(report.get("instance", name), None)
                if pending and time.monotonic() > deadline:
                    raise TimeoutError(f"no healthy answer from: {', '.join(sorted(pending))}")
                if pending:
                    time.sleep(0.3)
    finally:
        broker.close()


def wait_for_http(url, timeout=60.0, child=None):
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child is not None and not child.alive():
            raise RuntimeError(f"{child.spec.name} exited with code {child.process.returncode}")
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"{url} did not answer 200 within {timeout:.0f}s")


def cmd_seed(config, args):
    wait_for_services(config, SERVICES, timeout=120)
    seed_demo_data(config)


def seed_demo_data(config):
    """Load demo data into services already known to be healthy."""
    from nameko.standalone.rpc import ClusterRpcProxy

    from agora.seed import seed

    if config["demo"] is None:
        fail(f"agora: demo data is disabled in the {config['environment']} environment", 2)
    with ClusterRpcProxy(nameko_config(config, "agora-cli"), timeout=30) as rpc:
        created = seed(rpc, config)
    print(
        f"agora: demo data ready ({created['products']} products, "
        f"{created['users']} users, {created['clients']} OAuth2 clients created now)"
    )


# A process that has not exited this long after its own stop bound is SIGKILLed.
STOP_MARGIN = 2.0


def service_spec(service, instance, env=None, config=None):
    """One instance of a service as a process to start: ``agora service``."""
    from agora.supervisor import ProcessSpec

    argv = [sys.executable, "-m", "agora", "service", service, "--instance", instance]
    spec = ProcessSpec(instance, argv, env or {})
    if config is not None:
        spec.grace = config["shutdown_timeout"] + STOP_MARGIN
    return spec


def gateway_spec(config, env=None):
    """The gateway (gunicorn) as a process to start."""
    from agora.supervisor import ProcessSpec

    grace = config["gateway"]["graceful_timeout"] + STOP_MARGIN
    return ProcessSpec("gateway", gateway_argv(config), env or {}, grace=grace)


def service_specs(config):
    """Every instance of every service (``services.<name>.instances`` each)."""
    return [
        service_spec(service, instance, config=config)
        for service in SERVICES
        for instance in instance_names(config, service)
    ]


def cmd_run(config, args):
    from agora.supervisor import Supervisor, interrupt_on_signals
    from agora.targets import PrometheusTargets, targets_path

    interrupt_on_signals()
    cmd_setup(config, args)
    build_web_or_explain()
    # Every live process's /metrics for Prometheus (file-based discovery),
    # rewritten from the registry while the platform runs, removed on exit.
    targets = PrometheusTargets(config, targets_path(state_dir())).start()
    atexit.register(targets.stop)
    files = config["logging"]["files"]
    supervisor = Supervisor(
        cwd=str(ROOT),
        log_dir=log_dir() if files["enabled"] else None,
        log_max_bytes=files["max_bytes"],
        log_backups=files["backups"],
    )
    try:
        services = [supervisor.start(spec) for spec in service_specs(config)]
        wait_for_services(config, SERVICES, children=services)
        seed_demo_data(config)
        gateway = supervisor.start(gateway_spec(config))
        bound = f"http://{config['gateway']['host']}:{config['gateway']['port']}"
        wait_for_http(f"{bound}/readyz", child=gateway)
        base = public_url(config)
    except (RuntimeError, TimeoutError) as exc:
        supervisor.stop_all()
        fail(f"agora: the platform did not start: {exc}")
    except KeyboardInterrupt:
        supervisor.stop_all()
        sys.exit(130)
    print(
        f"\nagora: the platform is up at {base} (vhost {amqp_vhost(config)!r}); "
        "Ctrl-C stops it.\n"
        f"  storefront: {base}/ (sign in as {demo_user(config)})\n"
        f"  try: curl {base}/v1/products\n"
        f"       curl {base}/readyz\n"
        f"  API docs: {base}/docs\n" + login_hint(config, base),
        flush=True,
    )
    supervisor.watch()


def demo_user(config):
    demo = config["demo"]
    return "a registered user" if demo is None else demo["user_email"]


def build_web_or_explain():
    """Build the storefront if its sources changed (agora/web.py); a missing npm
    or a failed build is said plainly and the API starts anyway (``/`` then
    answers 503 web_not_built)."""
    from agora import web

    try:
        if not (web.WEB / "package-lock.json").is_file():
            raise web.WebBuildError(f"{web.WEB} holds no package-lock.json: nothing to build")
        stale = web.is_stale() or not web.packages_current()
        if stale:
            print("agora: building the storefront (web/: npm ci, vite build)...", flush=True)
        started = time.monotonic()
        dist = web.build()
    except (web.WebBuildError, OSError) as exc:
        print(
            f"agora: the storefront could not be built, so / answers 503 web_not_built "
            f"until it is (the API starts anyway):\n{exc}\n"
            "  fix it, then: .venv/bin/python -m agora web-build (or restart make run)",
            file=sys.stderr,
            flush=True,
        )
        return False
    if stale:
        print(f"agora: storefront built in {time.monotonic() - started:.0f}s ({dist})", flush=True)
    else:
        print(f"agora: storefront up to date ({dist})", flush=True)
    return True


def cmd_web_build(config, args):
    from agora import web

    if not (web.WEB / "package-lock.json").is_file():
        fail(f"agora web-build: {web.WEB} holds no package-lock.json: nothing to build")
    try:
        print("agora: npm ci (if the lockfile changed) and vite build...", flush=True)
        dist = web.build(force=args.force)
    except web.WebBuildError as exc:
        fail(f"agora web-build: {exc}")
    print(f"agora: storefront built: {dist} (served at {public_url(config)}/ by the gateway)")


# The Vite dev server's address: one of the development CORS origins, whose
# /auth/callback `agora seed` registers for the web client.
WEB_DEV_HOST = "127.0.0.1"
WEB_DEV_PORT = 5173


def cmd_web_dev(config, args):
    """Vite's dev server (hot reload) for web/, calling the gateway at its public
    URL; the gateway must run (make run) and allow this origin (gateway.cors)."""
    from agora import web

    origin = f"http://{WEB_DEV_HOST}:{WEB_DEV_PORT}"
    if origin not in config["gateway"]["cors"]["origins"]:
        print(
            f"agora: warning: {origin} is not in gateway.cors.origins "
            f"({config['environment']} environment): the gateway will refuse its calls",
            file=sys.stderr,
        )
    if not (web.WEB / "package-lock.json").is_file():
        fail(f"agora web-dev: {web.WEB} holds no package-lock.json")
    try:
        web.ensure_packages()
        npm = web.npm()
    except web.WebBuildError as exc:
        fail(f"agora web-dev: {exc}")
    base = public_url(config)
    print(
        f"agora: Vite dev server on {origin}/ against the gateway at {base} "
        "(start it with make run); Ctrl-C stops it.",
        flush=True,
    )
    env = {**os.environ, "VITE_API_BASE_URL": base}
    os.chdir(web.WEB)
    argv = [npm, "run", "dev", "--", "--host", WEB_DEV_HOST, "--port", str(WEB_DEV_PORT)]
    os.execve(npm, argv + ["--strictPort"], env)


def _env_default(name):
    """The development default the base config gives ``${name:default}``."""
    text = (ROOT / "config" / "agora.yaml").read_text()
    match = re.search(r"\$\{" + name + r":([^}]*)\}", text)
    return match.group(1) if match else ""


def login_hint(config, base):
    """How to log in as the demo user: shell variables, so a password set in the
    environment is used and never printed."""
    demo = config["demo"]
    if demo is None:
        return ""
    password = f"${{AGORA_DEMO_PASSWORD:-{_env_default('AGORA_DEMO_PASSWORD')}}}"
    customer = ""
    if config["auth"]["password_grant"]:
        customer = (
            f"  log in as {demo['user_email']} (password grant, customer scopes only, "
            f"public client {demo['web_client_id']}):\n"
            f"       TOKEN=$(curl -s {base}/oauth/token -d grant_type=password \\\n"
            f"         -d client_id={demo['web_client_id']} -d username={demo['user_email']} \\\n"
            f'         --data-urlencode "password={password}" \\\n'
            "         | python3 -c 'import json,sys; print(json.load(sys.stdin)"
            '["access_token"])\')\n'
            f'       curl {base}/v1/users/me -H "Authorization: Bearer $TOKEN"\n'
        )
    return customer + (
        f"  admin scopes only through the code flow with PKCE: ADMIN_TOKEN=$(make -s login)\n"
        f"       (opens {base}/oauth/authorize; log in as {demo['admin_email']}, "
        "password AGORA_ADMIN_PASSWORD)\n"
        f"  integrations: client {demo['integration_client_id']} (AGORA_INTEGRATION_SECRET)\n"
    )


def _can_open_a_browser():
    """A graphical session to open one in (on a bare terminal webbrowser would
    start a text browser in this very terminal)."""
    return sys.platform in ("darwin", "win32") or bool(
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    )


def cmd_login(config, args):
    """Authorization code flow with PKCE on a loopback redirect (RFC 8252): the
    access token on stdout (the whole response with --json), the rest on stderr."""
    import webbrowser

    from agora.login import LoginError, login
    from services.auth.schemas import SCOPES

    client_id = args.client_id or (config["demo"] or {}).get("web_client_id")
    if not client_id:
        fail("agora login: name the public client with --client-id", 2)
    base = args.base_url or public_url(config)
    scope = args.scope or " ".join(SCOPES)

    def show(url):
        print(
            f"agora: open this URL, log in and approve (waiting on a loopback port):\n  {url}",
            file=sys.stderr,
            flush=True,
        )

    browse = None if args.no_browser or not _can_open_a_browser() else webbrowser.open
    try:
        token = login(
            base, client_id, scope, port=args.port, timeout=args.timeout, show=show, browse=browse
        )
    except (LoginError, OSError) as exc:
        fail(f"agora login: {exc}")
    print(f"agora: granted scope: {token['scope']}", file=sys.stderr)
    print(json.dumps(token, indent=2) if args.json else token["access_token"], flush=True)


def cmd_rotate_keys(config, args):
    """Create a new signing key; the old ones stay published until their tokens expire."""
    from nameko.standalone.rpc import ClusterRpcProxy

    wait_for_services(config, ("auth",), timeout=30)
    with ClusterRpcProxy(nameko_config(config, "agora-cli"), timeout=60) as rpc:
        rotated = rpc.auth.rotate_signing_key()
        keys = rpc.auth.signing_keys()
    print(f"agora: new signing key {rotated['kid']} is current")
    for key in keys:
        state = "current" if key["current"] else ("published" if key["published"] else "dropped")
        print(f"  {key['kid']}  created {key['created_at']}  {state}")


def cmd_shell(config, args):
    path = render_nameko_config(config, "shell")
    # The dead-letter helpers are in the shell's namespace (agora/shell_startup.py).
    os.environ["PYTHONSTARTUP"] = str(ROOT / "agora" / "shell_startup.py")
    argv = [sys.executable, "-m", "agora.nameko_run", "shell", "--config", str(path)]
    os.execv(sys.executable, argv)


def cmd_dead_letters(config, args):
    from agora import deadletters

    services = [args.service] if args.service else list(deadletters.EVENT_SERVICES)
    if args.action == "list":
        letters = [d for s in services for d in deadletters.dead_letters(config, s)]
        for letter in letters:
            print(json.dumps(letter))
        print(f"agora: {len(letters)} dead letter(s)", file=sys.stderr)
        return
    if args.action in ("show", "discard") and not args.event_id:
        fail(f"agora: dead-letters {args.action} needs an event id", 2)
    if args.action == "show":
        for service in services:
            letter = deadletters.show_dead_letter(config, service, args.event_id)
            if letter:
                print(json.dumps(letter, indent=2, default=str))
                return
        fail(f"agora: no dead letter {args.event_id}")
    if args.action == "discard":
        if not any(deadletters.discard_dead_letter(config, s, args.event_id) for s in services):
            fail(f"agora: no dead letter {args.event_id}")
        print(f"agora: dead letter {args.event_id} discarded")
        return
    count = sum(deadletters.replay_dead_letters(config, s, args.event_id) for s in services)
    print(f"agora: {count} dead letter(s) replayed")


def cmd_status(config, args):
    """What runs: services, instances, queues, dead letters, the gateway."""
    from agora.status import collect, render

    print(render(collect(config, SERVICES)), end="", flush=True)


def cmd_broker_definitions(config, args):
    """Print what ``agora setup`` imports, for a broker rabbitmqctl cannot reach:
    ``rabbitmqctl import_definitions``, the management API, or ``load_definitions``
    at boot (then ``--with-operator``: a broker that loads definitions at boot
    does not create its default user)."""
    from agora.broker import definitions, operator_user
    from agora.infra import _amqp_parts

    _host, _port, user, password, vhost = _amqp_parts(config["amqp"]["uri"])
    document = definitions(config, vhost, operator=user)
    if args.with_operator:
        document["users"].append(operator_user(user, password))
    print(json.dumps(document, indent=2))


def cmd_prometheus(config, args):
    """Serve config/prometheus, copied to <state dir>/prometheus/ beside the targets
    `agora run` writes there, with its data under it too; installs Debian's
    prometheus package first where it is missing."""
    import socket

    from agora.platform import free_port
    from agora.prometheus import PrometheusUnavailable, ensure_prometheus, prepare, server_argv

    try:
        binaries = ensure_prometheus()
    except PrometheusUnavailable as exc:
        fail(f"agora: {exc}")
    settings = config["prometheus"]
    host, port = settings["host"], settings["port"] or free_port()
    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError as exc:
            fail(
                f"agora: cannot serve Prometheus on {host}:{port} ({exc}); "
                "choose another port with AGORA_PROMETHEUS_PORT (0: any free port)"
            )
    folder = state_dir() / "prometheus"
    prepare(folder)
    base = f"http://{host}:{port}"
    if not any((folder / "targets").glob("*.json")):
        print(
            f"agora: no targets in {folder / 'targets'} yet: `make run` writes them",
            file=sys.stderr,
        )
    print(
        f"agora: Prometheus at {base} (data in {folder / 'data'}); Ctrl-C stops it.\n"
        f"  targets: {base}/targets   alerts: {base}/alerts\n"
        f"  Grafana on it: AGORA_PROMETHEUS_URL={base} (docs/observability.md)",
        flush=True,
    )
    argv = server_argv(binaries, folder, host, port, settings["retention"])
    os.execv(binaries.prometheus, argv)


def cmd_trace(config, args):
    from agora.trace import TRACE_ID, report

    trace_id = args.trace_id.strip().lower()
    if not TRACE_ID.match(trace_id):
        fail(f"agora trace: {args.trace_id!r} is not a trace id (16 or 32 hex digits)", 2)
    folder = Path(args.log_dir) if args.log_dir else log_dir()
    lines, found = report(folder, trace_id, config["tracing"]["zipkin_url"])
    print("\n".join(lines), flush=True)
    if not found:
        sys.exit(1)


def cmd_reset(config, args):
    """Remove what `agora run` created, after a confirmation (``--yes`` skips it)."""
    from agora.reset import ResetRefused, plan, reset, running_services

    try:
        target = plan(config, SERVICES, state_dir())
    except ResetRefused as exc:
        fail(f"agora reset: {exc}", 2)
    running = running_services(config, SERVICES)
    if running:
        fail(
            f"agora reset: the platform is running on vhost {target.vhost!r} "
            f"({', '.join(running)} consuming): stop it first (Ctrl-C where `make run` runs)"
        )
    print("agora reset removes:\n" + "\n".join(f"  - {line}" for line in target.describe()))
    if not args.yes:
        try:
            answer = input("Type 'yes' to remove them: ")
        except EOFError:
            answer = ""
        if answer.strip().lower() != "yes":
            fail("agora reset: nothing removed")
    from agora.infra import VhostError

    try:
        for line in reset(config, SERVICES, state_dir()):
            print(f"agora: {line}")
    except VhostError as exc:
        fail(f"agora reset: {exc}")


def cmd_asyncapi(config, args):
    from agora.asyncapi import write

    print(f"agora: wrote {write()}")


COMMANDS = {
    "check": cmd_check,
    "setup": cmd_setup,
    "migrate": cmd_migrate,
    "run": cmd_run,
    "service": cmd_service,
    "gateway": cmd_gateway,
    "seed": cmd_seed,
    "shell": cmd_shell,
    "rotate-keys": cmd_rotate_keys,
    "login": cmd_login,
    "dead-letters": cmd_dead_letters,
    "prometheus": cmd_prometheus,
    "trace": cmd_trace,
    "reset": cmd_reset,
    "asyncapi": cmd_asyncapi,
    "status": cmd_status,
    "broker-definitions": cmd_broker_definitions,
    "web-build": cmd_web_build,
    "web-dev": cmd_web_dev,
}

PROCESS_OF = {
    "service": lambda args: args.name,
    "gateway": lambda args: "gateway",
    "migrate": lambda args: "migrate",
}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="agora", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        command = sub.add_parser(name)
        if name == "service":
            command.add_argument("name")
            command.add_argument("--instance", help="NAME-N of several (default: NAME)")
        if name == "dead-letters":
            command.add_argument("action", choices=("list", "show", "replay", "discard"))
            command.add_argument("event_id", nargs="?")
            command.add_argument("--service", choices=list(SERVICES))
        if name == "login":
            command.add_argument("--scope", help="space-separated (default: every scope)")
            command.add_argument("--client-id", help="a public client (default: the demo one)")
            command.add_argument("--base-url", help="the gateway (default: from config)")
            command.add_argument("--port", type=int, default=0, help="loopback port (0: free)")
            command.add_argument("--timeout", type=float, default=300.0)
            command.add_argument("--no-browser", action="store_true")
            command.add_argument("--json", action="store_true", help="the whole token response")
        if name == "trace":
            command.add_argument("trace_id", help="as in a response's X-B3-TraceId header")
            command.add_argument("--log-dir", help="default: <state dir>/logs (make run's)")
        if name == "reset":
            command.add_argument("--yes", action="store_true", help="no confirmation prompt")
        if name == "broker-definitions":
            command.add_argument("--with-operator", action="store_true")
        if name == "web-build":
            command.add_argument("--force", action="store_true", help="even if up to date")
    args = parser.parse_args(argv)
    # A service or the gateway resolves only the settings it reads (and needs
    # only those secrets in its environment); the other commands, the whole tree.
    config = config_or_exit(PROCESS_OF.get(args.command, lambda args: None)(args))
    try:
        COMMANDS[args.command](config, args)
    except ConfigError as exc:
        fail(str(exc), 2)
    except UnsafeStateFolder as exc:
        fail(f"agora: refusing to write state: {exc}")
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
