"""Shared by the fake `microk8s`, `systemctl` and `journalctl` of the SSH test nodes: find the
node (its directory and fakes, from the environment of the node's PID 1, the sshd that
scripts/test-node starts with them), and run the fake kube-apiserver as a service would:
detached, logging to /var/log/pods/fake-services/<name>.log, its PID in <name>.pid (the
node's private tmpfs: nothing on the host changes).
"""
import os
import signal
import socket
import subprocess
import sys
import time

STATE = "/var/log/pods/fake-services"


def node_env():
    """This environment plus the node's NODE_* variables (from the first node process that
    has them: sshd's sessions do not pass them on)."""
    env = dict(os.environ)
    for pid in ["1"] + sorted(p for p in os.listdir("/proc") if p.isdigit()):
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                items = f.read().split(b"\0")
        except OSError:
            continue
        found = dict(i.decode(errors="replace").partition("=")[::2] for i in items if b"=" in i)
        if found.get("NODE_FAKES"):
            env.update({k: v for k, v in found.items() if k.startswith("NODE_")})
            break
    return env


def pid_of(name):
    try:
        with open(os.path.join(STATE, name + ".pid")) as f:
            pid = int(f.read().strip())
        os.kill(pid, 0)
        with open(f"/proc/{pid}/stat") as f:
            if f.read().split(") ")[1].startswith("Z"):
                return None
        return pid
    except (OSError, ValueError, IndexError):
        return None


def stop(name):
    pid = pid_of(name)
    if pid is None:
        return
    os.kill(pid, signal.SIGTERM)
    for _ in range(50):
        if pid_of(name) is None:
            break
        time.sleep(0.1)
    else:
        os.kill(pid, signal.SIGKILL)
    try:
        os.remove(os.path.join(STATE, name + ".pid"))
    except OSError:
        pass


def start(name, argv, host, port, mounts=None):
    """Starts `kube-apiserver ARGV`; True once it accepts connections on host:port, False when
    it exited (bad flags) or did not listen within 10 s."""
    env = node_env()
    os.makedirs(STATE, exist_ok=True)
    if mounts is not None:
        import json
        env["FAKE_MOUNTS"] = json.dumps(mounts)
    log = open(os.path.join(STATE, name + ".log"), "ab")
    p = subprocess.Popen(
        [sys.executable, os.path.join(env.get("NODE_FAKES", ""), "kube-apiserver.py"), "kube-apiserver"] + argv,
        stdout=log, stderr=log, stdin=subprocess.DEVNULL, env=env, start_new_session=True,
    )
    with open(os.path.join(STATE, name + ".pid"), "w") as f:
        f.write(str(p.pid))
    deadline = time.time() + 10
    while time.time() < deadline:
        if p.poll() is not None:
            return False
        try:
            socket.create_connection((host, port), timeout=0.5).close()
            return True
        except OSError:
            time.sleep(0.1)
    return False


def tail(name, n):
    try:
        with open(os.path.join(STATE, name + ".log"), errors="replace") as f:
            return f.readlines()[-n:]
    except OSError:
        return []
