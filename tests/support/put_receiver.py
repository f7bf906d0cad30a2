#!/usr/bin/env python3
"""put_receiver.py - a small PUT receiver for the delivery tests
(upload_url): stores each PUT body under --root at the request's path and
logs one JSON line per request. Modes that a real object store shows now
and then:
  --fail-first N   answer 503 to the first N PUTs (whatever their path)
  --always S       answer status S to every PUT (nothing stored)
  --redirect URL   answer 307 Location: URL to every PUT
  --rate BPS       read request bodies at about BPS bytes per second
Prints its port on stdout (first line) and serves on 127.0.0.1 (or --host)
until killed.
"""
import argparse
import http.server
import json
import os
import sys
import threading
import time

args = None
lock = threading.Lock()
count = 0


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *a):
        pass

    def _log(self, status, got):
        rec = {
            "method": self.command,
            "path": self.path,
            "status": status,
            "content_type": self.headers.get("Content-Type"),
            "content_length": self.headers.get("Content-Length"),
            "transfer_encoding": self.headers.get("Transfer-Encoding"),
            "bytes": got,
        }
        with lock:
            with open(args.log, "a") as f:
                f.write(json.dumps(rec) + "\n")

    def _answer(self, status, extra=None):
        body = b"" if status < 300 else ("status %d\n" % status).encode()
        self.send_response(status)
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except OSError:
            pass  # the sender is gone (canceled, killed): nothing to answer

    def do_PUT(self):
        global count
        with lock:
            count += 1
            n = count
        length = int(self.headers.get("Content-Length") or 0)
        chunks, got = [], 0
        while got < length:
            block = self.rfile.read(min(16384, length - got))
            if not block:
                break
            chunks.append(block)
            got += len(block)
            if args.rate:
                time.sleep(len(block) / args.rate)
        if got < length:
            self._log(0, got)
            return
        if args.redirect:
            self._log(307, got)
            return self._answer(307, {"Location": args.redirect})
        if args.always:
            self._log(args.always, got)
            return self._answer(args.always)
        if n <= args.fail_first:
            self._log(503, got)
            return self._answer(503)
        rel = self.path.split("?", 1)[0].lstrip("/")
        dest = os.path.realpath(os.path.join(args.root, rel))
        if not dest.startswith(os.path.realpath(args.root) + os.sep):
            self._log(403, got)
            return self._answer(403)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        with open(dest, "wb") as f:
            for c in chunks:
                f.write(c)
        self._log(201, got)
        self._answer(201)

    def do_GET(self):
        self._answer(404)


def main():
    global args
    p = argparse.ArgumentParser()
    p.add_argument("--root", required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--fail-first", type=int, default=0)
    p.add_argument("--always", type=int, default=0)
    p.add_argument("--redirect", default="")
    p.add_argument("--rate", type=float, default=0)
    args = p.parse_args()
    srv = http.server.ThreadingHTTPServer((args.host, args.port), Handler)
    srv.handle_error = lambda request, address: None  # a cut connection is expected here
    print(srv.server_address[1], flush=True)
    sys.stdout.close()
    srv.serve_forever()


if __name__ == "__main__":
    main()
