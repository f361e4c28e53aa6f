#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""notifylisten.py ADDRESS: what systemd's side of NOTIFY_SOCKET sees.

Binds a datagram socket at ADDRESS (a path, or @name in the abstract
namespace), asks the kernel for each sender's credentials (as systemd
does, to accept only the main process under NotifyAccess=main) and
prints every datagram as one JSON line: {"pid": sender, "t": seconds
since the epoch, "fields": {"READY": "1", ...}, "raw": "..."}.  Runs
until killed.  Tests read its output; nothing here is systemd's.
"""
import json
import os
import socket
import struct
import sys
import time


def main():
    where = sys.argv[1]
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    if where.startswith("@"):
        s.bind("\0" + where[1:])
    else:
        s.bind(where)
        os.chmod(where, 0o666)
    # the test waits for this line before it starts the relay
    print(json.dumps({"listening": where}), flush=True)
    space = socket.CMSG_SPACE(struct.calcsize("3i"))
    while True:
        data, anc, _, _ = s.recvmsg(65536, space)
        pid = None
        for level, kind, value in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid, _, _ = struct.unpack("3i", value[:struct.calcsize("3i")])
        raw = data.decode("utf-8", "replace")
        fields = {}
        for line in raw.split("\n"):
            if "=" in line:
                k, v = line.split("=", 1)
                fields[k] = v
        print(json.dumps({"pid": pid, "t": time.time(), "fields": fields,
                          "raw": raw}), flush=True)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
