#!/usr/bin/env python3
"""drop_proxy.py - an HTTP/1.1 proxy for tests that cuts connections.

  drop_proxy.py --target HOST:PORT --port-file FILE --log FILE
                [--drop-patch-after BYTES] [--drop-every] [--delay-ms N]

Listens on 127.0.0.1 (a free port, written to --port-file) and relays
every connection to --target. It reads each request's head to log it (one
JSON line: method, path, upload_offset, range, content_length, dropped).
With --drop-patch-after N, the first PATCH is cut after N bytes of its
body have been relayed: both sockets are closed with no answer, as a
dropped connection would. With --drop-every, every PATCH is. --delay-ms
holds each request that long before relaying it (a slow link).
"""
import argparse
import json
import socket
import sys
import threading
import time

lock = threading.Lock()
state = {"dropped": 0}


def log(path, rec):
    with lock:
        with open(path, "a") as f:
            f.write(json.dumps(rec) + "\n")


def pipe_back(src, dst):
    try:
        while True:
            b = src.recv(65536)
            if not b:
                break
            dst.sendall(b)
    except OSError:
        pass
    for s in (src, dst):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def handle(client, args):
    host, port = args.target.rsplit(":", 1)
    try:
        upstream = socket.create_connection((host, int(port)))
    except OSError:
        client.close()
        return
    threading.Thread(target=pipe_back, args=(upstream, client), daemon=True).start()
    buf = b""
    try:
        while True:
            while b"\r\n\r\n" not in buf:
                b = client.recv(65536)
                if not b:
                    return
                buf += b
            head, buf = buf.split(b"\r\n\r\n", 1)
            lines = head.decode("latin-1").split("\r\n")
            method, path = lines[0].split(" ")[:2]
            hdrs = {}
            for line in lines[1:]:
                k, _, v = line.partition(":")
                hdrs[k.strip().lower()] = v.strip()
            length = int(hdrs.get("content-length", "0") or 0)
            drop_at = None
            with lock:
                if method == "PATCH" and (args.drop_every or
                                          (args.drop_patch_after is not None and state["dropped"] == 0)):
                    drop_at = args.drop_patch_after or 0
                    state["dropped"] += 1
            log(args.log, {"method": method, "path": path,
                           "upload_offset": int(hdrs["upload-offset"]) if "upload-offset" in hdrs else None,
                           "range": hdrs.get("range"), "content_length": length,
                           "dropped": drop_at is not None})
            if args.delay_ms:
                time.sleep(args.delay_ms / 1000.0)
            upstream.sendall(head + b"\r\n\r\n")
            left = length
            sent = 0
            while left > 0:
                if not buf:
                    buf = client.recv(65536)
                    if not buf:
                        return
                take = buf[:left]
                if drop_at is not None and sent + len(take) >= drop_at:
                    upstream.sendall(take[: max(0, drop_at - sent)])
                    return  # cut: close both without an answer
                upstream.sendall(take)
                sent += len(take)
                left -= len(take)
                buf = buf[len(take):]
    except OSError:
        pass
    finally:
        for s in (client, upstream):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", required=True)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--drop-patch-after", type=int)
    ap.add_argument("--drop-every", action="store_true")
    ap.add_argument("--delay-ms", type=int, default=0)
    args = ap.parse_args()
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)
    with open(args.port_file + ".tmp", "w") as f:
        f.write(str(srv.getsockname()[1]))
    import os
    os.rename(args.port_file + ".tmp", args.port_file)
    while True:
        c, _ = srv.accept()
        threading.Thread(target=handle, args=(c, args), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
