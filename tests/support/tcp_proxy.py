"""A switchable TCP proxy on loopback: cut a process off from one server.

``TcpProxy(upstream_port).start()`` listens on a free 127.0.0.1 port and
forwards every connection to ``127.0.0.1:upstream_port``. ``cut()`` resets the
connections it carries and refuses new ones (accepted, then closed at once) until
``restore()``: to the client it looks like the server went away, as a network
partition or a crashed server that the kernel answers for. A client connected
through ``proxy.port`` cannot tell the proxy from the server.

Plain threads and blocking sockets, no dependency: usable from a monkey-patched
(eventlet) test process and from a plain one alike.
"""

import socket
import struct
import threading

_CHUNK = 65536
_LINGER_RESET = struct.pack("ii", 1, 0)  # on, 0 s: close() sends an RST


class TcpProxy:
    def __init__(self, upstream_port, upstream_host="127.0.0.1", host="127.0.0.1"):
        self.upstream = (upstream_host, upstream_port)
        self.host = host
        self.port = None
        self._listener = None
        self._lock = threading.Lock()
        self._pairs = set()  # (client, server) sockets of live connections
        self._threads = []
        self._pumping = {}  # pair -> pump threads still running on it
        self._cut = False
        self._closed = False

    @property
    def is_cut(self):
        return self._cut

    def start(self):
        self._listener = socket.create_server((self.host, 0))
        self.port = self._listener.getsockname()[1]
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()
        return self

    def cut(self):
        """Reset every connection through the proxy; refuse new ones until restore()."""
        with self._lock:
            self._cut = True
            pairs, self._pairs = self._pairs, set()
        for pair in pairs:
            _shut(*pair)  # their pump threads wake, end and close them

    def restore(self):
        """Forward new connections again."""
        with self._lock:
            self._cut = False

    def close(self):
        """Stop: every connection reset, the port closed, the threads ended (so,
        under eventlet, no green thread still waits on a file descriptor number
        the process may reuse)."""
        self._closed = True
        self.cut()
        _shut(self._listener)  # wakes accept(); the accept thread closes it
        for thread in self._threads:
            thread.join(2.0)

    # --- internals ------------------------------------------------------------------

    def _accept(self):
        try:
            while not self._closed:
                try:
                    client, _ = self._listener.accept()
                except (OSError, EOFError):  # EOFError: eventlet's, for a closed socket
                    return
                if self._cut:
                    _close(client)
                    continue
                try:
                    server = socket.create_connection(self.upstream, timeout=5)
                    server.settimeout(None)
                except OSError:
                    _close(client)
                    continue
                pair = (client, server)
                with self._lock:
                    if self._cut:  # cut while connecting
                        _close(*pair)
                        continue
                    self._pairs.add(pair)
                    self._pumping[pair] = 2
                for source, target in ((client, server), (server, client)):
                    pump = threading.Thread(
                        target=self._pump, args=(source, target, pair), daemon=True
                    )
                    pump.start()
                    self._threads = [t for t in self._threads if t.is_alive()] + [pump]
        finally:
            _close(self._listener)

    def _pump(self, source, target, pair):
        try:
            while True:
                data = source.recv(_CHUNK)
                if not data:
                    break
                target.sendall(data)
        except (OSError, EOFError):
            pass
        _shut(*pair)  # wakes the other direction's pump
        with self._lock:
            self._pairs.discard(pair)
            self._pumping[pair] -= 1
            last = self._pumping[pair] == 0
            if last:
                del self._pumping[pair]
        if last:
            # Only once neither pump waits on them: closing a socket another
            # (green) thread is blocked on can leave that thread waiting for ever.
            _close(*pair)


def _shut(*sockets):
    """Drop connections at once (RST on close, SO_LINGER 0); wakes threads blocked on them."""
    for sock in sockets:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def _close(*sockets):
    for sock in sockets:
        _shut(sock)
        try:
            sock.close()
        except OSError:
            pass
