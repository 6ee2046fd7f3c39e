"""Key-value stores with torch.distributed's API: HashStore (one process), FileStore (a file every process
can reach, locked with flock), TCPStore (a server thread in the master process), PrefixStore.

dtrain's ranks find each other through MPI, so init_process_group does not need a store; these are for the
code that coordinates through one directly (counters, barriers between jobs, handing addresses around).
Values are bytes (str is encoded as UTF-8); `get` and `wait` block until the keys exist or the store's
timeout passes (DistStoreError)."""
import datetime
import fcntl
import os
import socket
import struct
import threading
import time

from ._work import DistError

__all__ = ["Store", "HashStore", "FileStore", "TCPStore", "PrefixStore", "DistStoreError"]

_DEFAULT_TIMEOUT = datetime.timedelta(seconds=300)


class DistStoreError(DistError):
    """A store operation failed: typically a key that did not appear before the timeout."""


def _bytes(value):
    return value.encode() if isinstance(value, str) else bytes(value)


class _Table:
    """The key-value table itself, with a condition for waiters: what HashStore and TCPStore's server hold."""

    def __init__(self):
        self.data, self.cond = {}, threading.Condition()

    def run(self, op, key=b"", a=b"", b=b""):
        """One store operation on raw bytes; the answer is bytes, or None for a missing key."""
        with self.cond:
            d = self.data
            if op == "set":
                d[key] = a
            elif op == "get":
                return d.get(key)
            elif op == "add":
                try:
                    value = int(d.get(key, b"0")) + int(a)
                except ValueError:
                    raise ValueError("stoll") from None
                d[key] = str(value).encode()
                self.cond.notify_all()
                return d[key]
            elif op == "cas":  # compare_set: a = expected, b = desired
                if key not in d:
                    if a:
                        return a
                    d[key] = b
                elif d[key] == a:
                    d[key] = b
                self.cond.notify_all()
                return d[key]
            elif op == "append":
                d[key] = d.get(key, b"") + a
            elif op == "delete":
                return b"1" if d.pop(key, None) is not None else b"0"
            elif op == "count":
                return str(len(d)).encode()
            self.cond.notify_all()
            return b""

    def wait_for(self, keys, seconds):
        with self.cond:
            return self.cond.wait_for(lambda: all(k in self.data for k in keys), seconds)


class Store:
    """The operations every store offers, on top of a few primitives a subclass provides: `_run(op, key,
    a, b)` (see _Table.run) and `_wait(keys, seconds) -> bool`."""

    def __init__(self, timeout=_DEFAULT_TIMEOUT):
        self._timeout = timeout

    @property
    def timeout(self):
        return self._timeout

    def set_timeout(self, timeout):
        self._timeout = timeout

    def _seconds(self, timeout=None):
        t = self._timeout if timeout is None else timeout
        return t.total_seconds() if isinstance(t, datetime.timedelta) else float(t)

    def _k(self, key):
        return _bytes(key)

    def set(self, key, value):
        self._run("set", self._k(key), _bytes(value))

    def get(self, key):
        self.wait([key])
        value = self._run("get", self._k(key))
        if value is None:  # deleted meanwhile
            raise DistStoreError("Wait timeout")
        return value

    def add(self, key, amount):
        return int(self._run("add", self._k(key), str(int(amount)).encode()))

    def compare_set(self, key, expected_value, desired_value):
        return self._run("cas", self._k(key), _bytes(expected_value), _bytes(desired_value))

    def append(self, key, value):
        self._run("append", self._k(key), _bytes(value))

    def multi_get(self, keys):
        return [self.get(k) for k in keys]

    def multi_set(self, keys, values):
        for k, v in zip(keys, values):
            self.set(k, v)

    def check(self, keys):
        return all(self._run("get", self._k(k)) is not None for k in keys)

    def wait(self, keys, timeout=None):
        if not self._wait([self._k(k) for k in keys], self._seconds(timeout)):
            raise DistStoreError("Wait timeout")

    def delete_key(self, key):
        return self._run("delete", self._k(key)) == b"1"

    def num_keys(self):
        return int(self._run("count"))

    def has_extended_api(self):
        return True


class HashStore(Store):
    """A store inside this process (threads share it)."""

    def __init__(self):
        super().__init__()
        self._table = _Table()

    def _run(self, op, key=b"", a=b"", b=b""):
        return self._table.run(op, key, a, b)

    def _wait(self, keys, seconds):
        return self._table.wait_for(keys, seconds)


class FileStore(Store):
    """A store in a file that every process using it can open (a shared filesystem across machines): each
    operation locks the file (flock), reads the table, and writes it back if it changed."""

    _POLL_S = 0.01

    def __init__(self, file_name, world_size=-1):
        super().__init__()
        self.path, self.world_size = file_name, world_size
        open(file_name, "ab").close()

    def _run(self, op, key=b"", a=b"", b=b""):
        with open(self.path, "r+b") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                fields = _unpack(f.read())
                table = _Table()
                table.data = dict(zip(fields[::2], fields[1::2]))
                before = dict(table.data)
                out = table.run(op, key, a, b)
                if table.data != before:
                    f.seek(0)
                    f.truncate()
                    f.write(_pack([x for kv in table.data.items() for x in kv]))
                    f.flush()
                    os.fsync(f.fileno())
                return out
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def _wait(self, keys, seconds):
        until = time.monotonic() + seconds
        while True:
            if all(self._run("get", k) is not None for k in keys):
                return True
            if time.monotonic() >= until:
                return False
            time.sleep(self._POLL_S)


# FileStore's file and TCPStore's messages: a count of fields, then each field as length + bytes
def _pack(fields):
    return struct.pack("!I", len(fields)) + b"".join(struct.pack("!I", len(f)) + f for f in fields)


def _unpack(raw):
    if not raw:
        return []
    (count,), pos, fields = struct.unpack_from("!I", raw), 4, []
    for _ in range(count):
        (n,) = struct.unpack_from("!I", raw, pos)
        fields.append(raw[pos + 4:pos + 4 + n])
        pos += 4 + n
    return fields


def _send(sock, fields):
    sock.sendall(_pack(fields))


def _recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("the store's connection closed")
        buf += chunk
    return buf


def _recv(sock):
    (count,) = struct.unpack("!I", _recv_exact(sock, 4))
    fields = []
    for _ in range(count):
        (n,) = struct.unpack("!I", _recv_exact(sock, 4))
        fields.append(_recv_exact(sock, n))
    return fields


class _Server:
    """TCPStore's server: one thread accepting, one per client answering its requests in order."""

    def __init__(self, host, port):
        self.table, self.clients = _Table(), 0
        self.sock = socket.create_server((host, port), reuse_port=False)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, name="dtrain-store-server", daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return  # closed
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self._serve, args=(conn,), name="dtrain-store-client", daemon=True).start()

    def _serve(self, conn):
        with conn:
            while True:
                try:
                    op, key, a, b = (f.decode() if i == 0 else f for i, f in enumerate(_recv(conn)))
                except (ConnectionError, OSError, ValueError):
                    return
                try:
                    if op == "wait":  # a = keys joined by NUL, b = seconds
                        ok = self.table.wait_for(a.split(b"\0") if a else [], float(b))
                        reply = [b"ok", b"1" if ok else b"0"]
                    elif op == "hello":
                        with self.table.cond:
                            self.clients += 1
                            self.table.cond.notify_all()
                        reply = [b"ok", b""]
                    elif op == "clients":
                        ok = self.table.cond
                        with ok:
                            done = ok.wait_for(lambda: self.clients >= int(a), float(b))
                        reply = [b"ok", b"1" if done else b"0"]
                    else:
                        out = self.table.run(op, key, a, b)
                        reply = [b"none", b""] if out is None else [b"ok", out]
                except ValueError as e:
                    reply = [b"valueerror", str(e).encode()]
                try:
                    _send(conn, reply)
                except OSError:
                    return

    def close(self):
        self.sock.close()


class TCPStore(Store):
    """A store served over TCP by the process created with is_master=True (port 0: any free port, see
    `.port`); the others connect to host_name:port. With world_size and wait_for_workers, the master's
    constructor returns once world_size clients (itself included) have connected."""

    def __init__(self, host_name, port, world_size=None, is_master=False, timeout=_DEFAULT_TIMEOUT,
                 wait_for_workers=True, multi_tenant=False, master_listen_fd=None, use_libuv=True):
        super().__init__(timeout)
        self.host, self.world_size = host_name, world_size
        self._server = _Server(host_name, int(port)) if is_master else None
        self.port = self._server.port if is_master else int(port)
        self._lock = threading.Lock()  # one request at a time on this connection
        until = time.monotonic() + self._seconds()
        while True:
            try:
                self._sock = socket.create_connection((host_name, self.port), timeout=self._seconds())
                break
            except OSError as e:
                if time.monotonic() >= until:
                    raise DistStoreError(f"Timed out after {self._seconds():g} s connecting to the store at "
                                         f"{host_name}:{self.port}: {e}") from None
                time.sleep(0.05)
        self._sock.settimeout(None)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._call("hello")
        if is_master and wait_for_workers and world_size:
            if self._call("clients", a=str(int(world_size)).encode(), b=str(self._seconds()).encode()) != b"1":
                raise DistStoreError(f"Timed out after {self._seconds():g} s waiting for {world_size} clients to "
                                     f"connect to the store")

    def _call(self, op, key=b"", a=b"", b=b""):
        with self._lock:
            _send(self._sock, [op.encode(), key, a, b])
            status, value = _recv(self._sock)
        if status == b"none":
            return None
        if status == b"valueerror":
            raise ValueError(value.decode())
        return value

    def _run(self, op, key=b"", a=b"", b=b""):
        return self._call(op, key, a, b)

    def _wait(self, keys, seconds):
        return self._call("wait", a=b"\0".join(keys), b=str(seconds).encode()) == b"1"

    @property
    def libuvBackend(self):
        return False

    def __del__(self):
        try:
            self._sock.close()
            if self._server is not None:
                self._server.close()
        except Exception:
            pass


class PrefixStore(Store):
    """Another store's keys under `prefix/`."""

    def __init__(self, prefix, store):
        super().__init__(store.timeout)
        self.prefix, self.underlying_store = prefix, store

    @property
    def timeout(self):
        return self.underlying_store.timeout

    def set_timeout(self, timeout):
        self.underlying_store.set_timeout(timeout)

    def _k(self, key):
        return _bytes(self.prefix) + b"/" + _bytes(key)

    def _run(self, op, key=b"", a=b"", b=b""):
        return self.underlying_store._run(op, key, a, b)

    def _wait(self, keys, seconds):
        return self.underlying_store._wait(keys, seconds)
