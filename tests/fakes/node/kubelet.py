#!/usr/bin/python3
"""A fake kubelet for the SSH test nodes (see scripts/test-node). It runs inside the node's
private mount and PID namespaces and does, for static pods, what the real kubelet does:

* Every file in the manifests dir whose name does not start with a dot is a pod; dot files are
  ignored. [kubernetes/kubernetes cmd/kubelet/app/options/options.go, --pod-manifest-path:
  "Files starting with dots will be ignored."; pkg/kubelet/config/file.go]
* Two files declaring the same pod (namespace/name) are a conflict: the kubelet keeps what it
  runs and does not apply either update; this is the leftover `.bak` trap of
  kubernetes/kubernetes#55596 ("apiserver does not update if another kube-apiserver.yaml.bak is
  present"). Files that do not parse as a Pod are logged and skipped ("Could not process
  manifest file", kubernetes/kubernetes#64206).
* A changed pod spec restarts the container with the new command line; a container that exits
  is restarted after a back-off (CrashLoopBackOff, here 1 s).
* The container's command is `command` + `args`; files are visible only through volumeMounts of
  hostPath volumes (the API server itself checks what it can open: kube-apiserver.py).
* Container logs go to /var/log/pods/<ns>_<pod>_<uid>/<container>/<restart>.log as with CRI.
* A change in the manifests dir is seen at once (inotify, as the real kubelet watches the
  directory: pkg/kubelet/config/file_linux.go), and the dir is re-listed every 0.2 s besides.

Only the `kube-apiserver` container is run, by tests/fakes/node/kube-apiserver.py, or, in bench
mode (FAKE_APISERVER_BENCH=1, scripts/bench-patch), by tests/fakes/node/kube-apiserver-bench: it
listens at once, as a real kube-apiserver, and serves after a sleep of NODE_DIR/apiserver-delay
seconds (read at each start; default 0.5), so a restart costs no CPU while it lasts.
"""
import ctypes
import signal
import hashlib
import json
import os
import select
import subprocess
import sys
import time

import yaml

MANIFESTS = "/etc/kubernetes/manifests"
BENCH = os.environ.get("FAKE_APISERVER_BENCH") == "1"
LOGS = "/var/log/pods"
HERE = os.path.dirname(os.path.abspath(__file__))


def log(msg):
    print(time.strftime("%H:%M:%S"), msg, flush=True)
    try:
        with open(os.path.join(os.environ.get("NODE_DIR", "/nonexistent"), "trace.log"), "a") as f:
            f.write(f"{time.time():.3f} kubelet {msg[:200]}\n")
    except OSError:
        pass


# Parsed manifests by their bytes: an unchanged file is not parsed again every tick (a pure-
# Python YAML parse is milliseconds; fifty idle nodes would otherwise keep a core busy).
PARSED = {}


def parse(raw):
    if raw not in PARSED:
        if len(PARSED) > 64:
            PARSED.clear()
        try:
            PARSED[raw] = (yaml.safe_load(raw), None)
        except Exception as e:  # noqa: BLE001 - remembered and raised again below
            PARSED[raw] = (None, e)
    doc, err = PARSED[raw]
    if err is not None:
        raise err
    return doc


def scan():
    pods = {}
    if not os.path.isdir(MANIFESTS):
        return pods
    for name in sorted(os.listdir(MANIFESTS)):
        if name.startswith("."):
            continue
        path = os.path.join(MANIFESTS, name)
        if not os.path.isfile(path):
            continue
        try:
            with open(path, "rb") as f:
                raw = f.read()
            doc = parse(raw)
        except Exception as e:  # noqa: BLE001 - any parse failure is "cannot process"
            log(f"Could not process manifest file {path}: {e}")
            continue
        if not isinstance(doc, dict) or doc.get("kind") != "Pod":
            log(f"Could not process manifest file {path}: not a Pod")
            continue
        meta = doc.get("metadata") or {}
        key = (meta.get("namespace") or "default", meta.get("name") or "")
        pods.setdefault(key, []).append((path, doc, raw))
    return pods


def container_of(doc):
    spec = doc.get("spec") or {}
    for c in spec.get("containers") or []:
        if c.get("name") == "kube-apiserver":
            return spec, c
    return None, None


def mounts_of(spec, c):
    vols = {}
    for v in spec.get("volumes") or []:
        hp = v.get("hostPath") or {}
        if "path" in hp:
            vols[v.get("name")] = hp["path"]
    out = []
    for m in c.get("volumeMounts") or []:
        if m.get("name") in vols:
            out.append([m.get("mountPath"), vols[m.get("name")]])
    return out


class Runner:
    def __init__(self):
        self.proc = None
        self.key = None
        self.restarts = 0
        self.last_exit = 0.0

    def stop(self):
        if self.proc and self.proc.poll() is None:
            log(f"stopping pid {self.proc.pid}")
            if BENCH:
                # The container's process group.
                try:
                    os.killpg(self.proc.pid, signal.SIGTERM)
                except OSError:
                    pass
            else:
                self.proc.terminate()
            try:
                self.proc.wait(3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def start(self, key, spec, c, meta):
        argv = [str(a) for a in (c.get("command") or []) + (c.get("args") or [])]
        uid = key[:12]
        logdir = os.path.join(
            LOGS, f"{meta.get('namespace', 'default')}_{meta.get('name')}_{uid}", "kube-apiserver"
        )
        os.makedirs(logdir, exist_ok=True)
        logf = open(os.path.join(logdir, f"{self.restarts}.log"), "ab")
        env = dict(os.environ)
        env["FAKE_MOUNTS"] = json.dumps(mounts_of(spec, c))
        # The binary's version is the image's (kube-apiserver.py reads it from the tag).
        env["FAKE_IMAGE"] = str(c.get("image") or "")
        log(f"starting kube-apiserver pod {uid}: {argv}")
        if BENCH:
            try:
                with open(os.path.join(os.environ.get("NODE_DIR", "/nonexistent"), "apiserver-delay")) as f:
                    delay = str(float(f.read().strip()))
            except (OSError, ValueError):
                delay = "0.5"
            program = [sys.executable, "-S", os.path.join(HERE, "kube-apiserver-bench"), delay]
        else:
            program = [sys.executable, os.path.join(HERE, "kube-apiserver.py")]
        self.proc = subprocess.Popen(
            program + argv,
            stdout=logf,
            stderr=logf,
            env=env,
            start_new_session=True,
        )
        log(f"started pid {self.proc.pid}")
        logf.close()

    def tick(self):
        pods = scan()
        apiserver = [(k, v) for k, v in pods.items() if container_of(v[0][1])[1] is not None]
        if not apiserver:
            if self.proc:
                log("kube-apiserver manifest gone: stopping the pod")
                self.stop()
                self.key = None
            return
        (ns, name), files = apiserver[0]
        if len(files) > 1:
            log(f"conflict: {len(files)} files declare pod {ns}/{name}: "
                f"{[f for f, _, _ in files]}; keeping what runs")
            return
        path, doc, raw = files[0]
        key = hashlib.sha256(raw).hexdigest()
        spec, c = container_of(doc)
        if key != self.key:
            log(f"pod spec of {ns}/{name} changed ({path}); restarting")
            self.stop()
            self.key = key
            self.restarts = 0
            self.start(key, spec, c, doc.get("metadata") or {})
            return
        if self.proc and self.proc.poll() is not None:
            if self.last_exit == 0.0:
                self.last_exit = time.time()
            if time.time() - self.last_exit >= 1.0:
                self.restarts += 1
                self.last_exit = 0.0
                log(f"kube-apiserver exited ({self.proc.returncode}); back-off restart {self.restarts}")
                self.start(key, spec, c, doc.get("metadata") or {})


# inotify(7) masks: a file in the manifests dir written, renamed in or out, created, removed.
IN_WATCH = 0x2 | 0x4 | 0x8 | 0x40 | 0x80 | 0x100 | 0x200 | 0x400 | 0x800


def watch():
    """An inotify descriptor watching MANIFESTS (None when it cannot be had). The real kubelet
    watches the static-pod directory with inotify and reacts to a change at once
    (kubernetes/kubernetes pkg/kubelet/config/file_linux.go, `startWatch`: fsnotify on the
    path), besides its periodic re-list (`--file-check-frequency`, 20 s)."""
    if not os.path.isdir(MANIFESTS):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if fd < 0:
            return None
        if libc.inotify_add_watch(fd, MANIFESTS.encode(), IN_WATCH) < 0:
            os.close(fd)
            return None
        return fd
    except (OSError, AttributeError):
        return None


def main():
    r = Runner()
    fd = None
    while True:
        try:
            r.tick()
        except Exception as e:  # noqa: BLE001 - keep running like the real kubelet
            log(f"error: {e}")
        if fd is None:
            fd = watch()
        if fd is None:
            time.sleep(0.2)
            continue
        # Wakes at once on a change (a settle of 10 ms lets a write-then-rename finish), else
        # re-lists every 0.2 s as before (back-off restarts, a directory made later).
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            time.sleep(0.01)
            try:
                while os.read(fd, 65536):
                    pass
            except BlockingIOError:
                pass
            except OSError:
                os.close(fd)
                fd = None


if __name__ == "__main__":
    main()
