#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""mq.py: a small, independent AMQP peer for mikkoo's tests (pika).

Reads the broker URL from $MIKKOO_AMQP_URL.  Messages are printed as one
compact JSON object per line with the properties that are set and the
AMQP type letter of each top-level header, so tests can tell a 64-bit
integer ("l") from a string ("S").
"""
import argparse
import base64
import datetime
import decimal
import json
import os
import struct
import sys
import time

import pika
from pika import data as pika_data

PROPS = ("app_id", "content_type", "content_encoding", "correlation_id",
         "delivery_mode", "expiration", "message_id", "priority",
         "timestamp", "type", "user_id", "reply_to", "cluster_id")


def connect():
    params = pika.URLParameters(os.environ["MIKKOO_AMQP_URL"])
    return pika.BlockingConnection(params)


def plain(value):
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return {"b64": base64.b64encode(value).decode()}
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    return value


_orig_decode_value = pika_data.decode_value


def _decode_value(encoded, offset):
    # pika 1.2 truncates floats and doubles to integers; decode them here.
    kind = encoded[offset:offset + 1]
    if kind == b"d":
        return struct.unpack_from(">d", encoded, offset + 1)[0], offset + 9
    if kind == b"f":
        return struct.unpack_from(">f", encoded, offset + 1)[0], offset + 5
    return _orig_decode_value(encoded, offset)


pika_data.decode_value = _decode_value


def _decode_table_with_types(encoded, offset):
    result = {}
    types = {}
    tablesize = struct.unpack_from(">I", encoded, offset)[0]
    offset += 4
    limit = offset + tablesize
    while offset < limit:
        key, offset = pika_data.decode_short_string(encoded, offset)
        types[key] = chr(encoded[offset])
        value, offset = pika_data.decode_value(encoded, offset)
        result[key] = value
    return result, offset, types


def message(method, props, body):
    out = {"exchange": method.exchange, "routing_key": method.routing_key,
           "redelivered": method.redelivered}
    try:
        out["body"] = body.decode("utf-8")
    except UnicodeDecodeError:
        out["body_b64"] = base64.b64encode(body).decode()
    p = {}
    for name in PROPS:
        v = getattr(props, name, None)
        if v is not None:
            p[name] = plain(v)
    if props.headers is not None:
        p["headers"] = plain(props.headers)
    out["properties"] = p
    out["header_types"] = getattr(props, "_mq_types", {})
    return out


# Wrap BasicProperties.decode to keep the header type letters.
_orig_props_decode = pika.spec.BasicProperties.decode


def _props_decode(self, encoded, offset=0):
    types = {}
    orig_table = pika_data.decode_table
    depth = [0]

    def capture(enc, off):
        # type letters of the top-level table only
        if depth[0]:
            return orig_table(enc, off)
        depth[0] += 1
        try:
            value, new_off, t = _decode_table_with_types(enc, off)
        finally:
            depth[0] -= 1
        types.update(t)
        return value, new_off

    pika.spec.data.decode_table = capture
    try:
        r = _orig_props_decode(self, encoded, offset)
    finally:
        pika.spec.data.decode_table = orig_table
    self._mq_types = types
    return r


pika.spec.BasicProperties.decode = _props_decode


def cmd_declare_exchange(ch, a):
    ch.exchange_declare(a.name, exchange_type=a.type,
                        durable=not a.transient)


def cmd_delete_exchange(ch, a):
    ch.exchange_delete(a.name)


def cmd_declare_queue(ch, a):
    args = json.loads(a.arguments) if a.arguments else None
    ch.queue_declare(a.name, durable=not a.transient, arguments=args)
    for b in a.bind or []:
        ex, _, key = b.partition(":")
        ch.queue_bind(a.name, ex, routing_key=key or "#")


def cmd_delete_queue(ch, a):
    ch.queue_delete(a.name)


def cmd_purge(ch, a):
    ch.queue_purge(a.name)


def cmd_count(ch, a):
    q = ch.queue_declare(a.name, passive=True)
    print(q.method.message_count)


def cmd_wait_count(ch, a):
    """Poll the queue depth until it reaches N; print the wall time."""
    deadline = time.monotonic() + a.timeout
    while time.monotonic() < deadline:
        q = ch.queue_declare(a.name, passive=True)
        if q.method.message_count >= a.n:
            print("%.3f" % time.time())
            return 0
        time.sleep(0.02)
    print("mq.py: '%s' did not reach %d messages in %gs"
          % (a.name, a.n, a.timeout), file=sys.stderr)
    return 1


def cmd_get(ch, a):
    got = 0
    deadline = time.monotonic() + a.timeout
    while a.count is None or got < a.count:
        method, props, body = ch.basic_get(a.name, auto_ack=False)
        if method is None:
            if a.count is None or time.monotonic() >= deadline:
                break
            time.sleep(0.05)
            continue
        sys.stdout.write(json.dumps(message(method, props, body),
                                    separators=(",", ":")) + "\n")
        sys.stdout.flush()
        ch.basic_ack(method.delivery_tag)
        got += 1
    if a.count is not None and got < a.count:
        print("mq.py: got %d of %d messages from '%s' in %gs"
              % (got, a.count, a.name, a.timeout), file=sys.stderr)
        return 1
    return 0


def cmd_reject(ch, a):
    """A broken consumer: take N messages and reject them (requeue
    false), so a dead-letter policy moves them to its exchange."""
    got = 0
    deadline = time.monotonic() + a.timeout
    while got < a.count:
        method, _, _ = ch.basic_get(a.name, auto_ack=False)
        if method is None:
            if time.monotonic() >= deadline:
                print("mq.py: rejected %d of %d messages from '%s'"
                      % (got, a.count, a.name), file=sys.stderr)
                return 1
            time.sleep(0.05)
            continue
        ch.basic_reject(method.delivery_tag, requeue=False)
        got += 1
    return 0


def typed(v):
    """Header values of other AMQP types, for tests: {"$bytes": B64},
    {"$timestamp": SECONDS}, {"$decimal": "1.50"}."""
    if isinstance(v, dict):
        if set(v) == {"$bytes"}:
            return base64.b64decode(v["$bytes"])
        if set(v) == {"$timestamp"}:
            return datetime.datetime.fromtimestamp(v["$timestamp"],
                                                   datetime.timezone.utc)
        if set(v) == {"$decimal"}:
            return decimal.Decimal(v["$decimal"])
        return {k: typed(x) for k, x in v.items()}
    if isinstance(v, list):
        return [typed(x) for x in v]
    return v


def cmd_publish(ch, a):
    ch.confirm_delivery()
    p = json.loads(a.properties) if a.properties else None
    if p and "headers" in p:
        p["headers"] = typed(p["headers"])
    props = pika.BasicProperties(**p) if p else None
    body = base64.b64decode(a.body) if a.body_b64 else a.body.encode()
    ch.basic_publish(a.exchange, a.routing_key, body,
                     properties=props, mandatory=not a.not_mandatory)


def main():
    ap = argparse.ArgumentParser(prog="mq.py")
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("declare-exchange")
    s.add_argument("name")
    s.add_argument("--type", default="topic")
    s.add_argument("--transient", action="store_true")
    s = sub.add_parser("delete-exchange")
    s.add_argument("name")
    s = sub.add_parser("declare-queue")
    s.add_argument("name")
    s.add_argument("--bind", action="append")
    s.add_argument("--arguments")
    s.add_argument("--transient", action="store_true")
    for n in ("delete-queue", "purge", "count"):
        s = sub.add_parser(n)
        s.add_argument("name")
    s = sub.add_parser("get")
    s.add_argument("name")
    s.add_argument("--count", type=int)
    s.add_argument("--timeout", type=float, default=10)
    s = sub.add_parser("reject")
    s.add_argument("name")
    s.add_argument("--count", type=int, required=True)
    s.add_argument("--timeout", type=float, default=10)
    s = sub.add_parser("wait-count")
    s.add_argument("name")
    s.add_argument("n", type=int)
    s.add_argument("--timeout", type=float, default=600)
    s = sub.add_parser("publish")
    s.add_argument("exchange")
    s.add_argument("routing_key")
    s.add_argument("body")
    s.add_argument("--properties")
    s.add_argument("--not-mandatory", action="store_true",
                   help="an unroutable message is dropped, not an error")
    s.add_argument("--body-b64", action="store_true",
                   help="the body argument is base64")
    a = ap.parse_args()
    conn = connect()
    try:
        rc = globals()["cmd_" + a.cmd.replace("-", "_")](conn.channel(), a)
    finally:
        conn.close()
    return rc or 0


if __name__ == "__main__":
    sys.exit(main())
