#!/usr/bin/env python3
"""A small HTTP origin for the fetch tests: serves files of one folder on
127.0.0.1 (port 0), prints "port N" once listening, logs one line per
request (method, path, Range header) to the log file.

  /file/NAME            the file, with Range (206) support
  /norange/NAME         the file, Range ignored (always 200)
  /drop/NAME?after=N    the first request without Range: headers announce the
                        whole file, N bytes follow, then the connection is cut;
                        later requests behave as /file/NAME
  /slow/NAME?bps=N      the file at about N bytes/s (Range works)
  /redirect?to=URL      302 to URL (repeat=K: K hops through /redirect first)
  /status/CODE          an empty answer with that status
  /huge                 announces 10^12 bytes, sends a few

usage: fetch_origin.py DIR LOG [HOST]   (HOST: where to listen, 127.0.0.1)
"""
import os
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROOT, LOG = sys.argv[1], sys.argv[2]
dropped = set()
lock = threading.Lock()


class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def log_req(self):
        with lock, open(LOG, "a") as f:
            f.write("%s %s range=%s\n" % (self.command, self.path, self.headers.get("Range", "-")))

    def send_file(self, name, use_range=True, cut_after=None, bps=None):
        path = os.path.join(ROOT, os.path.basename(name))
        if not os.path.isfile(path):
            return self.empty(404)
        data = open(path, "rb").read()
        rng = self.headers.get("Range") if use_range else None
        if rng and rng.startswith("bytes=") and rng.endswith("-"):
            start = int(rng[6:-1])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", "bytes */%d" % len(data))
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", "bytes %d-%d/%d" % (start, len(data) - 1, len(data)))
            body = data[start:]
        else:
            self.send_response(200)
            body = data
        self.send_header("Content-Type", "video/mp4")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes" if use_range else "none")
        self.end_headers()
        if cut_after is not None:
            self.wfile.write(body[:cut_after])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)
            return
        if bps:
            step = max(1, bps // 10)
            for i in range(0, len(body), step):
                self.wfile.write(body[i:i + step])
                self.wfile.flush()
                time.sleep(0.1)
            return
        self.wfile.write(body)

    def empty(self, code, headers=()):
        self.send_response(code)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self):
        self.log_req()
        u = urllib.parse.urlparse(self.path)
        q = urllib.parse.parse_qs(u.query)
        if u.path.startswith("/file/"):
            return self.send_file(u.path[6:])
        if u.path.startswith("/slow/"):
            return self.send_file(u.path[6:], bps=int(q.get("bps", ["100000"])[0]))
        if u.path.startswith("/norange/"):
            return self.send_file(u.path[9:], use_range=False)
        if u.path.startswith("/drop/"):
            name = u.path[6:]
            with lock:
                first = name not in dropped and "Range" not in self.headers
                dropped.add(name)
            cut = int(q.get("after", ["65536"])[0]) if first else None
            return self.send_file(name, cut_after=cut)
        if u.path == "/redirect":
            to = q["to"][0]
            repeat = int(q.get("repeat", ["0"])[0])
            if repeat > 0:
                host = self.headers.get("Host")
                to = "http://%s/redirect?%s" % (host, urllib.parse.urlencode({"to": to, "repeat": repeat - 1}))
            return self.empty(302, [("Location", to)])
        if u.path.startswith("/status/"):
            return self.empty(int(u.path[8:]))
        if u.path == "/huge":
            self.send_response(200)
            self.send_header("Content-Length", str(10**12))
            self.end_headers()
            self.wfile.write(b"x" * 1000)
            self.close_connection = True
            return
        return self.empty(404)


srv = ThreadingHTTPServer((sys.argv[3] if len(sys.argv) > 3 else "127.0.0.1", 0), H)
srv.daemon_threads = True
print("port %d" % srv.server_address[1], flush=True)
srv.serve_forever()
