#!/usr/bin/env python3
"""A loopback TCP listener that records every connection (helper of the CLI
tests, not a test). Usage: listen.py PORTFILE LOGFILE
Binds 127.0.0.1 on a free port, writes the port to PORTFILE, then appends one
line per accepted connection (with the first bytes received) to LOGFILE and
closes it. Runs until killed."""
import os
import socket
import sys

port_file, log_file = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 0))
s.listen(16)
with open(port_file + ".tmp", "w") as f:
    f.write(str(s.getsockname()[1]))
os.rename(port_file + ".tmp", port_file)
while True:
    c, addr = s.accept()
    c.settimeout(1.0)
    try:
        data = c.recv(200)
    except OSError:
        data = b""
    with open(log_file, "a") as f:
        f.write("connection from %s:%d: %r\n" % (addr[0], addr[1], data[:80]))
    c.close()
