"""One chaos run: its own servers and platform, a steady order load, the faults
in turn, then the invariants, the report (printed, and JSON in the state dir)."""

import datetime
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import traceback
import uuid
from collections import Counter
from dataclasses import dataclass

import requests

from agora.cli import SERVICES, state_dir, wait_for_services
from agora.platform import Platform, free_port, platform_env
from agora.supervisor import Child
from chaos import checks
from chaos.faults import (
    CutCatalogDatabase,
    KillGatewayWorkers,
    KillService,
    RestartServer,
)
from chaos.load import OrderLoad
from chaos.servers import Servers
from services.chassis.config import ROOT, load_config, nameko_config
from tests.support.tcp_proxy import TcpProxy

TERMINAL_WAIT = 60.0  # every accepted order terminal within this of the last recovery


@dataclass(frozen=True)
class Schedule:
    """What to inject: ``kills`` (services, ``gateway`` for the whole gateway),
    ``outage`` seconds for each, and which of the other faults."""

    kills: tuple
    outage: float
    gateway_workers: bool
    rabbitmq: bool
    postgres: bool
    redis: bool
    catalog_db: bool
    restart_pause: float  # a restarted server stays down this long
    settle: float  # after a recovery, before the next fault
    clients: int
    scarce_stock: int

    def faults(self, world):
        faults = [KillService(name, self.outage) for name in self.kills]
        if self.gateway_workers:
            faults.append(KillGatewayWorkers())
        if self.rabbitmq:
            faults.append(RestartServer(world.servers.rabbitmq, self.restart_pause))
        if self.postgres:
            faults.append(RestartServer(world.servers.postgres, self.restart_pause))
        if self.redis:
            faults.append(RestartServer(world.servers.redis, self.outage, verb="stop"))
        if self.catalog_db:
            faults.append(CutCatalogDatabase(self.outage))
        return faults


FULL = Schedule(
    kills=(*SERVICES, "gateway"),
    outage=20.0,
    gateway_workers=True,
    rabbitmq=True,
    postgres=True,
    redis=True,
    catalog_db=True,
    restart_pause=5.0,
    settle=5.0,
    clients=4,
    scarce_stock=20,
)
# `make test`: the faults that found bugs before, short (about 3 minutes in all).
BOUNDED = Schedule(
    kills=("orders", "billing"),
    outage=5.0,
    gateway_workers=False,
    rabbitmq=True,
    postgres=False,
    redis=False,
    catalog_db=True,
    restart_pause=2.0,
    settle=3.0,
    clients=4,
    scarce_stock=10,
)


class LoggedChild(Child):
    """A platform process whose output goes to ``<logs>/<process>.log``."""

    def __init__(self, spec, cwd, logs):
        super().__init__(spec, cwd)
        self.log_path = logs / f"{spec.name}.log"

    def start(self):
        with open(self.log_path, "ab") as out:
            self.process = subprocess.Popen(
                self.spec.argv,
                env={**os.environ, **self.spec.env},
                cwd=self.cwd,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self


class ChaosPlatform(Platform):
    """The platform with the catalog reaching PostgreSQL through a switchable
    proxy, and each process's output in a log file of its own."""

    def __init__(self, config, env, catalog_db_port, logs):
        super().__init__(config, env)
        self.catalog_db_port = catalog_db_port
        self.logs = logs

    def start(self, name):
        started = []
        for spec in self.specs(name):
            child = self.children.get(spec.name)
            if child is None or not child.alive():
                child = LoggedChild(spec, str(ROOT), self.logs).start()
                self.children[spec.name] = child
                started.append(child)
        return started

    def specs(self, name):
        specs = super().specs(name)
        if name == "catalog":
            for spec in specs:
                spec.env = {**spec.env, "AGORA_PG_PORT": str(self.catalog_db_port)}
        return specs


class ProcessWatch:
    """A supervisor for the run: a process that dies on its own (not one a fault
    killed and holds down) is recorded and started again a second later."""

    def __init__(self, platform, origin):
        self.platform = platform
        self.origin = origin
        self.exits = []
        self._held = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="chaos-watch", daemon=True)

    def start(self):
        self._thread.start()
        return self

    def hold(self, name):
        self._held.add(name)

    def release(self, name):
        self._held.discard(name)

    def stop(self):
        self._stop.set()
        self._thread.join(5)

    def _watch(self):
        names = (*SERVICES, "gateway")
        while not self._stop.wait(0.5):
            for name in names:
                if name in self._held:
                    continue
                dead = [
                    process
                    for process in self.platform.processes(name)
                    if process in self.platform.children
                    and not self.platform.children[process].alive()
                ]
                if not dead or self._stop.wait(1.0) or name in self._held:
                    continue
                for process in dead:
                    code = self.platform.children[process].process.returncode
                    self.exits.append(
                        {
                            "process": process,
                            "code": code,
                            "at_s": round(time.time() - self.origin, 2),
                        }
                    )
                    print(
                        f"chaos: {process} exited on its own (code {code}); restarting it",
                        flush=True,
                    )
                self.platform.start(name)


class World:
    """Everything one run starts, and stops."""

    def __init__(self, schedule, logs):
        self.schedule = schedule
        self.logs = logs
        self.servers = None
        self.catalog_db_proxy = None
        self.platform = None
        self.supervisor = None
        self.config = None

    def start(self):
        self.servers = Servers().start()
        self.catalog_db_proxy = TcpProxy("127.0.0.1", self.servers.postgres.port).start()
        env = platform_env(
            {
                **self.servers.env(),
                "AGORA_ENV": "test",
                "AGORA_AMQP_VHOST": "agora-chaos",
                "AGORA_AMQP_USER": "guest",
                "AGORA_AMQP_PASSWORD": "guest",
                "AGORA_DB_PREFIX": "agora_chaos_",
                "AGORA_REDIS_PREFIX": "agora:chaos:",
                "AGORA_BROKER_USER_PREFIX": "agora-chaos-",
                "AGORA_GATEWAY_PORT": str(free_port()),
                # Nothing listens on these: no spans sent, no mail (customers are
                # unverified: their order mail is recorded "skipped", not sent).
                "AGORA_ZIPKIN_URL": "http://127.0.0.1:9/api/v2/spans",
                "AGORA_TRACE_SAMPLE_RATE": "0",
                "AGORA_SMTP_PORT": "9",
                "AGORA_SMS_PROVIDER": "none",
                "AGORA_LOG_LEVEL": os.environ.get("AGORA_CHAOS_LOG_LEVEL", "WARNING"),
                "AGORA_STATE_DIR": str(self.servers.root / "state"),
            }
        )
        env.pop("AGORA_CONFIG", None)
        setup = subprocess.run(
            [sys.executable, "-m", "agora", "setup"],
            env={**os.environ, **env},
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if setup.returncode != 0:
            raise RuntimeError(f"agora setup failed: {setup.stderr.strip()[-800:]}")
        self.config = load_config({**os.environ, **env})
        self.platform = ChaosPlatform(self.config, env, self.catalog_db_proxy.port, self.logs)
        self.platform.start_all()
        return self

    def stop(self):
        if self.supervisor is not None:
            self.supervisor.stop()
        if self.platform is not None:
            self.platform.stop_all()
        if self.catalog_db_proxy is not None:
            self.catalog_db_proxy.stop()
        if self.servers is not None:
            self.servers.remove()


def seed(world, schedule):
    """The demo clients, four products (two plentiful, two scarce) and twelve
    customers (access tokens, through the gateway's password grant)."""
    from nameko.standalone.rpc import ClusterRpcProxy

    from agora.seed import seed as seed_demo

    config = world.config
    products = []
    with ClusterRpcProxy(nameko_config(config, "agora-cli"), timeout=30) as rpc:
        seed_demo(rpc, config)
        for n, stock in enumerate((100000, 100000, schedule.scarce_stock, schedule.scarce_stock)):
            sku = f"CHAOS-{uuid.uuid4().hex[:10].upper()}"
            product = rpc.catalog.create_product(
                {
                    "sku": sku,
                    "name": f"Chaos thing {n}",
                    "price": {"amount": 700 + n, "currency": "EUR"},
                }
            )
            rpc.inventory.set_stock(sku, "main", stock)
            products.append({"id": product["id"], "sku": sku, "stock": stock})
        tokens = []
        for _ in range(12):
            email = f"chaos-{uuid.uuid4().hex[:10]}@example.com"
            password = "correct horse battery"
            rpc.users.register({"email": email, "password": password})
            answer = requests.post(
                world.platform.base_url + "/oauth/token",
                data={
                    "grant_type": "password",
                    "client_id": config["demo"]["web_client_id"],
                    "username": email,
                    "password": password,
                },
                timeout=30,
            )
            answer.raise_for_status()
            tokens.append(answer.json()["access_token"])
    return products, tokens


def wait_recovered(load, fault, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        recovered = load.record.first_order_accepted_after(fault.ended_at)
        if recovered is not None:
            fault.recovered_at = recovered
            return True
        time.sleep(0.25)
    fault.notes.append(f"no order accepted within {timeout:.0f}s of the fault's end")
    return False


def wait_settled(ledgers, orders, deadline):
    """Until every accepted order is terminal and its notifications recorded, or the deadline."""
    while True:
        terminal = checks.terminal_states(ledgers, orders, deadline_passed=False)
        if terminal.ok and checks.notifications_recorded(ledgers, orders).ok:
            return time.time()
        if time.time() > deadline:
            return None
        time.sleep(1.0)


def run(schedule, log=print):
    """Run the chaos suite; returns the report (a dict)."""
    origin = time.time()
    logs = state_dir() / "chaos" / "logs"
    shutil.rmtree(logs, ignore_errors=True)
    logs.mkdir(parents=True)
    world = World(schedule, logs)
    report = {
        "schedule": {k: v for k, v in schedule.__dict__.items()},
        "started_at": datetime.datetime.fromtimestamp(origin, datetime.UTC).isoformat(),
        "logs": str(logs),
    }
    load = None
    ledgers = None
    try:
        log("chaos: starting RabbitMQ, PostgreSQL and Redis of our own, and the platform")
        world.start()
        report["setup_s"] = round(time.time() - origin, 1)
        products, tokens = seed(world, schedule)
        world.supervisor = ProcessWatch(world.platform, origin).start()
        load = OrderLoad(world.platform.base_url, tokens, products, clients=schedule.clients)
        load.start()
        began, deadline = time.time(), time.time() + 60
        while load.record.first_order_accepted_after(began) is None:
            if time.time() > deadline:
                raise RuntimeError("no order was accepted within 60 s, before any fault")
            time.sleep(0.25)
        time.sleep(schedule.settle)
        faults = schedule.faults(world)
        for fault in faults:
            log(f"chaos: {fault.name} (outage {fault.outage:.0f}s)")
            fault.started_at = time.time()
            fault.inject(world)
            time.sleep(fault.outage)
            fault.recover(world)
            fault.ended_at = time.time()
            if wait_recovered(load, fault, timeout=90.0):
                log(f"chaos:   recovered {fault.recovered_at - fault.ended_at:.1f}s after its end")
            # Faults do not overlap: every service answers health() again (a
            # restarted one may still be starting when orders flow again).
            try:
                wait_for_services(world.config, SERVICES, timeout=90.0)
            except TimeoutError as exc:
                fault.notes.append(f"not every service healthy 90 s after: {exc}")
            time.sleep(schedule.settle)
        last_recovery = max(f.recovered_at or f.ended_at for f in faults)
        load.stop()
        stopped = time.time()
        log(f"chaos: load stopped; waiting up to {TERMINAL_WAIT:.0f}s for the sagas to finish")
        ledgers = checks.Ledgers(world.config)
        orders = list(load.record.orders)
        deadline = max(last_recovery + TERMINAL_WAIT, stopped + 15.0)
        settled = wait_settled(ledgers, orders, deadline)
        results = [
            checks.terminal_states(ledgers, orders, deadline_passed=settled is None),
            checks.no_double_charge(ledgers, orders),
            *checks.stock(ledgers, products, orders),
            checks.notifications_recorded(ledgers, orders),
            checks.gateway_answers(load.record, origin),
            checks.no_crash(world.supervisor.exits),
        ]
        recoveries = [f.recovered_at - f.ended_at for f in faults if f.recovered_at is not None]
        longest = max(
            (f for f in faults if f.recovered_at is not None),
            key=lambda f: f.recovered_at - f.ended_at,
            default=None,
        )
        for fault in faults:
            fault.answers = answers_between(
                load.record, fault.started_at, fault.recovered_at or fault.ended_at
            )
        report.update(
            {
                "faults": [f.as_dict(origin) for f in faults],
                "errors_outside_faults": errors_outside(load.record, faults),
                "orders": {
                    "placed": load.record.intents,
                    "accepted": len(orders),
                    "abandoned_after_retries": load.record.abandoned,
                    "answers": load.record.summary(),
                    "terminal_states": results[0].detail["states"],
                    "settled_s_after_last_recovery": None
                    if settled is None
                    else round(settled - last_recovery, 1),
                },
                "invariants": [r.as_dict() for r in results],
                "longest_recovery": None
                if longest is None
                else {"fault": longest.name, "seconds": round(max(recoveries), 2)},
                "unrecovered_faults": [f.name for f in faults if f.recovered_at is None],
                "unexpected_exits": world.supervisor.exits,
                "ok": all(r.ok for r in results) and all(f.recovered_at for f in faults),
            }
        )
    except Exception as exc:  # reported: the run failed, and why
        traceback.print_exc()
        report["error"] = f"{exc.__class__.__name__}: {exc}"
        report["ok"] = False
    finally:
        if load is not None:
            load.stop()
        report["duration_s"] = round(time.time() - origin, 1)
        if ledgers is not None:
            ledgers.dispose()
        world.stop()
    return report


def _status(answer):
    return "connection_error" if answer.status is None else str(answer.status)


def _overlaps(answer, start, end):
    """The request was under way at some time from ``start`` to ``end``."""
    return answer.at <= end and answer.at + answer.took >= start


def answers_between(record, start, end):
    """The gateway's answers to requests under way from ``start`` to ``end``, by status."""
    with record.lock:
        return dict(Counter(_status(a) for a in record.answers if _overlaps(a, start, end)))


def errors_outside(record, faults):
    """Errors (and connection errors) while no fault was under way nor recovering."""
    windows = [(f.started_at, f.recovered_at or f.ended_at) for f in faults]
    with record.lock:
        return dict(
            Counter(
                f"{a.kind} {_status(a)}"
                for a in record.answers
                if (a.status is None or a.status >= 400)
                and not any(_overlaps(a, start, end) for start, end in windows)
            )
        )


def write_report(report, folder=None):
    folder = folder or state_dir() / "chaos"
    folder.mkdir(parents=True, exist_ok=True)
    stamp = report["started_at"].replace(":", "").replace("-", "").split(".")[0]
    path = folder / f"report-{stamp}.json"
    path.write_text(json.dumps(report, indent=2, default=str))
    (folder / "latest.json").write_text(json.dumps(report, indent=2, default=str))
    return path
