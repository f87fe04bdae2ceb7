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
        self._cut = False
        self._closed = False

    @property
    def is_cut(self):
        return self._cut

    def start(self):
        self._listener = socket.create_server((self.host, 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, name=f"tcp-proxy-{self.port}", daemon=True).start()
        return self

    def cut(self):
        """Reset every connection through the proxy; refuse new ones until restore()."""
        with self._lock:
            self._cut = True
            pairs, self._pairs = self._pairs, set()
        for pair in pairs:
            _reset(*pair)

    def restore(self):
        """Forward new connections again."""
        with self._lock:
            self._cut = False

    def close(self):
        self._closed = True
        self.cut()
        try:
            self._listener.close()
        except OSError:
            pass

    # --- internals ------------------------------------------------------------------

    def _accept(self):
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except (OSError, EOFError):
                return  # closed
            if self._cut:
                _reset(client)
                continue
            try:
                server = socket.create_connection(self.upstream, timeout=5)
                server.settimeout(None)
            except OSError:
                _reset(client)
                continue
            pair = (client, server)
            with self._lock:
                if self._cut:  # cut while connecting
                    _reset(*pair)
                    continue
                self._pairs.add(pair)
            for source, target in ((client, server), (server, client)):
                threading.Thread(
                    target=self._pump, args=(source, target, pair), daemon=True
                ).start()

    def _pump(self, source, target, pair):
        try:
            while True:
                data = source.recv(_CHUNK)
                if not data:
                    break
                target.sendall(data)
        except (OSError, EOFError):  # EOFError: eventlet's, for a socket closed under recv()
            pass
        with self._lock:
            self._pairs.discard(pair)
        _reset(*pair)


def _reset(*sockets):
    """Drop connections at once: shut down, then close with an RST (SO_LINGER 0)."""
    for sock in sockets:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
            # Wakes the pump thread blocked in recv() on it (close() alone may not).
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            sock.close()
        except OSError:
            pass
