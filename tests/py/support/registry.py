"""Test registries: Debian's docker-registry on a free loopback port (open, htpasswd, or token auth
with a small token issuer), and HTTP proxies that misbehave on purpose."""

from __future__ import annotations

import base64
import datetime as dt
import http.client
import http.server
import json
import secrets
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
from pathlib import Path
from typing import Callable, Optional

REGISTRY_BIN = shutil.which("docker-registry") or "/usr/bin/docker-registry"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RegistryServer:
    def __init__(self, workdir: Path, auth: Optional[dict] = None) -> None:
        self.workdir = Path(workdir)
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.host}"
        storage = self.workdir / "storage"
        storage.mkdir(parents=True, exist_ok=True)
        config = {
            "version": 0.1,
            "log": {"level": "error", "accesslog": {"disabled": True}},
            "storage": {"filesystem": {"rootdirectory": str(storage)}, "delete": {"enabled": True}},
            "http": {"addr": self.host, "secret": secrets.token_hex(16)},
        }
        if auth:
            config["auth"] = auth
        cfg = self.workdir / "config.yml"
        cfg.write_text(json.dumps(config))  # JSON is valid YAML
        self._log = open(self.workdir / "registry.log", "wb")
        self.proc = subprocess.Popen([REGISTRY_BIN, "serve", str(cfg)], stdout=self._log,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"docker-registry exited: {(self.workdir / 'registry.log').read_text()}")
            try:
                urllib.request.urlopen(self.url + "/v2/", timeout=1)
                return
            except urllib.error.HTTPError:
                return  # 401: up, wants auth
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("docker-registry did not start within 20 s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


def htpasswd_auth(workdir: Path, user: str, password: str) -> dict:
    import bcrypt

    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
    path = Path(workdir) / "htpasswd"
    path.write_text(f"{user}:{hashed}\n")
    return {"htpasswd": {"realm": "benchrun-test", "path": str(path)}}


class _QuietHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # keep test output clean
        pass


class TokenIssuer:
    """Issues RS256 JWTs the registry accepts (x5c chain against its rootcertbundle)."""

    def __init__(self, workdir: Path, service: str = "benchrun-test-registry",
                 users: Optional[dict[str, str]] = None, allow_anonymous: bool = True,
                 expires_in: int = 300) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.x509.oid import NameOID

        self.service = service
        self.issuer = "benchrun-test-issuer"
        self.users = users or {}
        self.allow_anonymous = allow_anonymous
        self.expires_in = expires_in
        self.requests: list[dict] = []
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "benchrun token issuer")])
        now = dt.datetime.now(dt.timezone.utc)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=2))
                .sign(self.key, hashes.SHA256()))
        self.cert_der = cert.public_bytes(serialization.Encoding.DER)
        self.bundle = Path(workdir) / "token-ca.pem"
        self.bundle.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        issuer = self

        class Handler(_QuietHandler):
            def do_GET(self) -> None:
                issuer._handle(self)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/token"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def registry_auth(self) -> dict:
        return {"token": {"realm": self.url, "service": self.service, "issuer": self.issuer,
                          "rootcertbundle": str(self.bundle)}}

    def _handle(self, h: http.server.BaseHTTPRequestHandler) -> None:
        import jwt
        from urllib.parse import parse_qs, urlparse

        q = parse_qs(urlparse(h.path).query)
        user = ""
        auth = h.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            u, _, p = base64.b64decode(auth[6:]).decode().partition(":")
            if self.users.get(u) != p:
                return self._reply(h, 401, {"details": "bad credentials"})
            user = u
        elif not self.allow_anonymous:
            return self._reply(h, 401, {"details": "credentials required"})
        self.requests.append({"user": user, "scope": q.get("scope", []), "service": q.get("service")})
        access = []
        for scope in q.get("scope", []):
            typ, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            wanted = actions.split(",")
            granted = [a for a in wanted if a == "pull" or (user and a in ("push", "delete"))]
            access.append({"type": typ, "name": name, "actions": granted})
        now = int(time.time())
        claims = {"iss": self.issuer, "sub": user, "aud": self.service, "iat": now, "nbf": now - 5,
                  "exp": now + self.expires_in, "jti": secrets.token_hex(8), "access": access}
        token = jwt.encode(claims, self.key, algorithm="RS256",
                           headers={"x5c": [base64.b64encode(self.cert_der).decode()]})
        self._reply(h, 200, {"token": token, "expires_in": self.expires_in})

    @staticmethod
    def _reply(h: http.server.BaseHTTPRequestHandler, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class MeddlingProxy:
    """An HTTP reverse proxy in front of a registry that can damage blob responses.

    mode "cut": the first GET of each blob (no Range) is cut after half its body; later ones pass.
    mode "corrupt": every blob body has one byte flipped (same length).
    Records every request's method, path and Range header in .requests.
    """

    def __init__(self, upstream: str, mode: str) -> None:
        self.upstream = upstream  # host:port
        self.mode = mode
        self.requests: list[tuple[str, str, Optional[str]]] = []
        self.cut: set[str] = set()
        proxy = self

        class Handler(_QuietHandler):
            def do_GET(self) -> None:
                proxy._forward(self, "GET")

            def do_HEAD(self) -> None:
                proxy._forward(self, "HEAD")

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def _forward(self, h: http.server.BaseHTTPRequestHandler, method: str) -> None:
        self.requests.append((method, h.path, h.headers.get("Range")))
        conn = http.client.HTTPConnection(self.upstream, timeout=30)
        headers = {k: v for k, v in h.headers.items() if k.lower() not in ("host", "connection")}
        conn.request(method, h.path, headers=headers)
        resp = conn.getresponse()
        body = resp.read()
        conn.close()
        is_blob = "/blobs/sha256:" in h.path and method == "GET" and resp.status in (200, 206)
        h.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in ("connection", "transfer-encoding", "content-length"):
                h.send_header(k, v)
        h.send_header("Content-Length", str(len(body)))
        h.send_header("Connection", "close")
        h.end_headers()
        if is_blob and self.mode == "cut" and h.headers.get("Range") is None and h.path not in self.cut \
                and len(body) > 64:
            self.cut.add(h.path)
            h.wfile.write(body[: len(body) // 2])
            h.wfile.flush()
            h.connection.shutdown(socket.SHUT_RDWR)
            h.close_connection = True
            return
        if is_blob and self.mode == "corrupt" and body:
            body = bytes([body[0] ^ 0xFF]) + body[1:]
        if method == "GET":
            h.wfile.write(body)
        h.close_connection = True

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def tree_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in Path(root).rglob("*"))


def wait_for(pred: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return False


