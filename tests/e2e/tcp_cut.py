"""A TCP relay on a loopback port in front of another one, which a test can cut (every connection dropped,
new ones refused) and restore: an endpoint outage, with the state behind it kept."""

import socket
import threading


class Relay:
    def __init__(self, target_port):
        self.target_port, self.port = target_port, None
        self._server, self._open = None, []
        self._lock = threading.Lock()

    def start(self, port=None):
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", port or 0))
        server.listen(64)
        self._server, self.port = server, server.getsockname()[1]
        threading.Thread(target=self._accept, args=(server,), daemon=True).start()

    def cut(self):
        """Drops every connection and refuses new ones until `start` again (on the same port)."""
        self._server.close()
        with self._lock:
            for conn in self._open:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                conn.close()
            self._open.clear()

    def _accept(self, server):
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            with self._lock:
                self._open += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source, sink):
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for conn in (source, sink):
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
