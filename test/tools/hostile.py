#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""hostile.py: the hostile-data property test's producer and checker.

  hostile.py insert --queue Q --exchange EX --seed S --count N --out F
      N generated events (seeded: the same seed gives the same events)
      with hostile values in every field, inserted into PgQ queue Q in
      transactions of up to 50; F gets one JSON line per event with its
      ev_id and fields, for the check.
  hostile.py check --queue Q --amqp-queue MQ --events F --log L
      Waits until every event is accounted for, then asserts the
      property: each event was delivered byte-equal (body, routing key,
      content type, exchange, our event_id header) or is a dead letter
      with a readable reason (non-empty, valid UTF-8, no control or bidi
      character), never both and never neither; nothing waits in PgQ;
      the relay's log L is clean (one valid UTF-8 record per line, no
      control or bidi character, no lost connection).  Prints a summary
      and the first failures; exit 1 on any.
"""
import argparse
import json
import os
import random
import re
import sys
import time

import pika
import psycopg2

CONN = "host=%s port=%s user=%s password=%s dbname=%s" % (
    os.environ.get("PGHOST", "127.0.0.1"), os.environ.get("PGPORT", "5432"),
    os.environ.get("PGUSER", "mikkoo"), os.environ.get("PGPASSWORD", ""),
    os.environ.get("PGDATABASE", "mikkoo"))

# Text that breaks naive code: empty, at and over AMQP's limits, CJK,
# emoji, combining marks, right-to-left, zero-width, bidi overrides and
# isolates, C0 and C1 controls, line separators, quotes and formats.
NASTY = [
    "", "a", "k" * 128, "k" * 129, "k" * 255, "k" * 256, "x" * 127 + "é",
    "中" * 35, "中" * 43 + "x", "😀" * 20, "👩‍👩‍👧‍👦", "e\u0301" * 10,
    "שלום عربي", "\u202eevil\u202c.txt", "\u2066iso\u2069", "\u200e\u200f\u061c",
    "\u200b\u200d\ufeff", "\x01\x1b[31mred\x7f", "\u0085\u2028\u2029",
    "a\nb\r\tc", "\\", "\"", "'", "%s%n%x", "{{}}", "\x1b]0;title\x07",
    "x-death", "event_id", "origin", "txid", "sequence", "timestamp", "CC",
    "BCC", "Ā" * 200, "日本語のテキスト", "\U0010ffff", "\ue000",
]


def nasty(r):
    s = r.choice(NASTY)
    if r.random() < 0.3:
        s += r.choice(NASTY)
    return s


def value(r, depth=0):
    k = r.randrange(12 if depth < 40 else 8)
    if k == 0:
        return nasty(r)
    if k == 1:
        return r.choice([0, -1, 1, 2**31 - 1, -2**31, 2**31, 2**63 - 1,
                         -2**63, 10**18, 7])
    if k == 2:
        return r.choice([0.0, -0.0, 1.5, 1e300, -1e-300, 5e-324,
                         1.7976931348623157e308, 3.141592653589793])
    if k == 3:
        return r.choice([True, False, None])
    if k in (4, 5, 6, 7):
        return r.choice(["v", "text/plain", "x" * r.randrange(300)])
    if k in (8, 9):
        return [value(r, depth + 1) for _ in range(r.randrange(4))]
    return {nasty(r) if r.random() < 0.5 else "k%d" % i: value(r, depth + 1)
            for i in range(r.randrange(4))}


def deep(n, obj):
    for i in range(n):
        obj = {"d": obj} if i % 2 else [obj]
    return obj


def headers_text(r):
    """ev_extra4 (or ev_extra3's "headers"): mostly JSON objects."""
    k = r.randrange(16)
    if k == 0:
        return r.choice([None, "", "{", "[1]", '"s"', "null", "nope",
                         '{"a":1,"a":2}', '{"a": 1e400}',
                         '{"a": 18446744073709551616}', '{"a":"\\u0000"}',
                         '{"a":"\x01"}', '{"a":"\\ud800"}', "{}" * 2])
    if k == 1:
        return json.dumps(deep(r.choice([30, 31, 33, 40, 100]), 1))
    if k == 2:
        return json.dumps({"n%d" % i: i for i in range(r.choice([64, 1100]))})
    obj = {}
    for _ in range(r.randrange(6)):
        obj[nasty(r) if r.random() < 0.6 else "h%d" % r.randrange(9)] = \
            value(r)
    return dumps(obj, r)


def dumps(obj, r):
    """JSON text, raw UTF-8 or \\u-escaped; a lone surrogate (from a
    parsed "\\ud800") can only be written escaped."""
    s = json.dumps(obj, ensure_ascii=r.random() < 0.3)
    try:
        s.encode()
    except UnicodeEncodeError:
        s = json.dumps(obj)
    return s


def props_text(r):
    """ev_extra3: properties, right and wrong."""
    k = r.randrange(10)
    if k == 0:
        return r.choice([None, "", "{", "[]", "1", '{"type":"a","type":"b"}'])
    obj = {}
    for _ in range(r.randrange(5)):
        key = r.choice(["app_id", "content_encoding", "content_type",
                        "correlation_id", "delivery_mode", "expiration",
                        "message_id", "priority", "timestamp", "type",
                        "user_id", "headers", "reply_to", "unknown",
                        nasty(r)])
        if key == "expiration":
            # long enough that nothing expires in the test's queue
            v = r.choice(["86400000", 86400000, "0x10", -1, "1e9", "",
                          4294967296, "９"])
        elif key == "delivery_mode":
            v = r.choice([1, 2, 0, 3, "2", None])
        elif key == "priority":
            v = r.choice([0, 9, 255, 256, -1, 1.5, "1"])
        elif key == "timestamp":
            v = r.choice([0, 1700000000, -1, 2**63, "now"])
        elif key == "user_id":
            v = r.choice([os.environ.get("AMQP_USER", "mikkoo"), "other",
                          nasty(r)])
        elif key == "headers":
            h = headers_text(r)
            try:
                v = json.loads(h) if h else None
            except ValueError:
                v = h
        else:
            v = value(r) if r.random() < 0.3 else nasty(r)
        obj[key] = v
    return dumps(obj, r)


def event(r, exchange):
    ex = r.random()
    if ex < 0.75:
        ev_extra1 = exchange
    elif ex < 0.8:
        ev_extra1 = None
    elif ex < 0.85:
        ev_extra1 = ""           # the default exchange: returned
    elif ex < 0.9:
        ev_extra1 = "amq.topic"  # exists, nothing bound: returned
    else:
        ev_extra1 = "missing_" + nasty(r)
    return {
        "ev_type": None if r.random() < 0.02 else nasty(r),
        "ev_data": None if r.random() < 0.05 else
        nasty(r) * r.choice([1, 1, 3, 50]),
        "ev_extra1": ev_extra1,
        "ev_extra2": None if r.random() < 0.5 else nasty(r),
        "ev_extra3": props_text(r) if r.random() < 0.4 else None,
        "ev_extra4": headers_text(r) if r.random() < 0.7 else None,
    }


def connect():
    return psycopg2.connect(CONN)


def cmd_insert(a):
    r = random.Random(a.seed)
    db = connect()
    cur = db.cursor()
    done = 0
    with open(a.out, "w") as out:
        while done < a.count:
            batch = [event(r, a.exchange)
                     for _ in range(min(r.randrange(1, 50), a.count - done))]
            for ev in batch:
                cur.execute("SELECT pgq.insert_event(%s, %s, %s, %s, %s, "
                            "%s, %s)", (a.queue, ev["ev_type"],
                                        ev["ev_data"], ev["ev_extra1"],
                                        ev["ev_extra2"], ev["ev_extra3"],
                                        ev["ev_extra4"]))
                ev["ev_id"] = cur.fetchone()[0]
            db.commit()
            for ev in batch:
                out.write(json.dumps(ev) + "\n")
            done += len(batch)
    db.close()
    return 0


UNSAFE = set(range(0x20)) | set(range(0x7f, 0xa0)) | {
    0x061c, 0x200e, 0x200f, 0x2028, 0x2029, 0x202a, 0x202b, 0x202c,
    0x202d, 0x202e, 0x2066, 0x2067, 0x2068, 0x2069}


def readable(s):
    return bool(s) and not any(ord(c) in UNSAFE for c in s)


def state(cur, q):
    cur.execute("SELECT ev_id, reason, ev_type, ev_data, ev_extra1 "
                "FROM mikkoo.dead_letter WHERE queue = %s", (q,))
    dead = {row[0]: row[1:] for row in cur.fetchall()}
    cur.execute("SELECT count(*) FROM pgq.retry_queue r JOIN pgq.queue q "
                "ON q.queue_id = r.ev_queue WHERE q.queue_name = %s", (q,))
    retry = cur.fetchone()[0]
    cur.execute("SELECT coalesce(sum(pending_events), 0) FROM "
                "pgq.get_consumer_info(%s)", (q,))
    pending = int(cur.fetchone()[0])
    return dead, retry, pending


def cmd_check(a):
    events = {}
    with open(a.events) as f:
        for line in f:
            ev = json.loads(line)
            events[ev["ev_id"]] = ev
    conn = pika.BlockingConnection(pika.URLParameters(
        os.environ["MIKKOO_AMQP_URL"]))
    ch = conn.channel()
    got = {}
    fails = []
    db = connect()
    db.autocommit = True
    cur = db.cursor()
    deadline = time.monotonic() + a.timeout
    while True:
        while True:
            m, props, body = ch.basic_get(a.amqp_queue, auto_ack=True)
            if m is None:
                break
            eid = (props.headers or {}).get("event_id")
            got.setdefault(eid, []).append((m, props, body))
        dead, retry, pending = state(cur, a.queue)
        accounted = sum(1 for i in events if i in got or i in dead)
        if (accounted == len(events) and retry == 0 and pending == 0) \
                or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    conn.close()
    summary = {"events": len(events), "delivered": 0, "dead": 0,
               "duplicates": 0, "retry_queue": retry, "pending": pending}
    reasons = {}
    for eid, ev in events.items():
        msgs = got.get(eid, [])
        if msgs and eid in dead:
            fails.append("ev_id %d: delivered and dead-lettered" % eid)
        elif eid in dead:
            summary["dead"] += 1
            reason, ev_type, ev_data, ev_extra1 = dead[eid]
            if not readable(reason):
                fails.append("ev_id %d: unreadable reason %r" % (eid, reason))
            if (ev_type, ev_data, ev_extra1) != (
                    ev["ev_type"], ev["ev_data"], ev["ev_extra1"]):
                fails.append("ev_id %d: the dead letter is not the event"
                             % eid)
            key = " ".join(re.sub(r"'[^']*'|\"[^\"]*\"|[0-9]+", "_",
                                  reason).split()[:3])
            reasons[key] = reasons.get(key, 0) + 1
        elif msgs:
            summary["delivered"] += 1
            if len(msgs) > 1:
                summary["duplicates"] += 1
            m, props, body = msgs[0]
            want_body = (ev["ev_data"] or "").encode()
            if body != want_body:
                fails.append("ev_id %d: body %r, not %r"
                             % (eid, body[:60], want_body[:60]))
            if m.routing_key != ev["ev_type"]:
                fails.append("ev_id %d: routing key %r, not %r"
                             % (eid, m.routing_key, ev["ev_type"]))
            if m.exchange != ev["ev_extra1"]:
                fails.append("ev_id %d: exchange %r, not %r"
                             % (eid, m.exchange, ev["ev_extra1"]))
            ct = ev["ev_extra2"] or None
            try:
                p3 = json.loads(ev["ev_extra3"] or "{}")
                if isinstance(p3, dict) and "content_type" in p3:
                    ct = p3["content_type"]
            except ValueError:
                pass
            if props.content_type != ct:
                fails.append("ev_id %d: content type %r, not %r"
                             % (eid, props.content_type, ct))
        else:
            fails.append("ev_id %d: neither delivered nor dead-lettered "
                         "(lost)" % eid)
    if retry or pending:
        fails.append("%d events still in the retry queue, %d pending"
                     % (retry, pending))
    strays = [k for k in got if k not in events]
    if strays:
        fails.append("%d messages that are no event of this run"
                     % len(strays))
    with open(a.log, "rb") as f:
        for n, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8").rstrip("\n")
            except UnicodeDecodeError:
                fails.append("log line %d is not UTF-8: %r" % (n, raw[:80]))
                continue
            if not line.startswith("mikkoo-relay: ") or \
                    any(ord(c) in UNSAFE for c in line):
                fails.append("log line %d is not clean: %r" % (n, line[:120]))
            for bad in ("reconnect", "retrying in", "channel closed",
                        "a bug", "runtime error", "Sanitizer"):
                if bad in line:
                    fails.append("log line %d: %r" % (n, line[:160]))
    summary["reasons"] = reasons
    print(json.dumps(summary, ensure_ascii=False))
    for f in fails[:20]:
        print("FAIL " + f)
    if len(fails) > 20:
        print("... %d failures in all" % len(fails))
    return 1 if fails else 0


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("insert")
    s.add_argument("--queue", required=True)
    s.add_argument("--exchange", required=True)
    s.add_argument("--seed", type=int, required=True)
    s.add_argument("--count", type=int, default=2000)
    s.add_argument("--out", required=True)
    s = sub.add_parser("check")
    s.add_argument("--queue", required=True)
    s.add_argument("--amqp-queue", required=True)
    s.add_argument("--events", required=True)
    s.add_argument("--log", required=True)
    s.add_argument("--timeout", type=float, default=180)
    a = ap.parse_args()
    return cmd_insert(a) if a.cmd == "insert" else cmd_check(a)


if __name__ == "__main__":
    sys.exit(main())
