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

9. Its version is the image tag's (`FAKE_IMAGE`, set by the fake kubelet, e.g.
   `registry.k8s.io/kube-apiserver:v1.34.1`), else FAKE_APISERVER_VERSION, else 1.34.
10. --authentication-config validation (start-up and reload) also refuses an issuer URL equal to
   a --service-account-issuer: `jwt[0].issuer.url: Invalid value: "URL": URL must not overlap
   with disallowed issuers: [URL...]` (staging/src/k8s.io/apiserver/pkg/apis/apiserver/validation/
   validation.go, validateURL; kube-apiserver passes its service account issuers as the
   disallowed ones).
11. The file's `anonymous` section (1.32+): with `--anonymous-auth` also given, start-up fails
   with `anonymous: Forbidden: --anonymous-auth flag cannot be set when anonymous field is
   configured in authentication configuration file` (pkg/kubeapiserver/options/authentication.go,
   ToAuthenticationConfig). `enabled: false` refuses every anonymous request; `enabled: true`
   with `conditions` allows anonymous requests only to those paths (k8s.io/apiserver
   pkg/authentication/request/anonymous).
12. Reloads (pkg/kubeapiserver/options/authentication.go, ApplyTo: filesystem.WatchUntil on the
   file, then the callback): the file is read (here polled every 0.2 s through the pod's mounts);
   content equal to the last one tracked is ignored; content that fails to decode or validate
   (the rules of 6 and 10), or whose `anonymous` differs from the start-up file ("anonymous:
   Forbidden: changed from initial configuration file"), is logged as klog's ErrorS
   `"failed to load authentication config"` / `"failed to validate authentication config"` with
   the error, counted as a failed reload and tracked (not retried); the old configuration stays
   in use and the server stays healthy. Valid content is applied, logged as `"reloaded
   authentication config"` and counted as a successful reload.
13. /metrics (any authenticated or allowed anonymous request; authorization is not modelled)
   serves, when --authentication-config is given, the series of k8s.io/apiserver
   pkg/server/options/authenticationconfig/metrics/metrics.go:
   `apiserver_authentication_config_controller_automatic_reloads_total{apiserver_id_hash,status}`,
   `..._automatic_reload_last_timestamp_seconds{apiserver_id_hash,status}` (once a reload of
   that status happened) and, from 1.34 (kubernetes/kubernetes#132299),
   `apiserver_authentication_config_controller_last_config_info{apiserver_id_hash,hash} 1` with
   hash = "sha256:" + hex SHA-256 of the file's bytes as read (getHash). Values are written as
   client_golang writes floats (strconv 'g', shortest: an exponent from 1e+06 up).

Test switch: when NODE_DIR/never-ready exists and one of the arguments contains its content, the
process runs but /readyz answers 500 forever (an API server that never becomes ready).
FAKE_APISERVER_STARTUP=SECONDS (default 0.3): the pause before it listens. scripts/bench-patch does
not use this file: its nodes run kube-apiserver-bench (a restart that costs no CPU, listening
from the start as a real kube-apiserver does).
"""
import decimal
import hashlib
import http.server
import json
import os
import socketserver
import ssl
import sys
import threading
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


def version():
    image = os.environ.get("FAKE_IMAGE", "")
    tag = image.rsplit(":", 1)[1] if ":" in image else os.environ.get("FAKE_APISERVER_VERSION", "v1.34")
    try:
        major, minor = tag.lstrip("v").split(".")[:2]
        return (int(major), int(minor.split("-")[0]))
    except ValueError:
        return (1, 34)


def go_float(v):
    """A float as client_golang's text format writes it (strconv.FormatFloat(v, 'g', -1, 64))."""
    v = float(v)
    if v == int(v) and abs(v) < 1e6:
        return str(int(v))
    sign, digits, exp = decimal.Decimal(repr(v)).normalize().as_tuple()
    x = len(digits) + exp - 1
    if x < -4 or x >= 6:
        d = "".join(map(str, digits))
        m = d[0] + ("." + d[1:] if len(d) > 1 else "")
        return ("-" if sign else "") + f"{m}e{'+' if x >= 0 else '-'}{abs(x):02d}"
    return repr(v)


def check_config(raw, disallowed):
    """The error of an AuthenticationConfiguration (rules 6 and 10), or (None, doc)."""
    try:
        doc = yaml.safe_load(raw)
    except yaml.YAMLError as e:
        return (f"load", f"{e}".replace("\n", " ")), None
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
        return ("load", "invalid authentication config"), None
    for i, j in enumerate(doc["jwt"]):
        url = j["issuer"]["url"]
        if url in disallowed:
            return ("validate", f'jwt[{i}].issuer.url: Invalid value: "{url}": URL must not overlap with disallowed issuers: [{" ".join(sorted(disallowed))}]'), None
    return None, doc


def klog(level, msg, err=None):
    tail = f" err={json.dumps(str(err))}" if err is not None else ""
    print(f'{level}0000 00:00:00.000000       1 authentication.go:0] "{msg}"{tail}', flush=True)


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
    disallowed = set(flags.get("service-account-issuer") or [])
    state = {"config": None, "tracked": None, "hash": None, "reloads": {}, "last": {}}
    lock = threading.Lock()
    if "authentication-config" in flags:
        path = flags["authentication-config"][-1]
        raw = read_visible("--authentication-config", path)
        err, doc = check_config(raw, disallowed)
        if err:
            die(f"failed to load authentication config {path}: {err[1]}")
        if "anonymous" in doc and "anonymous-auth" in flags:
            die("anonymous: Forbidden: --anonymous-auth flag cannot be set when anonymous field is configured in authentication configuration file")
        state.update(config=doc, tracked=raw, hash="sha256:" + hashlib.sha256(raw).hexdigest())
        initial_anonymous = doc.get("anonymous")

        def watch():
            while True:
                time.sleep(0.2)
                host_path = visible(path)
                try:
                    with open(host_path, "rb") as f:
                        raw = f.read()
                except (OSError, TypeError) as e:
                    with lock:
                        klog("E", "failed to read authentication config file", e)
                        state["reloads"]["failure"] = state["reloads"].get("failure", 0) + 1
                        state["last"]["failure"] = time.time()
                    continue
                with lock:
                    if raw == state["tracked"]:
                        continue
                    err, doc = check_config(raw, disallowed)
                    if not err and doc.get("anonymous") != initial_anonymous:
                        err = ("validate", "anonymous: Forbidden: changed from initial configuration file")
                    state["tracked"] = raw
                    if err:
                        klog("E", f"failed to {err[0]} authentication config", err[1])
                        state["reloads"]["failure"] = state["reloads"].get("failure", 0) + 1
                        state["last"]["failure"] = time.time()
                        trace(f"reload rejected: {err[1]}")
                        continue
                    state.update(config=doc, hash="sha256:" + hashlib.sha256(raw).hexdigest())
                    klog("I", "reloaded authentication config")
                    state["reloads"]["success"] = state["reloads"].get("success", 0) + 1
                    state["last"]["success"] = time.time()
                    trace("reloaded authentication config")

        threading.Thread(target=watch, daemon=True).start()
    api_id = "sha256:" + hashlib.sha256(f"apiserver-{os.getpid()}".encode()).hexdigest()

    def metrics():
        if "authentication-config" not in flags:
            return ""
        out = []
        with lock:
            name = "apiserver_authentication_config_controller"
            for status, n in sorted(state["reloads"].items()):
                out.append(f'{name}_automatic_reloads_total{{apiserver_id_hash="{api_id}",status="{status}"}} {n}')
            for status, t in sorted(state["last"].items()):
                out.append(f'{name}_automatic_reload_last_timestamp_seconds{{apiserver_id_hash="{api_id}",status="{status}"}} {go_float(t)}')
            if version() >= (1, 34):
                out.append(f'{name}_last_config_info{{apiserver_id_hash="{api_id}",hash="{state["hash"]}"}} 1')
        return "".join(line + "\n" for line in out)

    def anonymous_allowed(path):
        section = (state["config"] or {}).get("anonymous")
        if section is None:
            return (flags.get("anonymous-auth") or ["true"])[-1] != "false"
        if not section.get("enabled"):
            return False
        conditions = section.get("conditions") or []
        return not conditions or any(c.get("path") == path for c in conditions)

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
            if (auth and not known) or (not auth and not anonymous_allowed(path)):
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
            elif path == "/metrics":
                code, body = 200, metrics().encode()
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
