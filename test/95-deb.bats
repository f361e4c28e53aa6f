#!/usr/bin/env bats
# SPDX-License-Identifier: BSD-3-Clause
# make deb: the Debian package is built (debhelper), lintian finds no
# error and no warning, it holds what it should, and the demo's job runs
# with the programs and the schema taken out of it by dpkg-deb -x.

load helpers/common
load helpers/relay

setup_file() {
	VERSION=$(sed -n 's/^VERSION := //p' "$MIKKOO_TOP/Makefile")
	ARCH=$(dpkg --print-architecture)
	DEB="$BATS_FILE_TMPDIR/deb/mikkoo_${VERSION}_$ARCH.deb"
	ROOT="$BATS_FILE_TMPDIR/root"
	export VERSION ARCH DEB ROOT
}

teardown() {
	common_teardown
}

need_deb() {
	[ -f "$DEB" ] || skip "the package was not built (see the first test)"
}

@test "make deb builds mikkoo_VERSION_ARCH.deb with debhelper; lintian: no errors, no warnings" {
	# the caller's make (make check-asan: O=, CFLAGS=, SAN=) must not
	# reach the package's build
	run env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL \
		make -s -C "$MIKKOO_TOP" deb DEBDIR="$BATS_FILE_TMPDIR/deb"
	assert_success
	assert_line --index -1 "$DEB"
	assert_line "build-deb: lintian: no errors, no warnings"
	echo "lintian, every tag to pedantic: $(grep -E '^[A-Z]: ' "$BATS_FILE_TMPDIR/deb/lintian.txt" | tr '\n' ' ')" >&3
	run grep -E '^[EW]: ' "$BATS_FILE_TMPDIR/deb/lintian.txt"
	assert_failure
	# debhelper's hardening reached the compiler: no test hooks, no ASan
	run grep -c -- '-DMIKKOO_TEST_HOOKS\|-fsanitize' "$BATS_FILE_TMPDIR/deb/build.log"
	assert_output 0
	grep -q -- '-fstack-protector-strong' "$BATS_FILE_TMPDIR/deb/build.log"
}

@test "the package holds the programs, man pages, mikkoo.sql, the example, the service directories, the unit, the rules and the dashboard" {
	need_deb
	run dpkg-deb -f "$DEB" Package Version Architecture
	assert_output "Package: mikkoo
Version: $VERSION
Architecture: $ARCH"
	run dpkg-deb -f "$DEB" Depends
	for d in adduser libpq5 librabbitmq4 libjansson4 libyaml-0-2 libmicrohttpd12; do
		assert_output --partial "$d"
	done

	dpkg-deb -c "$DEB" | awk '{ print $1, $6 }' >"$BATS_TEST_TMPDIR/list"
	for f in mikkoo-relay mikkoo-insert mikkoo-inspect mikkoo-replay mikkoo-audit; do
		grep -qx -- "-rwxr-xr-x ./usr/bin/$f" "$BATS_TEST_TMPDIR/list" ||
			fail "no /usr/bin/$f"
	done
	for m in "$MIKKOO_TOP"/man/*.[1-9]; do
		n=${m##*/}
		grep -qx -- "-rw-r--r-- ./usr/share/man/man${n##*.}/$n.gz" "$BATS_TEST_TMPDIR/list" ||
			fail "no man page $n"
	done
	for f in mikkoo.sql examples/mikkoo.yml \
		prometheus/mikkoo.rules.yml grafana/mikkoo-dashboard.json \
		systemd/mikkoo-relay.service \
		s6/mikkoo-relay/notification-fd s6/mikkoo-relay/timeout-kill \
		runit/mikkoo-relay/log/run; do
		grep -q " ./usr/share/mikkoo/$f\$" "$BATS_TEST_TMPDIR/list" ||
			fail "no /usr/share/mikkoo/$f"
	done
	for f in s6/mikkoo-relay/run s6/mikkoo-relay/finish \
		s6/mikkoo-relay/log/run runit/mikkoo-relay/run \
		runit/mikkoo-relay/finish runit/mikkoo-relay/log/run; do
		grep -qx -- "-rwxr-xr-x ./usr/share/mikkoo/$f" "$BATS_TEST_TMPDIR/list" ||
			fail "/usr/share/mikkoo/$f is not there or not executable"
	done
	grep -q " ./lib/systemd/system/mikkoo-relay.service$" "$BATS_TEST_TMPDIR/list"

	rm -rf "$ROOT"
	dpkg-deb -x "$DEB" "$ROOT"
	# the files of dist/, with the package's paths
	run cat "$ROOT/usr/share/mikkoo/s6/mikkoo-relay/run"
	assert_output --partial "exec s6-setuidgid mikkoo /usr/bin/mikkoo-relay -c /etc/mikkoo/mikkoo.yml --notify-fd 3"
	cmp "$ROOT/lib/systemd/system/mikkoo-relay.service" \
		"$ROOT/usr/share/mikkoo/systemd/mikkoo-relay.service"
	cmp "$ROOT/usr/share/mikkoo/prometheus/mikkoo.rules.yml" \
		"$MIKKOO_TOP/dist/prometheus/mikkoo.rules.yml"
	run zcat "$ROOT/usr/share/man/man1/mikkoo-relay.1.gz"
	assert_output --partial "/usr/share/mikkoo/mikkoo.sql"
	refute_output --partial "/usr/local/"

	# the unit as packaged (its program at the extracted path) is one
	# systemd accepts, without a word
	sed "s#/usr/bin/mikkoo-relay#$ROOT/usr/bin/mikkoo-relay#" \
		"$ROOT/lib/systemd/system/mikkoo-relay.service" \
		>"$BATS_TEST_TMPDIR/mikkoo-relay.service"
	run systemd-analyze verify --man=no "$BATS_TEST_TMPDIR/mikkoo-relay.service"
	assert_success
	assert_output ""

	# its maintainer scripts make the user, and neither start the unit
	# nor enable it unless it was enabled before an upgrade (a relay
	# needs its configuration first)
	dpkg-deb -e "$DEB" "$BATS_TEST_TMPDIR/control"
	grep -q "adduser --system --group .* mikkoo$" "$BATS_TEST_TMPDIR/control/postinst"
	run grep -c "deb-systemd-invoke" "$BATS_TEST_TMPDIR/control/postinst"
	assert_output 0
	run grep -B2 "deb-systemd-helper enable" "$BATS_TEST_TMPDIR/control/postinst"
	assert_line --index 0 --partial "was-enabled 'mikkoo-relay.service'"

	# the programs run, and find their libraries
	run "$ROOT/usr/bin/mikkoo-relay" -V
	assert_output --partial "$VERSION"
	run sh -c "ldd '$ROOT'/usr/bin/mikkoo-* | grep 'not found'"
	assert_failure
}

@test "the demo's job with the programs and the schema from the package (dpkg-deb -x)" {
	need_deb
	[ -x "$ROOT/usr/bin/mikkoo-relay" ] || dpkg-deb -x "$DEB" "$ROOT"
	local bin="$ROOT/usr/bin" t
	psql -qX -v ON_ERROR_STOP=1 -f "$ROOT/usr/share/mikkoo/mikkoo.sql" >/dev/null
	setup_relay_queue
	"$bin/mikkoo-relay" -n -c "$CONF"
	# the packaged example is a configuration the relay accepts, once
	# the password file it names exists
	echo secret >"$BATS_TEST_TMPDIR/rabbitmq.password"
	chmod 600 "$BATS_TEST_TMPDIR/rabbitmq.password"
	sed "s#/etc/mikkoo/rabbitmq.password#$BATS_TEST_TMPDIR/rabbitmq.password#" \
		"$ROOT/usr/share/mikkoo/examples/mikkoo.yml" >"$BATS_TEST_TMPDIR/example.yml"
	run "$bin/mikkoo-relay" -n -c "$BATS_TEST_TMPDIR/example.yml"
	assert_success
	assert_output "configuration OK"
	daemon_start relay "$bin/mikkoo-relay" -c "$CONF"

	# four events in one transaction, one of them broken
	psql -qX -v ON_ERROR_STOP=1 >/dev/null <<SQL
BEGIN;
SELECT pgq.insert_event('$Q', 'order.created', '{"order": 1}', '$EX',
       'application/json', '{"type": "example"}', '');
SELECT mikkoo.insert_audited_event('$Q', '$EX', 'order.paid',
       '{"order": 1, "amount": 42}', 'application/json');
SELECT pgq.insert_event('$Q', 'order.shipped', '{"order": 1}', '$EX',
       'application/json', NULL, '{"carrier": "rabbit post"}');
SELECT pgq.insert_event('$Q', 'order.broken', 'x', '$EX', NULL,
       '{"type": ', NULL);
COMMIT;
SQL
	get_messages 3
	run jq -r .routing_key "$BATS_TEST_TMPDIR/msgs.jsonl"
	assert_output "order.created
order.paid
order.shipped"
	wait_for 20 dead_count_is 1
	run "$bin/mikkoo-inspect" -q "$Q" dead
	assert_success
	assert_output --partial '"ev_type":"order.broken"'

	# one more through the packaged mikkoo-insert
	run "$bin/mikkoo-insert" -q "$Q" -e "$EX" -r order.refunded -b '{"order":1}'
	assert_success
	get_messages 1
	assert_equal "$(jq -r .routing_key "$BATS_TEST_TMPDIR/msgs.jsonl")" order.refunded

	# a captured table's change arrives as a message
	t="users_$Q"
	sql "CREATE TABLE public.$t (id int PRIMARY KEY, full_name text, password text);
	     SELECT mikkoo.capture('public.$t', '$Q', '$EX', exclude => '{password}');
	     INSERT INTO public.$t VALUES (1, 'Mikael Åkerfeldt', 'secret');" >/dev/null
	get_messages 1
	run jq -r '.routing_key, (.body | fromjson | .new.full_name)' "$BATS_TEST_TMPDIR/msgs.jsonl"
	assert_output "public.$t
Mikael Åkerfeldt"
	refute_output --partial secret
	sql "SELECT mikkoo.uncapture('public.$t'); DROP TABLE public.$t" >/dev/null

	relay_stop
	assert_equal "$daemon_status" 0
}
