"""``python -m services.chassis.runner CONFIG module:Class``: ``nameko run``, with
a bounded graceful stop.

On SIGTERM (or SIGINT) ``nameko run`` already stops the container in the right
order: its entrypoints stop consuming (the messages it had not started go back
to the queue for another instance), the workers in flight finish and commit,
then the dependencies stop (the outbox relay publishes what those workers wrote
and finishes its current batch: ``OutboxRelay.stop``), and it exits 0. But it
waits for all of that without limit, so one stuck worker holds the process
until a supervisor kills it. Here the stop has ``shutdown_timeout`` seconds
(config): past it the container is killed (its unacked messages are redelivered
to another instance) and the process exits 1, saying so.
"""

from services.chassis.eventlet_notice import ignore_eventlet_notice

ignore_eventlet_notice()

import eventlet  # noqa: E402

eventlet.monkey_patch()  # noqa: E402 (as nameko run: before anything else is imported)

import argparse  # noqa: E402
import logging  # noqa: E402
import logging.config  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402

import yaml  # noqa: E402
from nameko.cli.run import import_service  # noqa: E402
from nameko.runners import ServiceRunner  # noqa: E402

log = logging.getLogger("agora.runner")

# Exit codes: stopped cleanly, or killed after shutdown_timeout.
STOPPED, KILLED = 0, 1
# Seconds the kill after shutdown_timeout may take before the process just exits.
KILL_GRACE = 2.0


class BoundedRunner:
    """Runs services until told to stop; stops them within ``shutdown_timeout``."""

    def __init__(self, services, config):
        self.runner = ServiceRunner(config)
        for service_cls in services:
            self.runner.add_service(service_cls)
        self.shutdown_timeout = config["AGORA"]["shutdown_timeout"]
        self.stopping = None
        self.exit_code = STOPPED

    def request_stop(self, signum=None, frame=None):
        # A signal handler runs in the hub's loop and cannot block: stop in a greenlet.
        if self.stopping is None:
            self.stopping = eventlet.spawn(self._stop, signum)

    def _stop(self, signum):
        name = signal.Signals(signum).name if signum else "stop"
        log.info("%s: stopping (at most %ss)", name, self.shutdown_timeout)
        with eventlet.Timeout(self.shutdown_timeout, False):
            self.runner.stop()
            log.info("stopped cleanly")
            return
        log.error(
            "not stopped within shutdown_timeout (%ss): killing the workers still running",
            self.shutdown_timeout,
        )
        self.exit_code = KILLED
        # Killing a container that is still half-way through its stop can itself
        # wait (CI saw a process outlive its bound by 30 s once): the bound is
        # the point, so past KILL_GRACE more the process ends without cleanup.
        eventlet.spawn_after(KILL_GRACE, self._exit_now)
        self.runner.kill()

    def _exit_now(self):
        log.error("not killed within %ss more: exiting now", KILL_GRACE)
        logging.shutdown()
        os._exit(KILLED)

    def run(self):
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)
        self.runner.start()
        # Waited on in a greenlet: a signal arriving while the main greenlet
        # waits on a socket would interrupt it with EINTR (as in nameko run).
        waiter = eventlet.spawn(self.runner.wait)
        while True:
            try:
                waiter.wait()
                break
            except InterruptedError:
                continue
        if self.stopping is not None:
            self.stopping.wait()
        return self.exit_code


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m services.chassis.runner")
    parser.add_argument("config", help="the rendered Nameko config (agora service writes it)")
    parser.add_argument("services", nargs="+", help="module:Class")
    args = parser.parse_args(argv)
    with open(args.config) as fh:
        config = yaml.safe_load(fh)
    if "LOGGING" in config:
        logging.config.dictConfig(config["LOGGING"])
    else:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
    services = [cls for path in args.services for cls in import_service(path)]
    return BoundedRunner(services, config).run()


if __name__ == "__main__":
    sys.exit(main())
