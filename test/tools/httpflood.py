#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""httpflood.py HOST PORT SECONDS: hostile HTTP clients for one bounded
run (loopback only): slow ones that trickle a header byte a second and
never finish, malformed request lines, binary garbage, huge headers,
POSTs with bodies they never send, and clients that connect and say
nothing.  Says "flooding" on stderr after its first round of clients
of every kind (so a test can wait for that instead of sleeping), prints
"opened N" at the end; exits 0."""
import os
import random
import socket
import sys
import time

host, port, secs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
assert host.startswith("127.") or host == "::1", "loopback only"
rng = random.Random(12)
end = time.monotonic() + secs
slow, opened, said = [], 0, False


def conn():
    global opened
    s = socket.create_connection((host, port), timeout=2)
    opened += 1
    return s


bad = [b"GARBAGE\r\n\r\n", b"GET\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n",
       b"\x00\xff\x16\x03\x01" * 50, b"GET /metrics HTTP/1.1\r\n" +
       b"X: " + b"a" * 70000 + b"\r\n\r\n",
       b"POST /metrics HTTP/1.1\r\nContent-Length: 100000000\r\n\r\nxx",
       b"GET /../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n"]
while time.monotonic() < end:
    try:
        if len(slow) < 40:
            s = conn()
            s.send(b"GET /metrics HTTP/1.1\r\nHo")
            slow.append(s)
        for s in list(slow):
            try:
                s.send(b"x")
            except OSError:
                slow.remove(s)
        s = conn()
        s.send(rng.choice(bad))
        s.close()
        conn().close()
    except OSError:
        pass
    if not said:
        print("flooding", file=sys.stderr, flush=True)
        said = True
    time.sleep(0.05)
for s in slow:
    s.close()
print("opened", opened)
