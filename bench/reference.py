#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""reference.py: the original mikkoo's way, for bench/run.

A minimal relay that publishes one event, waits for its publisher
confirm, then publishes the next (as the Python mikkoo does with
confirm: true), with the same properties and headers.  Prints
"events_per_second N" after COUNT events.

    reference.py CONNINFO QUEUE CONSUMER AMQP_URL COUNT
"""
import socket
import sys
import time
import uuid

import pika
import psycopg2


def main():
    conninfo, queue, consumer, url, count = sys.argv[1:6]
    count = int(count)
    db = psycopg2.connect(conninfo)
    db.autocommit = True
    cur = db.cursor()
    conn = pika.BlockingConnection(pika.URLParameters(url))
    ch = conn.channel()
    ch.confirm_delivery()
    origin = socket.getfqdn()
    got = 0
    seq = 0
    start = time.monotonic()
    while got < count:
        cur.execute("SELECT pgq.next_batch(%s, %s)", (queue, consumer))
        batch = cur.fetchone()[0]
        if batch is None:
            time.sleep(0.01)
            continue
        cur.execute("SELECT ev_id, ev_time, ev_txid, ev_type, ev_data, "
                    "ev_extra1, ev_extra2 FROM pgq.get_batch_events(%s)",
                    (batch,))
        for ev_id, ev_time, txid, rk, data, exchange, ctype in cur.fetchall():
            seq += 1
            props = pika.BasicProperties(
                app_id="mikkoo", content_type=ctype,
                correlation_id=str(uuid.uuid4()),
                timestamp=int(ev_time.timestamp()), delivery_mode=2,
                headers={"origin": origin, "sequence": seq,
                         "timestamp": ev_time.isoformat(), "txid": txid,
                         "event_id": ev_id})
            # BlockingChannel with confirms: returns once RabbitMQ acked.
            ch.basic_publish(exchange, rk, data.encode(), props,
                             mandatory=True)
            got += 1
        cur.execute("SELECT pgq.finish_batch(%s)", (batch,))
    print("events_per_second %.0f" % (got / (time.monotonic() - start)))
    conn.close()


if __name__ == "__main__":
    main()
