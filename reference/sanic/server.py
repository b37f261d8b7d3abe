"""The Sanic seed's math service, for benchmarks only: the same three routes and answers as
glassbox's, in the seed's framework, over plain HTTP as the seed served them.

    python server.py --port 8000 --workers 2

`just bench-math` (bench/src/benches/math.rs) runs it next to glassbox in the same run, so the "4x a Python Sanic
server" target of issue 3 is a ratio measured here, not a number from elsewhere.
"""

import argparse
import math

from sanic import Sanic
from sanic.response import json

app = Sanic("sanic_reference")

FIBONACCI_MAX = 400
FACTORIAL_MAX = 400
ACKERMANN_M_MAX = 3
ACKERMANN_N_MAX = 4


def parse(text, limit):
    """The argument as an integer in 0..=limit, or None."""
    if not text.isascii() or not text.isdigit():
        return None
    # Leading zeros are allowed, as in glassbox; int() refuses over 4,300 digits.
    digits = text.lstrip("0") or "0"
    if len(digits) > 3:
        return None
    value = int(digits)
    return value if value <= limit else None


def invalid(text):
    return json({"error": f"invalid number: {text}"}, status=400)


def fibonacci(n):
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


def ackermann(m, n):
    if m == 0:
        return n + 1
    if n == 0:
        return ackermann(m - 1, 1)
    return ackermann(m - 1, ackermann(m, n - 1))


@app.get("/fibonacci/<n>", strict_slashes=False)
async def fibonacci_route(request, n):
    value = parse(n, FIBONACCI_MAX)
    if value is None:
        return invalid(n)
    return json({"response": str(fibonacci(value))})


@app.get("/factorial/<n>", strict_slashes=False)
async def factorial_route(request, n):
    value = parse(n, FACTORIAL_MAX)
    if value is None:
        return invalid(n)
    return json({"response": str(math.factorial(value))})


@app.get("/ackermann/<m>/<n>", strict_slashes=False)
async def ackermann_route(request, m, n):
    mv = parse(m, ACKERMANN_M_MAX)
    if mv is None:
        return invalid(m)
    nv = parse(n, ACKERMANN_N_MAX)
    if nv is None:
        return invalid(n)
    return json({"response": str(ackermann(mv, nv))})


if __name__ == "__main__":
    arguments = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    arguments.add_argument("--port", type=int, default=8000)
    arguments.add_argument("--workers", type=int, default=1)
    options = arguments.parse_args()
    app.run(
        host="127.0.0.1",
        port=options.port,
        workers=options.workers,
        access_log=False,
        debug=False,
        motd=False,
    )
