"""Shared helpers for the fake distribution tools (see each tool's header for its rules)."""
import os
import sys


def log(argv):
    """Append this invocation (name + args) to $FAKE_LOG: args end with \\x1f, calls with \\x1e."""
    with open(os.environ["FAKE_LOG"], "a") as f:
        f.write("".join(a + "\x1f" for a in argv) + "\x1e")


def die(message, code=1):
    print(message, file=sys.stderr)
    sys.exit(code)


def state_dir(tool):
    d = os.path.join(os.environ["FAKE_STATE"], tool)
    os.makedirs(d, exist_ok=True)
    return d


def fail_once(tool, verb):
    """Tests make the next `verb` of `tool` fail by writing $FAKE_STATE/<tool>/fail-<verb>
    (its content is the error message); the file is consumed, so a retry or restore succeeds."""
    path = os.path.join(state_dir(tool), f"fail-{verb}")
    if os.path.exists(path):
        message = open(path).read().strip() or f"fake {tool}: {verb} failed"
        os.remove(path)
        die(message)
