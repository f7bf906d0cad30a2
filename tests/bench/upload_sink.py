#!/usr/bin/env python3
"""A plain loopback HTTP sink (the reference of bench_upload_latency.sh, not
a test): reads each request's head and Content-Length body and answers 202
with a small JSON body, keep-alive. Usage: upload_sink.py PORTFILE"""
import asyncio
import sys

BODY = b'{"id":"sink","status":"queued"}'
REPLY = (b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\n"
         b"Content-Length: " + str(len(BODY)).encode() + b"\r\n\r\n" + BODY)


async def serve(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            while length > 0:
                chunk = await reader.read(min(length, 1 << 20))
                if not chunk:
                    return
                length -= len(chunk)
            writer.write(REPLY)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def main():
    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    with open(sys.argv[1] + ".tmp", "w") as f:
        f.write(str(server.sockets[0].getsockname()[1]))
    import os
    os.rename(sys.argv[1] + ".tmp", sys.argv[1])
    async with server:
        await server.serve_forever()

asyncio.run(main())
