#!/usr/bin/env python3
"""A reference model endpoint for the known-truth tests: it serves each POST in a programmed,
seeded service time and logs, per request, when it arrived and when its answer left, so that the
latencies cloudbench reports can be checked against a record it did not make.

    refendpoint.py [--port N] [--log FILE] [--seed S] [--service SPEC]
                   [--capacity K [--capacity-at SECS --capacity-then K2]] [--cold-ms D [--idle-ms I]]
                   [--slow-after N --slow-factor F] [--stall-at K --stall-ms D]
                   [--fail-503 P] [--fail-4xx P] [--garbage P]

SPEC is const:MS, uniform:LO,HI, lognormal:MEDIAN,SIGMA (exp(N(ln MEDIAN, SIGMA))) or exp:MEAN,
all in milliseconds. Once bound it prints `listening on http://127.0.0.1:PORT`. Any path takes a
POST; GET /ping answers 200 {} and is neither counted nor logged.

The log (JSON Lines, one line per POST answered, written as it departs) has seq (order of arrival
among POSTs, from 0), arrival_ns and departure_ns (time.time_ns()), handled_ns (when the headers
were parsed), first_on_connection, status, outcome ("ok",
"retry_503", "rejected_4xx", "garbage"), service_ms (as drawn, slow factor and cold start included), cold,
stalled_ms, queued_ms,
bytes and sha256 of the request body. A request whose body is cut short by the client hanging up
is not answered and not logged (its seq is skipped).

Arrival is when the request's first bytes could be read, before the request line and headers are
parsed (that is the server's time, and the client waits through it); for a connection's first
request whose bytes were waiting before its thread started, the moment the connection was accepted.

Timing: the service time counts from the parsed headers (reading the body is part of it); the answer is sent
at arrival + stalled_ms + queued_ms + service_ms, so departure - arrival is that plus the time to
write the answer. --capacity K serves at most K requests at once; the others wait for a slot in
order of arrival (queued_ms), so with a constant service time S ms the server's capacity is exactly
K * 1000 / S requests per second. Without it every request is served at once (queued_ms = 0).
The answer's queue_ms is stalled_ms + queued_ms. --capacity-at SECS --capacity-then K2 changes the
slots to K2 SECS after the first POST arrived (the waiting take the new slots at once): capacity
added after a known delay, as an autoscaler would. --cold-ms D adds D ms to the service time of a
POST that arrives when none has for --idle-ms I (default 1000), and of the first: a cold start. A stall (--stall-at K --stall-ms D) holds every POST arriving in [t_K, t_K + D) until
t_K + D, then serves it normally.

Failures are drawn per distinct body (its SHA-256), so a client's retry of an image is recognised:
"retry_503" answers the first request of that body 503 (Retry-After: 0) and later ones normally;
"rejected_4xx" always 422; "garbage" always 200 with an HTML page.

The success answer deserialises into the Rust client's structs in endpoint/src/api.rs: `Response`
{predictions: Vec<Prediction>, inference_ms: f64, queue_ms: f64, batch_size: usize, model:
ModelInfo}, `Prediction` {width: u32, height: u32, detections: Vec<Detection>} and `ModelInfo`
{variant, classes, input_size, sha256, device}; all of them are required (no serde defaults), so
`Invoked::from_json` in endpoint/src/client.rs reads 0 detections, inference_ms and model.sha256.
"""

import argparse
import collections
import hashlib
import http
import http.server
import json
import math
import random
import signal
import sys
import threading
import time
import traceback

MODEL_SHA256 = hashlib.sha256(b"refendpoint").hexdigest()


def parse_service(spec):
    """A function rng -> milliseconds for SPEC; raises ValueError on a bad spec."""
    kind, _, args = spec.partition(":")
    try:
        values = [float(v) for v in args.split(",")] if args else []
    except ValueError:
        values = []  # falls through to the error below
    if kind == "const" and len(values) == 1:
        return lambda rng: values[0]
    if kind == "uniform" and len(values) == 2:
        return lambda rng: rng.uniform(values[0], values[1])
    if kind == "lognormal" and len(values) == 2:
        return lambda rng: rng.lognormvariate(math.log(values[0]), values[1])
    if kind == "exp" and len(values) == 1:
        return lambda rng: rng.expovariate(1.0 / values[0])
    raise ValueError(f"bad --service {spec!r}: const:MS, uniform:LO,HI, lognormal:MEDIAN,SIGMA or exp:MEAN")


class Slots:
    """At most k requests in service at once; the others wait in order of arrival."""

    def __init__(self, k):
        self.k = k
        self.busy = 0
        self.waiting = collections.deque()
        self.lock = threading.Lock()

    def acquire(self):
        with self.lock:
            if self.busy < self.k and not self.waiting:
                self.busy += 1
                return
            ready = threading.Event()
            self.waiting.append(ready)
        ready.wait()  # release() handed its slot over

    def release(self):
        with self.lock:
            if self.waiting and self.busy <= self.k:
                self.waiting.popleft().set()  # the slot passes to the longest waiting, busy unchanged
            else:
                self.busy -= 1

    def resize(self, k):
        """Serves at most k at once from now on; new slots go to the waiting at once."""
        with self.lock:
            self.k = k
            while self.waiting and self.busy < self.k:
                self.waiting.popleft().set()
                self.busy += 1


class State:
    """Everything the handler threads share; `lock` guards the counters, `log_lock` the log."""

    def __init__(self, args):
        self.args = args
        self.draw = parse_service(args.service)
        self.slots = Slots(args.capacity) if args.capacity else None
        self.first_post = None  # monotonic ns of the first POST
        self.last_post = None  # and of the latest, for cold starts
        self.rng = random.Random(args.seed)  # service times, drawn in seq order
        self.lock = threading.Lock()
        self.next_seq = 0
        self.stall_end = None  # monotonic ns at which the stall ends, once it has begun
        self.seen_503 = set()  # bodies that already got their one 503
        self.log_lock = threading.Lock()
        self.log = open(args.log, "w", encoding="utf-8") if args.log else None

    def arrive(self):
        """Seq, wall and monotonic arrival time, service ms and stall ms of a POST arriving now."""
        with self.lock:
            # The clock is read under the lock so that seq order is arrival order.
            wall, mono = time.time_ns(), time.monotonic_ns()
            seq = self.next_seq
            self.next_seq += 1
            service = self.draw(self.rng)
            if self.first_post is None:
                self.first_post = mono
                if self.args.capacity_at is not None:
                    timer = threading.Timer(self.args.capacity_at, self.slots.resize, [self.args.capacity_then])
                    timer.daemon = True
                    timer.start()
            cold = self.args.cold_ms is not None and (self.last_post is None or mono - self.last_post >= self.args.idle_ms * 1e6)
            self.last_post = mono
            if cold:
                service += self.args.cold_ms
            if self.args.slow_after is not None and seq >= self.args.slow_after:
                service *= self.args.slow_factor
            if self.args.stall_at is not None and seq == self.args.stall_at:
                self.stall_end = mono + int(self.args.stall_ms * 1e6)
            stalled_ns = self.stall_end - mono if self.stall_end is not None and mono < self.stall_end else 0
        return seq, wall, mono, service, stalled_ns, cold

    def outcome(self, sha):
        """What this body gets: decided by the seed and the body alone, the same on every retry."""
        a = self.args
        r = random.Random(f"{a.seed}:{sha}").random()
        if r < a.fail_503:
            with self.lock:
                first = sha not in self.seen_503
                self.seen_503.add(sha)
            return "retry_503" if first else "ok"
        if r < a.fail_503 + a.fail_4xx:
            return "rejected_4xx"
        if r < a.fail_503 + a.fail_4xx + a.garbage:
            return "garbage"
        return "ok"

    def write_log(self, record):
        if self.log is None:
            return
        line = json.dumps(record, separators=(",", ":")) + "\n"
        with self.log_lock:
            if not self.log.closed:
                self.log.write(line)
                self.log.flush()

    def close(self):
        with self.log_lock:
            if self.log is not None and not self.log.closed:
                self.log.close()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the client pools its connections
    disable_nagle_algorithm = True  # answers go out at once, never held for an ACK
    state = None  # set in main

    def log_message(self, format, *args):
        pass  # a stderr line per request would cost more than the overhead we promise

    def answer(self, status, content_type, body, extra=()):
        # Status line, headers and body in one write: one segment on loopback, no Nagle wait and
        # one system call less than send_response/end_headers and a second write would take.
        head = [f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}", f"Content-Type: {content_type}", f"Content-Length: {len(body)}"]
        head += [f"{name}: {value}" for name, value in extra]
        self.wfile.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
        self.wfile.flush()

    def do_GET(self):
        if self.path.split("?")[0] == "/ping":
            self.answer(200, "application/json", b"{}")
        else:
            self.answer(404, "application/json", b'{"error":"not found"}')

    def setup(self):
        super().setup()
        # get_request passed the accept time along with the client's address.
        self.client_address, self.accepted_ns = self.client_address
        self.answered = 0

    def handle_one_request(self):
        # Stamp the request when its first bytes can be read, before the request line and headers
        # are parsed: that parsing is the server's time, which the client waits through too.
        waited_from = time.time_ns()
        try:
            self.rfile.peek(1)
        except (ConnectionError, ValueError):
            pass
        self.received_ns = time.time_ns()
        # A connection's first request whose bytes were already waiting when this thread started
        # has been waiting since the connection was accepted (thread start is the server's time);
        # one that came later on an idle connection (clients open spare ones) arrived when it came.
        self.waiting_since_accept = self.answered == 0 and self.received_ns - waited_from < 200_000
        super().handle_one_request()

    def do_POST(self):
        state = self.state
        seq, wall, mono, service_ms, stalled_ns, cold = state.arrive()
        first = self.answered == 0
        self.answered += 1
        holding = False  # a slot of --capacity, released once the answer is out
        try:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length > 0 else b""
            if len(body) < length:
                # The client hung up mid-body: nothing is answered, so nothing is logged (seq has a gap).
                print(f"refendpoint: request {seq}: {len(body)} of {length} bytes, then the connection closed", file=sys.stderr, flush=True)
                self.close_connection = True
                return
            sha = hashlib.sha256(body).hexdigest()
            outcome = state.outcome(sha)
            # The stall first, then a free slot (in order of arrival), then the service time, to an
            # absolute deadline so that the read and hashing above are inside it.
            start = mono + stalled_ns
            queued_ns = 0
            if state.slots is not None:
                state.slots.acquire()
                holding = True
                acquired = time.monotonic_ns()
                queued_ns = max(0, acquired - start)
                start = max(start, acquired)
            deadline = start + int(service_ms * 1e6)
            while True:
                left = deadline - time.monotonic_ns()
                if left <= 0:
                    break
                time.sleep(left / 1e9)
            stalled_ms, queued_ms = stalled_ns / 1e6, queued_ns / 1e6
            if outcome == "retry_503":
                status = 503
                self.answer(503, "application/json", b'{"error":"busy"}', [("Retry-After", "0")])
            elif outcome == "rejected_4xx":
                status = 422
                self.answer(422, "application/json", b'{"error":"unprocessable image"}')
            elif outcome == "garbage":
                status = 200
                self.answer(200, "text/html", b"<html>not json</html>")
            else:
                status = 200
                answer = {
                    "predictions": [{"width": 1, "height": 1, "detections": []}],
                    "inference_ms": service_ms,
                    "queue_ms": stalled_ms + queued_ms,
                    "batch_size": 1,
                    "model": {"variant": "refendpoint", "classes": 80, "input_size": 640, "sha256": MODEL_SHA256, "device": "python"},
                }
                self.answer(200, "application/json", json.dumps(answer).encode())
            departure = time.time_ns()
            if holding:
                state.slots.release()
                holding = False
            state.write_log({
                "seq": seq, "arrival_ns": self.accepted_ns if self.waiting_since_accept else self.received_ns, "handled_ns": wall, "departure_ns": departure,
                "first_on_connection": first, "status": status, "outcome": outcome,
                "service_ms": service_ms, "cold": cold, "stalled_ms": stalled_ms, "queued_ms": queued_ms, "bytes": len(body), "sha256": sha,
            })
        except ConnectionError as e:
            print(f"refendpoint: request {seq}: the client went away: {e}", file=sys.stderr, flush=True)
            self.close_connection = True
        except Exception:
            # One request's failure must not end the server.
            print(f"refendpoint: request {seq}:\n{traceback.format_exc()}", file=sys.stderr, flush=True)
            self.close_connection = True
        finally:
            if holding:
                state.slots.release()


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # many concurrent connections arrive at once

    def get_request(self):
        # Stamp the connection as it is accepted, before a thread is started for it: the first
        # request on a connection has been waiting since then, and the client counts that wait.
        sock, address = super().get_request()
        return sock, (address, time.time_ns())


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--log")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--service", default="const:20")
    p.add_argument("--capacity", type=int)
    p.add_argument("--capacity-at", type=float)
    p.add_argument("--capacity-then", type=int)
    p.add_argument("--cold-ms", type=float)
    p.add_argument("--idle-ms", type=float, default=1000.0)
    p.add_argument("--slow-after", type=int)
    p.add_argument("--slow-factor", type=float, default=1.0)
    p.add_argument("--stall-at", type=int)
    p.add_argument("--stall-ms", type=float)
    p.add_argument("--fail-503", type=float, default=0.0)
    p.add_argument("--fail-4xx", type=float, default=0.0)
    p.add_argument("--garbage", type=float, default=0.0)
    args = p.parse_args()
    try:
        parse_service(args.service)
    except ValueError as e:
        p.error(str(e))
    if args.capacity is not None and args.capacity < 1:
        p.error("--capacity is at least 1 request at once")
    if (args.capacity_at is None) != (args.capacity_then is None) or (args.capacity_at is not None and (args.capacity is None or args.capacity_then < 1 or args.capacity_at < 0)):
        p.error("--capacity-at SECS and --capacity-then K2 (at least 1) go together, with --capacity")
    if args.cold_ms is not None and (args.cold_ms < 0 or args.idle_ms < 0):
        p.error("--cold-ms and --idle-ms are at least 0")
    if (args.stall_at is None) != (args.stall_ms is None):
        p.error("--stall-at and --stall-ms go together")
    shares = [args.fail_503, args.fail_4xx, args.garbage]
    if any(s < 0 or s > 1 for s in shares) or sum(shares) > 1 + 1e-12:
        p.error("--fail-503, --fail-4xx and --garbage are shares in [0, 1] summing to at most 1")

    state = State(args)
    Handler.state = state
    server = Server(("127.0.0.1", args.port), Handler)

    def stop(signum, frame):
        raise SystemExit(0)  # raised in the main thread, which leaves serve_forever

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever(poll_interval=0.1)
    except SystemExit:
        pass
    finally:
        server.server_close()
        state.close()


if __name__ == "__main__":
    main()
