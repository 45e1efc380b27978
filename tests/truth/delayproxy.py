#!/usr/bin/env python3
"""A TCP proxy that adds a known one-way delay, in a process of its own, for the known-truth tests
(these machines' kernels have no netem). It logs when each chunk was read and when it was passed on,
so a test can check the delay it measured against a record the code under test did not make.

    delayproxy.py (--listen-port N | --listen HOST:PORT) --target HOST:PORT
                  [--delay-ms D] [--down-delay-ms D2] [--log FILE]

--listen-port binds 127.0.0.1 (0, the default, takes any free port); --listen binds any address it
is given (one in a test's network namespace, say). Once bound it prints `listening on HOST:PORT`.
--delay-ms delays client-to-server bytes ("up"), --down-delay-ms server-to-client ("down", default 0).

Each direction of each connection is a delay line: a chunk read at time t is written at t + delay,
in order. The delay is not added per chunk: a reader stamps chunks and queues them, a writer sleeps
until each chunk's due time. So a request whose bytes arrive together is delayed by D, and a long
upload by D plus its transfer time. An end of stream (half-close) is passed on after the data
queued before it. asyncio's timers wake a chunk up to about a millisecond late (epoll counts whole
milliseconds), never early.

The log (JSON Lines, one line per chunk forwarded, flushed per line): conn (connection number, from
0), dir ("up" or "down"), read_ns and sent_ns (time.time_ns(): when the chunk was read, and when it
was handed to the socket), bytes.
"""

import argparse
import asyncio
import itertools
import json
import signal
import socket
import sys
import time

CHUNK = 64 * 1024


def host_port(text):
    """'HOST:PORT' or '[V6]:PORT' to (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT")
    return host.strip("[]") or "127.0.0.1", int(port)


class Log:
    def __init__(self, path):
        self.file = open(path, "w", encoding="utf-8") if path else None

    def chunk(self, conn, direction, read_ns, sent_ns, size):
        if self.file is not None and not self.file.closed:
            record = {"conn": conn, "dir": direction, "read_ns": read_ns, "sent_ns": sent_ns, "bytes": size}
            self.file.write(json.dumps(record, separators=(",", ":")) + "\n")
            self.file.flush()

    def close(self):
        if self.file is not None:
            self.file.close()


async def read_side(reader, queue):
    """Stamps each chunk as it is read and queues it; None marks the end of the stream."""
    loop = asyncio.get_running_loop()
    try:
        while True:
            data = await reader.read(CHUNK)
            if not data:
                break
            await queue.put((loop.time(), time.time_ns(), data))
    except (ConnectionError, OSError):
        pass  # a reset ends the stream like an EOF
    finally:
        await queue.put(None)


async def write_side(queue, writer, delay_s, log, conn, direction, abort):
    """Writes each chunk at its read time + delay (loop.time() is monotonic), then ends the stream."""
    loop = asyncio.get_running_loop()
    try:
        while True:
            item = await queue.get()
            if item is None:
                break
            read_mono, read_ns, data = item
            due = read_mono + delay_s
            # asyncio may wake a timer up to its clock resolution early: sleep until really due.
            while (left := due - loop.time()) > 0:
                await asyncio.sleep(left)
            writer.write(data)
            log.chunk(conn, direction, read_ns, time.time_ns(), len(data))
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()  # half-close: the peer still may answer
    except (ConnectionError, OSError):
        abort()  # this side is gone: end both, so that no reader goes on queueing for nobody


async def pipe(conn, client_r, client_w, target, up_s, down_s, log):
    try:
        server_r, server_w = await asyncio.open_connection(*target)
    except OSError as e:
        print(f"delayproxy: connection {conn}: target {target[0]}:{target[1]}: {e}", file=sys.stderr, flush=True)
        client_w.close()
        return
    for w in (client_w, server_w):
        sock = w.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # chunks leave when due, not later
    # Unbounded queues: a reader never blocks, so every task ends once both sockets have. There is no
    # flow control across the delay; the queue holds what the far side has not taken yet.
    up, down = asyncio.Queue(), asyncio.Queue()

    def abort():
        for w in (client_w, server_w):
            w.transport.abort()

    tasks = [
        asyncio.create_task(read_side(client_r, up)),
        asyncio.create_task(write_side(up, server_w, up_s, log, conn, "up", abort)),
        asyncio.create_task(read_side(server_r, down)),
        asyncio.create_task(write_side(down, client_w, down_s, log, conn, "down", abort)),
    ]
    try:
        await asyncio.gather(*tasks)
    finally:
        for t in tasks:
            t.cancel()
        for w in (client_w, server_w):
            w.close()


async def main(args):
    log = Log(args.log)
    numbers = itertools.count()
    up_s, down_s = args.delay_ms / 1000.0, args.down_delay_ms / 1000.0

    async def accepted(reader, writer):
        try:
            await pipe(next(numbers), reader, writer, args.target, up_s, down_s, log)
        except asyncio.CancelledError:
            pass  # shutting down: ending normally spares a traceback from asyncio's stream callback

    host, port = args.listen if args.listen else ("127.0.0.1", args.listen_port or 0)
    server = await asyncio.start_server(accepted, host, port, backlog=256)
    real = server.sockets[0].getsockname()
    shown = f"[{real[0]}]" if ":" in real[0] else real[0]
    print(f"listening on {shown}:{real[1]}", flush=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()
    log.close()  # every line so far is flushed; chunks still in flight are not logged


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    # Not argparse's mutually exclusive group: it lets `--listen-port 0` (the default's value) pass.
    p.add_argument("--listen-port", type=int)
    p.add_argument("--listen", type=host_port)
    p.add_argument("--target", type=host_port, required=True)
    p.add_argument("--delay-ms", type=float, default=0.0)
    p.add_argument("--down-delay-ms", type=float, default=0.0)
    p.add_argument("--log")
    args = p.parse_args()
    if args.listen is not None and args.listen_port is not None:
        p.error("give --listen-port or --listen, not both")
    if args.delay_ms < 0 or args.down_delay_ms < 0:
        p.error("delays are at least 0")
    asyncio.run(main(args))
