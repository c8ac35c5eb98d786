"""spikeserve: a Python client for the spikeserve HTTP API v1, standard library only.

    from spikeserve import Client
    c = Client("http://127.0.0.1:8080")
    with c.open_session("fmnist") as s:
        r = s.step(steps=50, events=[[0, 17], [3, 17, 0.5]])
        print(r["t0"], r["spikes"], r.get("prediction"))
        for ev in s.events():          # Server-Sent Events, one per processed batch
            ...

Every call raises SpikeserveError (with .status, .code, .message, .retry_after) when the
server answers with an error, and the standard socket errors when it cannot be reached.
A Client keeps one keep-alive connection and is meant for one thread at a time; the
event subscription and the stream upload use connections of their own.
"""

import http.client
import json
import urllib.parse

__all__ = ["Client", "Session", "Event", "SpikeserveError"]


class SpikeserveError(Exception):
    """An error answer from the server: HTTP status, error code and message."""

    def __init__(self, status, code, message, retry_after=None):
        super().__init__(f"HTTP {status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after


class Event:
    """One Server-Sent Event: type ("step", "end", ...), id and data (parsed JSON when it is)."""

    __slots__ = ("type", "id", "data")

    def __init__(self, type, id, data):
        self.type, self.id, self.data = type, id, data

    def __repr__(self):
        return f"Event(type={self.type!r}, id={self.id!r}, data={self.data!r})"


def _quote(name):
    if not name or any(ch in name for ch in "/?#%") or any(ch <= " " for ch in name):
        raise ValueError(f"bad model name or session id: {name!r}")
    return urllib.parse.quote(name, safe="")


def _batch(steps, events=None, dense=None, seq=None, outputs=None):
    b = {"steps": int(steps)}
    if seq is not None:
        b["seq"] = int(seq)
    if dense is not None:
        b["dense"] = [list(map(float, row)) for row in dense]
    else:
        b["events"] = [list(e) for e in (events or [])]
    if outputs is not None:
        b["outputs"] = list(outputs)
    return b


class Client:
    def __init__(self, url="http://127.0.0.1:8080", api_key=None, timeout=60.0):
        u = urllib.parse.urlsplit(url)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise ValueError(f"bad URL {url!r}")
        self.url = url.rstrip("/")
        self._scheme, self._host, self._port = u.scheme, u.hostname, u.port
        self._prefix = u.path.rstrip("/")
        self.api_key = api_key
        self.timeout = timeout
        self._conn = None

    # ---- plumbing ----
    def _connect(self, timeout):
        cls = http.client.HTTPSConnection if self._scheme == "https" else http.client.HTTPConnection
        return cls(self._host, self._port, timeout=timeout)

    def _headers(self, extra=None):
        h = {"Accept": "application/json"}
        if self.api_key:
            h["Authorization"] = f"Bearer {self.api_key}"
        if extra:
            h.update(extra)
        return h

    @staticmethod
    def _raise(resp, body):
        code, message = "http_error", body.decode("utf-8", "replace")[:500]
        try:
            err = json.loads(body)["error"]
            code, message = err.get("code", code), err.get("message", message)
        except (ValueError, KeyError, TypeError):
            pass
        ra = resp.getheader("Retry-After")
        raise SpikeserveError(resp.status, code, message, int(ra) if ra and ra.isdigit() else None)

    def request(self, method, path, body=None, content_type="application/json", raw=False,
                accept=None):
        """One request on the keep-alive connection; returns the parsed JSON answer (None for
        an empty body), or the bytes when raw. Retries once on a connection the server closed."""
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        headers = self._headers({"Content-Type": content_type} if body is not None else None)
        if accept:
            headers["Accept"] = accept
        for attempt in (0, 1):
            if self._conn is None:
                self._conn = self._connect(self.timeout)
            try:
                self._conn.request(method, self._prefix + path, body=body, headers=headers)
                resp = self._conn.getresponse()
                data = resp.read()
                break
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.close()
                if attempt:
                    raise
        if resp.getheader("Connection", "").lower() == "close":
            self.close()
        if resp.status >= 400:
            self._raise(resp, data)
        if raw:
            return data
        return json.loads(data) if data.strip() else None

    def close(self):
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- health, metrics ----
    def healthz(self):
        self.request("GET", "/healthz", raw=True)
        return True

    def readyz(self):
        self.request("GET", "/readyz", raw=True)
        return True

    def metrics(self):
        return self.request("GET", "/metrics", raw=True).decode()

    # ---- models ----
    def models(self):
        r = self.request("GET", "/v1/models")
        return r["models"] if isinstance(r, dict) else r

    def model(self, name, version=None):
        """The model's metadata: its latest version, or the given one."""
        path = f"/v1/models/{_quote(name)}"
        if version is not None:
            path += f"/versions/{int(version)}"
        return self.request("GET", path)

    # ---- sessions ----
    def open_session(self, model, idle_timeout_s=None, version=None):
        """A session on the model's latest version, or pinned to the given one."""
        body = {} if idle_timeout_s is None else {"idle_timeout_s": int(idle_timeout_s)}
        if version is not None:
            body["version"] = int(version)
        info = self.request("POST", f"/v1/models/{_quote(model)}/sessions", body)
        return Session(self, info)

    def session(self, session_id):
        return self.request("GET", f"/v1/sessions/{_quote(session_id)}")

    def close_session(self, session_id):
        self.request("DELETE", f"/v1/sessions/{_quote(session_id)}")

    def reset(self, session_id):
        return self.request("POST", f"/v1/sessions/{_quote(session_id)}/reset", b"")

    def step(self, session_id, steps, events=None, dense=None, seq=None, outputs=None):
        return self.request("POST", f"/v1/sessions/{_quote(session_id)}/steps",
                            _batch(steps, events, dense, seq, outputs))

    def infer(self, model, steps, events=None, dense=None, outputs=None):
        return self.request("POST", f"/v1/models/{_quote(model)}/infer",
                            _batch(steps, events, dense, None, outputs))

    def classify(self, model, values, seed=None, outputs=None):
        body = {"values": [float(v) for v in values]}
        if seed is not None:
            body["seed"] = int(seed)
        if outputs is not None:
            body["outputs"] = list(outputs)
        return self.request("POST", f"/v1/models/{_quote(model)}/classify", body)

    # ---- snapshots ----
    def snapshot(self, session_id):
        """The session's state as protobuf bytes (spikeserve.SessionSnapshot)."""
        return self.request("GET", f"/v1/sessions/{_quote(session_id)}/state", raw=True,
                            accept="application/x-protobuf")

    def restore(self, session_id, snapshot):
        """Create or replace session_id from snapshot bytes."""
        return self.request("PUT", f"/v1/sessions/{_quote(session_id)}/state", bytes(snapshot),
                            content_type="application/x-protobuf")

    # ---- streaming ----
    def stream(self, session_id, batches):
        """Chunked NDJSON upload: batches (an iterable of dicts or JSON strings, which may be a
        generator that blocks until the next batch exists) go out one line each, as they are
        produced, and the server runs each line as it arrives. The per-line results go to the
        session's events() (subscribe first to see them live). Returns the server's summary
        {"session_id", "lines", "ok", "failed", "t", "last_seq", "errors": [...]}; raises
        SpikeserveError for the first refused line (its .summary holds the summary)."""

        def lines():
            for b in batches:
                s = b if isinstance(b, (str, bytes)) else json.dumps(b)
                s = s.encode() if isinstance(s, str) else s
                yield s.rstrip(b"\n") + b"\n"

        conn = self._connect(None)
        try:
            conn.request("POST", f"{self._prefix}/v1/sessions/{_quote(session_id)}/stream",
                         body=lines(), encode_chunked=True,
                         headers=self._headers({"Content-Type": "application/x-ndjson",
                                                "Transfer-Encoding": "chunked"}))
            resp = conn.getresponse()
            data = resp.read()
        finally:
            conn.close()
        if resp.status >= 400:
            self._raise(resp, data)
        summary = json.loads(data)
        if summary.get("failed"):
            first = (summary.get("errors") or [{}])[0]
            err = first.get("error", {})
            e = SpikeserveError(first.get("status", resp.status), err.get("code"),
                                f"line {first.get('line')}: {err.get('message')}")
            e.summary = summary
            raise e
        return summary

    def events(self, session_id, last_event_id=None, timeout=None):
        """Subscribe to the session's Server-Sent Events. The subscription is live when this
        returns (the server has answered), so nothing stepped afterwards is missed. Returns an
        iterator of Event that ends when the server ends the stream (after an "end" event);
        close() it (or stop iterating and drop it) to unsubscribe. timeout: seconds of silence
        before socket.timeout (None: wait forever; the server sends keep-alive comments)."""
        headers = self._headers({"Accept": "text/event-stream"})
        if last_event_id is not None:
            headers["Last-Event-ID"] = str(last_event_id)
        conn = self._connect(timeout)
        try:
            conn.request("GET", f"{self._prefix}/v1/sessions/{_quote(session_id)}/events",
                         headers=headers)
            resp = conn.getresponse()
            if resp.status >= 400:
                self._raise(resp, resp.read())
        except BaseException:
            conn.close()
            raise
        return _sse(conn, resp)


def _sse(conn, resp):
    try:
        etype, eid, data = "", "", []
        while True:
            raw = resp.readline()
            if not raw:
                return
            line = raw.decode("utf-8").rstrip("\r\n")
            if not line:
                if data or etype:
                    text = "\n".join(data)
                    try:
                        payload = json.loads(text)
                    except ValueError:
                        payload = text
                    yield Event(etype or "message", eid, payload)
                    if etype == "end":
                        return
                etype, data = "", []
                continue
            if line.startswith(":"):
                continue
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "event":
                etype = value
            elif field == "data":
                data.append(value)
            elif field == "id":
                eid = value
    finally:
        conn.close()


class Session:
    """An open session: the same operations without repeating its id. A context manager that
    closes the session on exit."""

    def __init__(self, client, info):
        self.client = client
        self.info = info
        self.id = info["session_id"]

    def step(self, steps, events=None, dense=None, seq=None, outputs=None):
        return self.client.step(self.id, steps, events, dense, seq, outputs)

    def stream(self, batches):
        return self.client.stream(self.id, batches)

    def events(self, last_event_id=None, timeout=None):
        return self.client.events(self.id, last_event_id, timeout)

    def get(self):
        return self.client.session(self.id)

    def reset(self):
        return self.client.reset(self.id)

    def snapshot(self):
        return self.client.snapshot(self.id)

    def restore(self, snapshot):
        return self.client.restore(self.id, snapshot)

    def close(self):
        self.client.close_session(self.id)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        try:
            self.close()
        except SpikeserveError as e:
            if e.status != 404:
                raise
