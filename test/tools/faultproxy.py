#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""faultproxy LISTEN_PORT TARGET_PORT: a loopback TCP proxy that can fail.

Without root-only tools (iptables), the fault tests put this between the
relay and a server and send it signals:

  SIGUSR1  black hole: every byte, both ways, on open and new
           connections, is held back and never delivered; the sockets
           stay open, so only a deadline or a heartbeat can notice.
  SIGUSR2  reset: every open connection is closed with RST (SO_LINGER 0).
  SIGHUP   heal: connections held in the black hole are reset (their
           streams have gaps now), new ones are forwarded again.

It prints "ready PORT" once listening (LISTEN_PORT 0: any free port), then one line per fault it applied.
"""
import selectors
import signal
import socket
import struct
import sys

listen_port, target_port = int(sys.argv[1]), int(sys.argv[2])
sel = selectors.DefaultSelector()
pairs = {}          # socket -> its peer socket
holed = False
pending = []        # signals to act on, outside the handler


def rst(s):
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                     struct.pack("ii", 1, 0))
    except OSError:
        pass
    close(s)


def close(s):
    peer = pairs.pop(s, None)
    for x in (s, peer):
        if x is None:
            continue
        pairs.pop(x, None)
        try:
            sel.unregister(x)
        except (KeyError, ValueError):
            pass
        x.close()


def reset_all():
    for s in list(pairs):
        if s in pairs:
            rst(s)


srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", listen_port))
srv.listen(64)
sel.register(srv, selectors.EVENT_READ)
for sig in (signal.SIGUSR1, signal.SIGUSR2, signal.SIGHUP):
    signal.signal(sig, lambda n, f: pending.append(n))
print("ready", srv.getsockname()[1], flush=True)

while True:
    for key, _ in sel.select(timeout=0.1):
        s = key.fileobj
        if s is srv:
            c, _ = srv.accept()
            try:
                t = socket.create_connection(("127.0.0.1", target_port))
            except OSError:
                rst(c)
                continue
            pairs[c], pairs[t] = t, c
            sel.register(c, selectors.EVENT_READ)
            sel.register(t, selectors.EVENT_READ)
            continue
        if holed or s not in pairs:
            # swallow: read and drop, so the kernel keeps acking
            try:
                if not s.recv(65536):
                    close(s)
            except OSError:
                close(s)
            continue
        try:
            data = s.recv(65536)
            if not data:
                close(s)
                continue
            pairs[s].sendall(data)
        except OSError:
            rst(s)
    while pending:
        n = pending.pop(0)
        if n == signal.SIGUSR1:
            holed = True
            print("black hole", flush=True)
        elif n == signal.SIGUSR2:
            reset_all()
            print("reset", flush=True)
        elif n == signal.SIGHUP:
            if holed:
                reset_all()
            holed = False
            print("healed", flush=True)
