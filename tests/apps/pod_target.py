"""A pod that misbehaves on demand, for the kubelet and cleanup tests (stdlib only, so it
starts in a few milliseconds). Run: python pod_target.py PORT

Every GET answers 200 with ``x-version: $VERSION``, except as the environment says:
  IGNORE_SIGTERM=1         SIGTERM does nothing (the kubelet must SIGKILL it)
  FAIL_LIVENESS_ONCE=DIR   the first process of each POD_NAME fails /health/live (500) from
                           0.5 s after it starts (DIR holds a marker per pod name)
  NEVER_STARTS=1           /health/startup answers 503 forever
  CRASH_VERSION=V          a pod of version V exits with status 1 at once
"""

from __future__ import annotations

import os
import signal
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

VERSION = os.environ.get("VERSION", "dev")
STARTED = time.monotonic()


def first_process_of_pod() -> bool:
    directory = os.environ.get("FAIL_LIVENESS_ONCE")
    if not directory:
        return False
    marker = Path(directory) / os.environ.get("POD_NAME", "pod")
    if marker.exists():
        return False
    marker.write_text(str(os.getpid()))
    return True


FAIL_LIVENESS = first_process_of_pod()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        status = 200
        if self.path == "/health/live" and FAIL_LIVENESS and time.monotonic() - STARTED > 0.5:
            status = 500
        if self.path == "/health/startup" and os.environ.get("NEVER_STARTS") == "1":
            status = 503
        body = f"{status} from {VERSION}\n".encode()
        self.send_response(status)
        self.send_header("content-length", str(len(body)))
        self.send_header("x-version", VERSION)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def main() -> None:
    if os.environ.get("CRASH_VERSION") == VERSION:
        print(f"version {VERSION} crashes at startup", flush=True)
        sys.exit(1)
    if os.environ.get("IGNORE_SIGTERM") == "1":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    else:
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    print(f"serving {VERSION} on {sys.argv[1]}, pid {os.getpid()}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
