"""A dependency that hangs: a TCP listener that accepts connections and never answers."""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading

STOP_TIMEOUT = 10.0


class HangingListener:
    """A TCP listener that accepts connections, reads whatever arrives, and never answers.

    Point a check at :attr:`port` and every run of it waits for its full timeout. The listener
    runs in a thread of its own, from ``__enter__`` to ``__exit__``, and counts what it
    accepted and the most it held open at once: a check that gives up must also close its
    socket, or connections pile up here.
    """

    def __init__(self, host: str = "127.0.0.1") -> None:
        self._server = socket.create_server((host, 0), backlog=256)
        self._server.setblocking(False)
        self.host = host
        self.port: int = self._server.getsockname()[1]
        self.accepted = 0
        self.peak_open = 0  # more than one per client would mean one left a connection behind
        self._peers: set[socket.socket] = set()
        self._wake, self._waker = socket.socketpair()
        self._thread = threading.Thread(target=self._serve, name="hanging-listener", daemon=True)

    def __enter__(self) -> HangingListener:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._waker.send(b"x")
        self._thread.join(timeout=STOP_TIMEOUT)
        self._waker.close()

    def _serve(self) -> None:
        selector = selectors.DefaultSelector()
        selector.register(self._server, selectors.EVENT_READ)
        selector.register(self._wake, selectors.EVENT_READ)
        try:
            while True:
                for key, _ in selector.select():
                    sock = key.fileobj
                    if sock is self._wake:
                        return
                    if sock is self._server:
                        with contextlib.suppress(BlockingIOError):
                            peer, _ = self._server.accept()
                            peer.setblocking(False)
                            self.accepted += 1
                            self._peers.add(peer)
                            self.peak_open = max(self.peak_open, len(self._peers))
                            selector.register(peer, selectors.EVENT_READ)
                    elif isinstance(sock, socket.socket) and not self._drain(sock):
                        selector.unregister(sock)
                        self._peers.discard(sock)
                        sock.close()
        finally:
            for sock in (*self._peers, self._server, self._wake):
                sock.close()
            self._peers.clear()
            selector.close()

    @staticmethod
    def _drain(peer: socket.socket) -> bool:
        """Read and drop what the peer sent; False once it has closed its end."""
        try:
            return bool(peer.recv(65536))
        except BlockingIOError:
            return True
        except OSError:
            return False
