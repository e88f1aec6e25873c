#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
# The lab's long-lived-connection server: on each connection it first sends
# its backend's name and a newline, then echoes every line back until the
# client closes. Stdlib only; one process, asyncio, so hundreds of idle
# connections cost nothing.
#
# usage: lab_echo.py NAME PORT
import asyncio
import sys


async def handle(reader, writer, name):
    try:
        writer.write(name + b"\n")
        await writer.drain()
        while True:
            line = await reader.readline()
            if not line:
                break
            writer.write(line)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


async def main():
    name, port = sys.argv[1].encode(), int(sys.argv[2])
    server = await asyncio.start_server(lambda r, w: handle(r, w, name), "0.0.0.0", port,
                                        backlog=1024, reuse_address=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
