"""Getting the ranks' output to dtrain-run's console in whole lines.

mpiexec's own stdio forwarding passes output on in chunks, and under load it tears a rank's line
and splices another rank's output into it. So each rank's watcher sends its (whole, prefixed)
lines over a socket of its own to a console server in dtrain-run, which writes every line in
one piece. mpiexec's stdout and stderr, still relayed, then carry only the MPI launcher's own
messages, and the output of a rank that could not reach the server.
"""
import os
import selectors
import socket
import sys
import threading
import time


class ConsoleServer:
    """Accepts the watchers' connections; each sends one byte (b"1" stdout, b"2" stderr), then lines."""

    def __init__(self, workdir: str, remote: bool):
        self.server = None
        if not remote:
            path = os.path.join(workdir, "console.sock")
            try:
                self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.server.bind(path)  # fails if TMPDIR makes the path too long for a socket
                self.server.listen(128)
                self.address = f"unix:{path}"
            except OSError:
                self.server.close()
                self.server = None
        if self.server is None:  # ranks on other machines connect over TCP
            self.server = socket.create_server(("" if remote else "127.0.0.1", 0), backlog=128)
            host = socket.gethostname() if remote else "127.0.0.1"
            self.address = f"tcp:{host}:{self.server.getsockname()[1]}"
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.server, selectors.EVENT_READ, None)
        self.sinks = {b"1": sys.stdout.buffer, b"2": sys.stderr.buffer}
        self.connections = 0
        # the connection whose line the console's cursor is on, after a "\r" (a rank's progress bar), and
        # its sink: another connection's line first ends that one, or it would be written over the bar
        self.open = None
        self.closing = False
        self.thread = threading.Thread(target=self._serve, name="dtrain-run console", daemon=True)
        self.thread.start()

    def _serve(self):
        while not (self.closing and self.connections == 0):
            for key, _ in self.sel.select(0.1):
                if key.data is None:
                    conn, _ = self.server.accept()
                    self.sel.register(conn, selectors.EVENT_READ, {"sink": None, "pending": b""})
                    self.connections += 1
                    continue
                state, conn = key.data, key.fileobj
                try:
                    data = conn.recv(1 << 16)
                except OSError:
                    data = b""
                eof = not data
                if state["sink"] is None and data:
                    state["sink"], data = self.sinks.get(data[:1], sys.stdout.buffer), data[1:]
                buf = state["pending"] + data
                cut = len(buf) if eof else max(buf.rfind(b"\n"), buf.rfind(b"\r")) + 1
                if cut and state["sink"] is not None:
                    self._write(conn, state["sink"], buf[:cut])
                state["pending"] = buf[cut:]
                if eof:
                    self.sel.unregister(conn)
                    conn.close()
                    self.connections -= 1

    def _write(self, conn, sink, chunk):
        if self.open is not None and self.open[0] is not conn:
            write(self.open[1], [b"\n"])
        write(sink, [chunk])
        tail = chunk[chunk.rfind(b"\n") + 1:]
        self.open = (conn, sink) if tail.replace(b"\r", b"").strip() else None

    def wait_idle(self, timeout: float):
        """Wait (bounded) until every watcher that connected has hung up: their output is all out."""
        deadline = time.monotonic() + timeout
        while self.connections and time.monotonic() < deadline:
            time.sleep(0.02)

    def close(self, timeout: float = 2.0):
        self.closing = True
        self.thread.join(timeout)
        self.server.close()


def write(sink, lines):
    if lines:
        try:
            sink.write(b"".join(lines))
            sink.flush()
        except (OSError, ValueError):  # the console is gone (closed pipe): keep draining
            pass


class BannerFilter:
    """Drops hydra's "BAD TERMINATION" banner from mpiexec's output: dtrain-run's report replaces it.

    Only a rule of '=' followed by hydra's banner text starts a drop, so a script's own "====="
    lines pass through. The banner's lines are kept in `banner`: when a rank died with its
    watcher, they are the only account of it (see `errors.launcher_account`).
    """

    _START = b"=   BAD TERMINATION OF ONE OF YOUR APPLICATION PROCESSES"
    _AFTER = (b"YOUR APPLICATION TERMINATED WITH THE EXIT STRING", b"This typically refers to a problem",
              b"Please see the FAQ page for debugging suggestions")

    def __init__(self):
        self.held = []  # a blank line and a rule that may open a banner
        self.state = "text"  # or "banner", "after"
        self.banner = []  # the dropped lines, decoded

    @staticmethod
    def _is_rule(line):
        return len(line) > 20 and line.rstrip(b"\n") == b"=" * len(line.rstrip(b"\n"))

    def feed(self, line) -> list:
        if self.state == "banner":
            if not line.startswith(b"="):
                return [line]  # another rank's output, printed meanwhile
            if self._is_rule(line):
                self.state = "after"
            else:
                self.banner.append(line.decode(errors="replace").strip())
            return []
        if self.state == "after":
            if line.startswith(self._AFTER):
                self.banner.append(line.decode(errors="replace").strip())
                return []
            self.state = "text"
        if self.held and self._is_rule(self.held[-1]) and line.startswith(self._START):
            self.held, self.state = [], "banner"
            self.banner.append(line.decode(errors="replace").strip())
            return []
        if (line == b"\n" and not self.held) or (self._is_rule(line) and self.held in ([], [b"\n"])):
            self.held.append(line)
            return []
        out, self.held = self.held, []
        return out + self.feed(line) if out else [line]

    def flush(self) -> list:
        out, self.held = self.held, []
        return out


def relay(source, sink, banner):
    """Copy mpiexec's own output to ours line by line, without hydra's banner (`banner`, a BannerFilter)."""
    for line in iter(source.readline, b""):
        write(sink, banner.feed(line))
    write(sink, banner.flush())
    source.close()
