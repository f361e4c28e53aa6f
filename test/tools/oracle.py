#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""oracle.py: did every committed event arrive?  For test/70-faults.bats.

produce: P producers insert numbered, audited events ({"p":P,"seq":N})
with mikkoo.insert_audited_event in small transactions spread over a
duration; a few transactions are rolled back (their events must never
arrive) and one transaction is held open for a while (its events must
arrive once it commits).  When the connection breaks during a COMMIT
(a restart, a failover), the producer asks the server with txid_status
whether it committed, and redoes it only if not.  The server is libpq's
PGHOST/PGPORT (lists: a primary and its standby) and PG* variables.

drain: a consumer of the confirming queue that takes what arrives, in
order, into a file (JSON lines: message_id and body), acking each one
after it is written, until SIGTERM or SIGINT: a queue's reader that
comes late (a full queue drained later).  What it got and did not ack
when stopped goes back to the queue.

probe: commits one audited event (producer -2, routing key "probe",
seq --seq) and waits for it on --amqp-queue (a queue bound to that key),
through the first of --urls (white-space separated; default
$MIKKOO_AMQP_URL) that answers, moving on when a node fails.  Prints
{"committed": T0, "delivered": T1} in seconds since --since (an epoch;
the fault), or exits 1 after --timeout.  Tests print such times; they
never assert on them.

check: reads the committed events (mikkoo.audit rows: they commit with
their events) and the dead letters, drains the confirming queue (after
the messages of --drained files, which came first), and classifies each
committed event: ok (once), dup (more than once), lost (never, not
dead-lettered), dead; messages matching no committed event are
unexpected.  Each producer commits its transactions one after another,
so its seq is its commit order: a first delivery of a seq lower than
one already delivered is out of order ("order" counts them, each event
once; "order_first" shows the first few as [p, seq, after_seq]).
Duplicates do not count: only first deliveries.  Prints a JSON summary;
exits 0 when lost == unexpected == order == 0 (and dup == 0 with
--no-dups).  With --expect-events N, also every (p, seq) the producers
saw committed must be in mikkoo.audit exactly once (commits_missing,
commits_twice): what a failover must not lose.
"""
import argparse
import json
import os
import random
import signal
import sys
import threading
import time

import pika
import psycopg2

CONN = "host=%s port=%s user=%s password=%s dbname=%s" % (
    os.environ.get("PGHOST", "127.0.0.1"), os.environ.get("PGPORT", "5432"),
    os.environ.get("PGUSER", "mikkoo"), os.environ.get("PGPASSWORD", ""),
    os.environ.get("PGDATABASE", "mikkoo"))


def connect():
    while True:  # the database may be restarting under us
        try:
            return psycopg2.connect(CONN)
        except psycopg2.OperationalError:
            time.sleep(0.2)


def committed(db, xid):
    """(db, did transaction xid commit?), db reconnected if need be.
    False when this server never saw xid: after a failover, the standby
    may not have received it."""
    while True:
        try:
            cur = db.cursor()
            cur.execute("SELECT txid_status(%s)", (xid,))
            st = cur.fetchone()[0]
            db.rollback()
            if st == "in progress":     # its backend is still finishing
                time.sleep(0.1)
                continue
            return db, st == "committed"
        except psycopg2.errors.InvalidParameterValue:
            db.rollback()       # "transaction ID ... is in the future"
            return db, False
        except psycopg2.Error:
            try:
                db.close()
            except psycopg2.Error:
                pass
            db = connect()


# With --emit STREAM the event goes into the WAL with mikkoo.emit() (a
# slot worker relays it) and its audit row is written beside it, as
# mikkoo.insert_audited_event() does for PgQ; --queue is then the name
# the audit rows and the dead letters carry (the worker's).
EMIT_AUDITED = (
    "WITH m AS (SELECT gen_random_uuid() AS id),"
    " x AS (SELECT id, json_build_object('message_id', id)::text AS props,"
    "  json_build_object('pgq_queue', %(q)s::text)::text AS hdrs FROM m)"
    " SELECT mikkoo.new_audit_record(id, mikkoo.emit(%(stream)s, %(rk)s,"
    "  %(body)s, %(ex)s, 'application/json', props, hdrs), %(q)s, %(ex)s,"
    "  %(rk)s, %(body)s, 'application/json', props, hdrs) FROM x")


def insert(cur, a, rk, body):
    if a.emit:
        cur.execute(EMIT_AUDITED, {"q": a.queue, "stream": a.emit, "rk": rk,
                                   "body": body, "ex": a.exchange})
    else:
        cur.execute("SELECT mikkoo.insert_audited_event(%s, %s, "
                    "%s, %s, 'application/json')",
                    (a.queue, a.exchange, rk, body))


def producer(a, p, stats):
    db = connect()
    seq = 0
    deadline = time.monotonic() + a.duration
    per = a.events
    while seq < per:
        n = min(random.randint(1, 5), per - seq)
        rollback = random.random() < a.rollback
        xid = None
        try:
            cur = db.cursor()
            cur.execute("SELECT txid_current()")
            xid = cur.fetchone()[0]
            for i in range(n):
                body = json.dumps({"p": p, "seq": seq + i + 1,
                                   "rb": rollback})
                insert(cur, a, "p.%d" % p, body)
            if rollback:
                db.rollback()
                stats["rolled_back"] += n
            else:
                xid = -xid      # from here on the outcome may be unknown
                db.commit()
                seq += n
        except psycopg2.Error:
            # a restart or a failover: the transaction is gone, unless
            # the connection broke during COMMIT: then ask the (new)
            # server what became of it, and redo it only if it did not
            # commit (else the same seq would be committed twice)
            try:
                db.close()
            except psycopg2.Error:
                pass
            db = connect()
            if xid is not None and xid < 0:
                db, done = committed(db, -xid)
                if done:
                    stats["ambiguous_committed"] += 1
                    seq += n
            continue
        left = deadline - time.monotonic()
        if left > 0:
            time.sleep(left / max(1, (per - seq)) * n * random.random())
    db.close()


def produce(a):
    stats = {"rolled_back": 0, "ambiguous_committed": 0}
    held = connect()
    cur = held.cursor()
    # the long transaction: opened first, committed last
    for i in range(3):
        insert(cur, a, "held",
               json.dumps({"p": -1, "seq": i + 1, "rb": False}))
    threads = [threading.Thread(target=producer, args=(a, p, stats))
               for p in range(a.producers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    while True:
        try:
            held.commit()
            break
        except psycopg2.Error:
            # the database restarted under the held transaction: it is
            # gone, which is fine (it never committed)
            break
    print(json.dumps(stats))


def drain(a):
    conn = pika.BlockingConnection(pika.URLParameters(
        os.environ["MIKKOO_AMQP_URL"]))
    ch = conn.channel()
    got = []
    idle_until = time.monotonic() + a.idle
    while time.monotonic() < idle_until:
        m, props, body = ch.basic_get(a.amqp_queue, auto_ack=True)
        if m is None:
            time.sleep(0.05)
            continue
        idle_until = time.monotonic() + a.idle
        got.append((props.message_id, json.loads(body)))
    conn.close()
    return got


def drain_to_file(a):
    """The late reader (see drain above)."""
    stop = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda n, f: stop.append(n))
    conn = pika.BlockingConnection(pika.URLParameters(
        os.environ["MIKKOO_AMQP_URL"]))
    ch = conn.channel()
    ch.basic_qos(prefetch_count=a.prefetch)
    n = 0
    with open(a.out, "a") as out:
        print("draining", flush=True)
        for m, props, body in ch.consume(a.amqp_queue,
                                         inactivity_timeout=0.1):
            if stop:
                break
            if m is None:
                continue
            out.write(json.dumps({"message_id": props.message_id,
                                  "body": json.loads(body)}) + "\n")
            out.flush()
            ch.basic_ack(m.delivery_tag)
            n += 1
    # unacked deliveries go back to the queue with the channel
    conn.close()
    print("drained", n, flush=True)
    return 0


def probe(a):
    db = connect()
    cur = db.cursor()
    cur.execute("SELECT mikkoo.insert_audited_event(%s, %s, 'probe', %s, "
                "'application/json')", (a.queue, a.exchange,
                                        json.dumps({"p": -2, "seq": a.seq,
                                                    "rb": False})))
    db.commit()
    t0 = time.time()
    db.close()
    urls = (a.urls or os.environ["MIKKOO_AMQP_URL"]).split()
    deadline = time.monotonic() + a.timeout
    i = 0
    while time.monotonic() < deadline:
        try:
            conn = pika.BlockingConnection(pika.URLParameters(urls[i]))
        except Exception:
            i = (i + 1) % len(urls)
            time.sleep(0.05)
            continue
        try:
            ch = conn.channel()
            while time.monotonic() < deadline:
                m, props, body = ch.basic_get(a.amqp_queue, auto_ack=True)
                if m is None:
                    time.sleep(0.02)
                    continue
                b = json.loads(body)
                if b.get("p") == -2 and b.get("seq") == a.seq:
                    t1 = time.time()
                    print(json.dumps({
                        "committed": round(t0 - a.since, 2),
                        "delivered": round(t1 - a.since, 2)}))
                    conn.close()
                    return 0
        except Exception:
            # the node went away, or the queue has no leader yet
            i = (i + 1) % len(urls)
            try:
                conn.close()
            except Exception:
                pass
            time.sleep(0.05)
    print(json.dumps({"committed": round(t0 - a.since, 2),
                      "delivered": None}))
    return 1


def drained(paths):
    got = []
    for path in paths or []:
        with open(path) as f:
            for line in f:
                r = json.loads(line)
                got.append((r["message_id"], r["body"]))
    return got


def check(a):
    db = connect()
    cur = db.cursor()
    cur.execute("SELECT message_id::text, event_id, payload FROM "
                "mikkoo.audit WHERE queue = %s", (a.queue,))
    committed = {mid: (ev, json.loads(pl)) for mid, ev, pl in cur.fetchall()}
    cur.execute("SELECT ev_id FROM mikkoo.dead_letter WHERE queue = %s",
                (a.queue,))
    dead_ids = {r[0] for r in cur.fetchall()}
    got = drained(a.drained) + drain(a)
    count = {}
    order_bad = 0
    order_first = []
    last_seq = {}
    unexpected = 0
    for mid, body in got:
        if mid not in committed:
            unexpected += 1
            continue
        count[mid] = count.get(mid, 0) + 1
        if count[mid] == 1:
            p, s = body["p"], body["seq"]
            if s <= last_seq.get(p, 0):
                order_bad += 1
                if len(order_first) < 5:
                    order_first.append([p, s, last_seq[p]])
            else:
                last_seq[p] = s
    summary = {"committed": len(committed), "delivered": len(got),
               "ok": 0, "dup": 0, "lost": 0, "dead": 0,
               "unexpected": unexpected, "order": order_bad}
    if order_first:
        summary["order_first"] = order_first
    if a.expect_events:
        # every commit the producers saw acknowledged is in the database
        # (a failover must not lose one), and none twice
        seen = {}
        for ev, body in committed.values():
            if body["p"] >= 0:
                k = (body["p"], body["seq"])
                seen[k] = seen.get(k, 0) + 1
        want = {(p, s) for p in range(a.expect_producers)
                for s in range(1, a.expect_events + 1)}
        summary["commits_missing"] = len(want - set(seen))
        summary["commits_twice"] = sum(1 for n in seen.values() if n > 1)
    for mid, (ev, body) in committed.items():
        n = count.get(mid, 0)
        if n == 0:
            summary["dead" if ev in dead_ids else "lost"] += 1
            if ev not in dead_ids and len(summary.setdefault(
                    "lost_first", [])) < 5:
                summary["lost_first"].append([body["p"], body["seq"], ev])
        elif n == 1:
            summary["ok"] += 1
        else:
            summary["dup"] += 1
    print(json.dumps(summary))
    bad = summary["lost"] or summary["unexpected"] \
        or summary["order"] \
        or (a.no_dups and summary["dup"]) or not committed \
        or summary.get("commits_missing") or summary.get("commits_twice")
    return 1 if bad else 0


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("produce")
    s.add_argument("--queue", required=True)
    s.add_argument("--exchange", required=True)
    s.add_argument("--producers", type=int, default=4)
    s.add_argument("--events", type=int, default=500)
    s.add_argument("--duration", type=float, default=8)
    s.add_argument("--rollback", type=float, default=0.02)
    s.add_argument("--emit", metavar="STREAM",
                   help="mikkoo.emit() into STREAM instead of PgQ")
    s = sub.add_parser("check")
    s.add_argument("--queue", required=True)
    s.add_argument("--amqp-queue", required=True)
    s.add_argument("--idle", type=float, default=2)
    s.add_argument("--no-dups", action="store_true")
    s.add_argument("--drained", action="append",
                   help="a file of drain's: its messages came first")
    s.add_argument("--expect-producers", type=int, default=4)
    s.add_argument("--expect-events", type=int, default=0,
                   help="events each producer committed (produce --events)")
    s = sub.add_parser("drain")
    s.add_argument("--amqp-queue", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--prefetch", type=int, default=500)
    s = sub.add_parser("probe")
    s.add_argument("--queue", required=True)
    s.add_argument("--exchange", required=True)
    s.add_argument("--amqp-queue", required=True)
    s.add_argument("--seq", type=int, default=1)
    s.add_argument("--since", type=float, default=0)
    s.add_argument("--urls")
    s.add_argument("--timeout", type=float, default=120)
    a = ap.parse_args()
    if a.cmd == "probe":
        return probe(a)
    if a.cmd == "produce":
        produce(a)
        return 0
    if a.cmd == "drain":
        return drain_to_file(a)
    return check(a)


if __name__ == "__main__":
    sys.exit(main())
