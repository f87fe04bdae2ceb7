"""A switchable TCP proxy on loopback, to cut a process off from a server.

``TcpProxy(host, port).start()`` listens on a free loopback port (``.port``)
and forwards every connection to ``host:port``. ``cut()`` closes every
forwarded connection and stops listening, so new connections are refused at
once (as when the server's host is unreachable and says so); ``restore()``
listens again on the same port; ``stop()`` ends it.

The forwarding runs in a process of its own (``python -m
tests.support.tcp_proxy HOST PORT``, driven over its stdin): in the test
process, under eventlet's monkey patching, its sockets would share the hub with
the services under test, and a socket it closes could leave a stale reader on a
file descriptor number that a service's next database connection reuses.
"""

import socket
import subprocess
import sys
import threading

_CHUNK = 65536


class TcpProxy:
    """The proxy, in a child process; the same API as :class:`Forwarder`."""

    def __init__(self, target_host, target_port):
        self.target = (target_host, target_port)
        self.port = None
        self._process = None
        self.is_cut = False

    def start(self):
        argv = [sys.executable, "-m", "tests.support.tcp_proxy", *map(str, self.target)]
        self._process = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
        )
        self.port = int(self._answer())
        return self

    def _answer(self):
        line = self._process.stdout.readline()
        if not line:
            raise RuntimeError(f"the TCP proxy exited ({self._process.wait(5)})")
        return line.strip()

    def _command(self, command):
        self._process.stdin.write(command + "\n")
        self._process.stdin.flush()
        assert self._answer() == "ok"

    def cut(self):
        self._command("cut")
        self.is_cut = True

    def restore(self):
        self._command("restore")
        self.is_cut = False

    def stop(self):
        if self._process is None or self._process.poll() is not None:
            return
        self._process.stdin.close()  # end of input: it exits
        try:
            self._process.wait(5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(5)
        self._process.stdout.close()


class Forwarder:
    """The proxy itself, on plain threads."""

    def __init__(self, target_host, target_port, host="127.0.0.1"):
        self.target = (target_host, target_port)
        self.host = host
        self.port = None
        self._listener = None
        self._lock = threading.Lock()
        self._links = set()  # open sockets, both sides of every forwarded connection
        self._cut = False

    def start(self):
        self._listen(0)
        return self

    def _listen(self, port):
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener):
        while True:
            try:
                client, _address = listener.accept()
            except OSError:  # closed by cut() or stop()
                return
            if self._cut:
                _close(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                _close(client)
                continue
            with self._lock:
                self._links.update((client, upstream))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source, sink):
        try:
            while True:
                data = source.recv(_CHUNK)
                if not data:
                    break
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                self._forget(sock)

    def _forget(self, sock):
        with self._lock:
            self._links.discard(sock)
        _close(sock)

    def cut(self):
        """Close every forwarded connection and refuse new ones."""
        self._cut = True
        listener, self._listener = self._listener, None
        if listener is not None:
            _close(listener)
        with self._lock:
            links, self._links = list(self._links), set()
        for sock in links:
            _close(sock)

    def restore(self):
        """Forward again, on the same port."""
        self._cut = False
        if self._listener is None:
            self._listen(self.port)

    def stop(self):
        self.cut()


def _close(sock):
    # shutdown() first: it wakes a thread blocked in recv() on the socket.
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


def main(argv):
    """``python -m tests.support.tcp_proxy HOST PORT``: prints its port, then
    answers ``ok`` to each ``cut`` or ``restore`` line; exits at end of input."""
    forwarder = Forwarder(argv[0], int(argv[1])).start()
    print(forwarder.port, flush=True)
    for line in sys.stdin:
        command = line.strip()
        if command == "cut":
            forwarder.cut()
        elif command == "restore":
            forwarder.restore()
        else:
            print(f"unknown command {command!r}", file=sys.stderr, flush=True)
            continue
        print("ok", flush=True)
    forwarder.stop()


if __name__ == "__main__":
    main(sys.argv[1:])
