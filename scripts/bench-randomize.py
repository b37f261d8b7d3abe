"""The randomize benchmark: images/s for a 1024x1024 PNG with 1, 2 and 4 workers, the lead time
at a fixed submission rate, and GET / measured with wrk against the same build in the same run.

Usage: bench-randomize.py GLASSBOX_BINARY WORK_DIR. Environment: BENCH_IMAGES (default 24),
BENCH_DURATION for wrk (default 10s), BENCH_CONNECTIONS (default 64). Standard library only.
"""
import http.client
import json
import os
import random
import ssl
import struct
import subprocess
import sys
import threading
import time
import zlib

binary, work = sys.argv[1], sys.argv[2]
images = int(os.environ.get("BENCH_IMAGES", "24"))
duration = os.environ.get("BENCH_DURATION", "10s")
connections = os.environ.get("BENCH_CONNECTIONS", "64")
certs = os.path.join(work, "certs")


def photo_like_png(width, height):
    """An 8-bit RGB PNG with smooth gradients and noise, so it compresses like a photograph."""
    rng = random.Random(1)
    rows = []
    for y in range(height):
        row = bytearray([0])  # filter type: none
        for x in range(width):
            noise = rng.randrange(24)
            row += bytes(((x // 4 + noise) & 255, (y // 4 + noise) & 255, ((x + y) // 8) & 255))
        rows.append(bytes(row))

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"".join(rows), 6)) + chunk(b"IEND", b""))


class Glassbox:
    """A glassbox serving on a free port, with its own data directory."""

    def __init__(self, name, *flags):
        data = os.path.join(work, name)
        self.process = subprocess.Popen(
            [binary, "serve", "--bind", "127.0.0.1:0", "--certs-dir", certs,
             "--data-dir", os.path.join(data, "data"), "--log-dir", os.path.join(data, "logs"),
             "--log-level", "warn,glassbox=info", *flags],
            stdout=subprocess.PIPE, text=True)
        for line in self.process.stdout:
            event = json.loads(line)
            if event.get("message") == "listening":
                self.port = int(event["addr"].rsplit(":", 1)[1])
                break
        threading.Thread(target=lambda: [None for _ in self.process.stdout], daemon=True).start()
        self.context = ssl.create_default_context(cafile=os.path.join(certs, "ca.crt"))

    def request(self, method, path, body=None, headers=None):
        conn = http.client.HTTPSConnection("localhost", self.port, context=self.context, timeout=120)
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        data = response.read()
        conn.close()
        return response.status, data

    def submit(self, png):
        status, body = self.request("POST", "/randomize", png, {"Content-Type": "image/png"})
        assert status == 201, (status, body)
        return json.loads(body)["token"]

    def state(self, token):
        status, body = self.request("GET", f"/randomize/{token}/status")
        assert status == 200, (status, body)
        return json.loads(body)["status"]

    def wait_all(self, tokens):
        pending = set(tokens)
        while pending:
            for token in list(pending):
                state = self.state(token)
                assert state != "errored", token
                if state == "finished":
                    pending.discard(token)
            time.sleep(0.02)

    def lead_ms(self):
        _, body = self.request("GET", "/status")
        kind = json.loads(body)["data"]["queue"]["kinds"][0]
        return kind["lead_ms"], kind["execution_ms"], kind["finished"]

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=60)


def throughput(png, workers):
    """Images/s: `images` uploads at once, from the first upload to the last result."""
    service = Glassbox(f"w{workers}", "--workers", str(workers))
    try:
        service.wait_all([service.submit(png)])  # warm-up
        started = time.monotonic()
        tokens = []
        lock = threading.Lock()

        def upload(n):
            for _ in range(n):
                token = service.submit(png)
                with lock:
                    tokens.append(token)

        uploaders = [threading.Thread(target=upload, args=(images // 4,)) for _ in range(4)]
        for t in uploaders:
            t.start()
        for t in uploaders:
            t.join()
        service.wait_all(tokens)
        elapsed = time.monotonic() - started
        _, execution, _ = service.lead_ms()
        return len(tokens) / elapsed, execution
    finally:
        service.stop()


def fixed_rate(png, workers, rate):
    """Lead time p50/p99 when uploads arrive evenly at `rate` per second."""
    service = Glassbox(f"rate{workers}", "--workers", str(workers))
    try:
        tokens = []
        start = time.monotonic()
        for i in range(images):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            tokens.append(service.submit(png))
        service.wait_all(tokens)
        lead, _, finished = service.lead_ms()
        assert finished == images, finished
        return lead
    finally:
        service.stop()


def get_hello():
    service = Glassbox("hello")
    try:
        url = f"https://localhost:{service.port}/"
        subprocess.run(["wrk", "-t2", f"-c{connections}", "-d2s", url], check=True, capture_output=True)
        out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{duration}", url],
                             check=True, capture_output=True, text=True).stdout
        return float(next(l.split()[1] for l in out.splitlines() if l.startswith("Requests/sec")))
    finally:
        service.stop()


png = photo_like_png(1024, 1024)
cores = os.cpu_count()
print(f"randomize: a {len(png) / 1e6:.1f} MB 1024x1024 RGB PNG, {images} uploads per run, {cores} cores")
rates = {}
for workers in (1, 2, 4):
    rate, execution = throughput(png, workers)
    rates[workers] = rate
    print(f"  {workers} worker(s)  {rate:6.2f} images/s   execution p50 {execution['p50']} ms, "
          f"p99 {execution['p99']} ms   {rate / rates[1]:.2f} x 1 worker")
submission = rates[2] / 2
lead = fixed_rate(png, 2, submission)
print(f"  2 workers at a fixed {submission:.2f} uploads/s (half their throughput): lead time "
      f"p50 {lead['p50']} ms, p99 {lead['p99']} ms, max {lead['max']} ms")
hello = get_hello()
print(f"  GET / on the same build: {hello:.0f} req/s; one image costs as much as "
      f"{hello / rates[max(rates, key=rates.get)]:.0f} hello worlds")
