#!/usr/bin/env python3
"""The small HTTP app of bench/zero-drop.sh: one replica behind HAProxy.

    zd_app.py --port PORT --mode naive|graceful [--host 127.0.0.1] [--work-ms 20]

GET /healthz answers 200 at once (the app's own health path, what HAProxy checks for
tini and dumb-init replicas); any other GET answers 200 after --work-ms of "work", so
that requests are in flight when the app is stopped. HTTP/1.1 with keep-alive.

naive:    SIGTERM keeps its default action: the process dies at once, the requests in
          flight and the connections open with it.
graceful: on SIGTERM it stops accepting (the listening socket is closed), closes its
          idle keep-alive connections, lets the requests in flight finish (answered with
          "Connection: close"), and exits 0 - what a well-behaved server does.
It prints "listening on PORT" on stdout once it accepts.
"""

import argparse
import os
import signal
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STOPPING = threading.Event()
LOCK = threading.Lock()
# connection socket -> True while a request on it is being served
CONNECTIONS = {}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    work_seconds = 0.02

    def setup(self):
        super().setup()
        with LOCK:
            CONNECTIONS[self.connection] = False

    def finish(self):
        with LOCK:
            CONNECTIONS.pop(self.connection, None)
        super().finish()

    def do_GET(self):
        with LOCK:
            CONNECTIONS[self.connection] = True
        try:
            if self.path != "/healthz":
                time.sleep(self.work_seconds)
            body = b"ok\n"
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            if STOPPING.is_set():
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
        finally:
            with LOCK:
                if self.connection in CONNECTIONS:
                    CONNECTIONS[self.connection] = False
                if STOPPING.is_set():
                    self.close_connection = True

    def log_message(self, *args):
        pass


class Server(ThreadingHTTPServer):
    daemon_threads = False  # server_close() joins the threads: the in-flight requests
    allow_reuse_address = True
    request_queue_size = 128


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1", help="the address to listen on")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mode", choices=["naive", "graceful"], required=True)
    parser.add_argument("--work-ms", type=float, default=20.0)
    args = parser.parse_args()
    Handler.work_seconds = args.work_ms / 1000.0

    server = Server((args.host, args.port), Handler)
    stop = threading.Event()
    if args.mode == "graceful":
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
    else:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02})
    thread.start()
    print(f"listening on {args.port}", flush=True)

    while not stop.wait(3600):
        pass
    # Graceful stop: no new connection, idle keep-alive connections closed, the requests
    # in flight finished.
    STOPPING.set()
    server.shutdown()
    server.socket.close()
    with LOCK:
        idle = [conn for conn, busy in CONNECTIONS.items() if not busy]
    for conn in idle:
        try:
            conn.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
    server.server_close()  # joins every connection's thread
    print("stopped gracefully", flush=True)
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
