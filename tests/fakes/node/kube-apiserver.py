#!/usr/bin/python3
"""A fake kube-apiserver for the SSH test nodes. The fake kubelet (kubelet.py), fake microk8s
and fake systemctl start it with the real command line (`kube-apiserver --flag=value ...`), so
`/proc/<pid>/cmdline` carries the flags as the real one does. It validates its flags by the
real API server's rules and exits with the real messages when they are broken; otherwise it
serves /readyz, /livez and /healthz ("ok") over HTTPS.

Rules (each from kubernetes/kubernetes, pkg/kubeapiserver/options/authentication.go unless said):
1. Flags are `--name=value` or `--name` (spf13/pflag); anything else ends the process.
2. "oidc-issuer-url and oidc-client-id must be specified together when any oidc-* flags are
   set" (validateOIDCOptions).
3. The issuer URL must use https: "oidc-issuer-url must use https scheme" (validateOIDCOptions;
   the structured config says "must use https scheme" in
   staging/src/k8s.io/apiserver/pkg/apis/apiserver/validation/validation.go).
4. "authentication-config file and oidc-* flags are mutually exclusive" (any --oidc-* flag
   that is set counts, even --oidc-signing-algs=RS256).
5. --oidc-ca-file is read at start (os.ReadFile); a file the container cannot see (no
   volumeMount of a hostPath holding it) fails with "no such file or directory".
6. --authentication-config is read and decoded at start: a missing file, or one that is not an
   AuthenticationConfiguration of apiserver.config.k8s.io/{v1alpha1,v1beta1,v1} with jwt[].issuer.url
   (https) and non-empty audiences and claimMappings.username, fails start-up
   (staging/src/k8s.io/apiserver/pkg/apis/apiserver/validation/validation.go).
7. Authentication of the health endpoints: `--anonymous-auth` (default true; pflag bool, so
   `--anonymous-auth=false`) and `--token-auth-file` (CSV `token,user,uid[,"groups"]`, read at
   start, a missing file ends start-up: k8s.io/apiserver pkg/authentication/token/tokenfile).
   A request with a bearer token not in the file, or with none while anonymous auth is off,
   gets 401 with a Status body (k8s.io/apiserver pkg/endpoints/filters/authentication.go,
   `Unauthorized`). Authorization is not modelled (/readyz is readable by
   system:public-info-viewer and by any authenticated user).
8. It listens on --bind-address (or, when that is 0.0.0.0 or unset, --advertise-address, since
   test nodes share one network namespace) and --secure-port (default 6443).

Test switch: when NODE_DIR/never-ready exists and one of the arguments contains its content, the
process runs but /readyz answers 500 forever (an API server that never becomes ready).
FAKE_APISERVER_STARTUP=SECONDS (default 0.3): the pause before it listens. scripts/bench-patch does
not use this file: its nodes run kube-apiserver-bench (a restart that costs no CPU).
"""
import http.server
import json
import os
import socketserver
import ssl
import sys
import time

import yaml


def trace(msg):
    """Timestamped events for diagnosing the test harness (NODE_DIR/trace.log, not the pod log)."""
    try:
        with open(os.path.join(os.environ.get("NODE_DIR", "/nonexistent"), "trace.log"), "a") as f:
            f.write(f"{time.time():.3f} apiserver[{os.getpid()}] {msg}\n")
    except OSError:
        pass


def die(msg):
    trace(f"exit: {msg}")
    print(f"E0000 00:00:00.000000       1 run.go:72] \"command failed\" err=\"{msg}\"", flush=True)
    sys.exit(1)


def visible(path):
    """The host path behind `path` as the container sees it, or None."""
    best = None
    for mount_path, host_path in json.loads(os.environ.get("FAKE_MOUNTS", "null") or "null") or []:
        m = mount_path.rstrip("/")
        if path == m or path.startswith(m + "/"):
            if best is None or len(m) > len(best[0]):
                best = (m, host_path.rstrip("/"))
    if os.environ.get("FAKE_MOUNTS") is None:
        return path  # not in a container (microk8s kubelite, k3s): the host's files
    if best is None:
        return None
    return best[1] + path[len(best[0]):]


def read_visible(flag, path):
    host = visible(path)
    if host is None or not os.path.isfile(host):
        die(f"failed to read {flag} {path}: open {path}: no such file or directory")
    with open(host, "rb") as f:
        return f.read()


def main(argv):
    flags = {}
    for a in argv:
        if not a.startswith("--"):
            die(f"unknown command \"{a}\" for \"kube-apiserver\"")
        name, _, value = a[2:].partition("=")
        flags.setdefault(name, []).append(value)
    oidc = [n for n in flags if n.startswith("oidc-")]
    if oidc and ("oidc-issuer-url" not in flags or "oidc-client-id" not in flags):
        die("oidc-issuer-url and oidc-client-id must be specified together when any oidc-* flags are set")
    if "oidc-issuer-url" in flags and not flags["oidc-issuer-url"][-1].startswith("https://"):
        die("oidc-issuer-url must use https scheme")
    if "authentication-config" in flags and oidc:
        die("authentication-config file and oidc-* flags are mutually exclusive")
    if "oidc-ca-file" in flags:
        read_visible("--oidc-ca-file", flags["oidc-ca-file"][-1])
    if "authentication-config" in flags:
        path = flags["authentication-config"][-1]
        try:
            doc = yaml.safe_load(read_visible("--authentication-config", path))
        except yaml.YAMLError as e:
            die(f"failed to load authentication config {path}: {e}")
        ok = (
            isinstance(doc, dict)
            and doc.get("kind") == "AuthenticationConfiguration"
            and doc.get("apiVersion") in (
                "apiserver.config.k8s.io/v1alpha1",
                "apiserver.config.k8s.io/v1beta1",
                "apiserver.config.k8s.io/v1",
            )
            and isinstance(doc.get("jwt"), list)
            and all(
                str((j.get("issuer") or {}).get("url", "")).startswith("https://")
                and (j.get("issuer") or {}).get("audiences")
                and (j.get("claimMappings") or {}).get("username")
                for j in doc["jwt"]
            )
        )
        if not ok:
            die(f"invalid authentication config {path}")
    anonymous = (flags.get("anonymous-auth") or ["true"])[-1] != "false"
    tokens = set()
    if "token-auth-file" in flags:
        for line in read_visible("--token-auth-file", flags["token-auth-file"][-1]).decode().splitlines():
            if line.strip():
                tokens.add(line.split(",")[0])
    never_ready = False
    marker = os.path.join(os.environ.get("NODE_DIR", "/nonexistent"), "never-ready")
    if os.path.exists(marker):
        needle = open(marker).read().strip()
        never_ready = bool(needle) and any(needle in a for a in argv)
    host = (flags.get("bind-address") or [""])[-1]
    if host in ("", "0.0.0.0"):
        host = (flags.get("advertise-address") or ["127.0.0.1"])[-1]
    port = int((flags.get("secure-port") or ["6443"])[-1])
    trace(f"flags ok, binding {host}:{port}")
    time.sleep(float(os.environ.get("FAKE_APISERVER_STARTUP", "0.3")))  # start-up

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            trace(f"GET {self.path} from {self.client_address}")
            path = self.path.split("?")[0]
            auth = self.headers.get("Authorization") or ""
            known = auth.startswith("Bearer ") and auth[len("Bearer "):] in tokens
            if (auth and not known) or (not auth and not anonymous):
                body = json.dumps({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                   "message": "Unauthorized", "reason": "Unauthorized", "code": 401}).encode()
                self.send_response(401)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            if path in ("/readyz", "/livez", "/healthz"):
                code = 500 if never_ready and path == "/readyz" else 200
                body = b"ok" if code == 200 else b"[-]etcd failed: reason withheld\nreadyz check failed"
            else:
                code, body = 404, b"404 page not found"
            self.send_response(code)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    class Server(http.server.ThreadingHTTPServer):
        allow_reuse_address = True
        daemon_threads = True

        def server_bind(self):
            # HTTPServer.server_bind does a reverse DNS lookup (socket.getfqdn) between bind()
            # and listen(); with a slow resolver the port refuses connections meanwhile.
            socketserver.TCPServer.server_bind(self)
            self.server_name, self.server_port = host, port

    srv = Server((host, port), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    node = os.environ.get("NODE_DIR", "")
    ctx.load_cert_chain(os.path.join(node, "tls.crt"), os.path.join(node, "tls.key"))
    # Handshake in the handler thread, so one slow client cannot block accept().
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True, do_handshake_on_connect=False)
    print(f"I0000 Serving securely on {host}:{port}", flush=True)
    if never_ready:
        print("W0000 readyz check failed: etcd not reachable", flush=True)
    trace(f"serving on {srv.socket.getsockname()} fd {srv.socket.fileno()}")
    import signal
    signal.signal(signal.SIGTERM, lambda *a: (trace("SIGTERM"), os._exit(0)))
    try:
        srv.serve_forever()
    finally:
        trace("serve_forever returned")


if __name__ == "__main__":
    trace(f"start {sys.argv[3:6]}")
    main(sys.argv[2:] if len(sys.argv) > 1 and os.path.basename(sys.argv[1]) == "kube-apiserver" else sys.argv[1:])
