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

check: reads the committed events (mikkoo.audit rows: they commit with
their events) and the dead letters, drains the confirming queue, and
classifies each committed event: ok (once), dup (more than once), lost
(never, not dead-lettered), dead; messages matching no committed event
are unexpected.  First deliveries must follow seq per producer.  Prints
a JSON summary; exits 0 when lost == unexpected == order == 0 (and
dup == 0 with --no-dups; order is only reported with --late-ok, for the
caller to hold against the relay's count of retried events: each event
out of order counts once).  With --expect-events N, also every (p, seq)
the producers saw committed must be in mikkoo.audit exactly once
(commits_missing, commits_twice): what a failover must not lose.
"""
import argparse
import json
import os
import random
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
                cur.execute("SELECT mikkoo.insert_audited_event(%s, %s, "
                            "%s, %s, 'application/json')",
                            (a.queue, a.exchange, "p.%d" % p, body))
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
        cur.execute("SELECT mikkoo.insert_audited_event(%s, %s, 'held', "
                    "%s, 'application/json')",
                    (a.queue, a.exchange,
                     json.dumps({"p": -1, "seq": i + 1, "rb": False})))
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


def check(a):
    db = connect()
    cur = db.cursor()
    cur.execute("SELECT message_id::text, event_id, payload FROM "
                "mikkoo.audit WHERE queue = %s", (a.queue,))
    committed = {mid: (ev, json.loads(pl)) for mid, ev, pl in cur.fetchall()}
    cur.execute("SELECT ev_id FROM mikkoo.dead_letter WHERE queue = %s",
                (a.queue,))
    dead_ids = {r[0] for r in cur.fetchall()}
    got = drain(a)
    count = {}
    order_bad = 0
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
            last_seq[p] = s
    summary = {"committed": len(committed), "delivered": len(got),
               "ok": 0, "dup": 0, "lost": 0, "dead": 0,
               "unexpected": unexpected, "order": order_bad}
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
        elif n == 1:
            summary["ok"] += 1
        else:
            summary["dup"] += 1
    print(json.dumps(summary))
    bad = summary["lost"] or summary["unexpected"] \
        or (summary["order"] and not a.late_ok) \
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
    s = sub.add_parser("check")
    s.add_argument("--queue", required=True)
    s.add_argument("--amqp-queue", required=True)
    s.add_argument("--idle", type=float, default=2)
    s.add_argument("--no-dups", action="store_true")
    s.add_argument("--late-ok", action="store_true",
                   help="report first deliveries out of order (retried "
                   "events come later) without failing on them")
    s.add_argument("--expect-producers", type=int, default=4)
    s.add_argument("--expect-events", type=int, default=0,
                   help="events each producer committed (produce --events)")
    a = ap.parse_args()
    if a.cmd == "produce":
        produce(a)
        return 0
    return check(a)


if __name__ == "__main__":
    sys.exit(main())
