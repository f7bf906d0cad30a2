#!/usr/bin/env bash
# deploy/vidq.service and deploy/install.sh: the installed unit passes
# `systemd-analyze verify` with no warning; its `systemd-analyze security`
# exposure is at most 2.0; it has the hardening issue #14 lists; its
# system-call filter and namespace rules let the worker sandbox run
# (unshare of user/mnt/net/ipc namespaces, mount, umount2, pivot_root,
# landlock_*, seccomp, prctl, setrlimit/prlimit64, setpriority); install.sh
# stages the binary, the unit and the env file (0600, kept on a second
# run), refuses bad arguments and a missing binary, and starts nothing.
# systemd is not PID 1 on the test machines, so the unit is not started.
# ctest-labels: integration
# ctest-timeout: 120
set -euo pipefail
source "$(dirname "$0")/lib_cli.sh"
command -v systemd-analyze >/dev/null || { fail "systemd-analyze missing (package systemd, deploy/packages.txt)"; finish; }

unit=$VIDQ_SRC/deploy/vidq.service
install=$VIDQ_SRC/deploy/install.sh
S=$T/stage

# --- install.sh into a staging root
bash "$install" --bin "$VIDQ_BIN" --destdir "$S" >"$T/install.out" 2>&1 || fail "install.sh failed: $(cat "$T/install.out")"
for f in usr/local/bin/vidq etc/systemd/system/vidq.service etc/vidq/vidq.env; do
  [ -f "$S/$f" ] || fail "install.sh did not install /$f"
done
[ "$(stat -c %a "$S/usr/local/bin/vidq")" = 755 ] || fail "binary mode $(stat -c %a "$S/usr/local/bin/vidq")"
[ "$(stat -c %a "$S/etc/vidq/vidq.env")" = 600 ] || fail "env file mode $(stat -c %a "$S/etc/vidq/vidq.env"), want 600 (it may hold the API key)"
[ "$(stat -c %a "$S/etc/systemd/system/vidq.service")" = 644 ] || fail "unit mode"
"$S/usr/local/bin/vidq" --version | grep -q '^vidq ' || fail "the installed binary does not run"
cmp -s "$VIDQ_BIN" "$S/usr/local/bin/vidq" || fail "the installed binary differs from $VIDQ_BIN"
grep -q '^ExecStart=/usr/local/bin/vidq serve$' "$S/etc/systemd/system/vidq.service" || fail "ExecStart: $(grep ExecStart "$S/etc/systemd/system/vidq.service")"
grep -q 'systemctl' "$T/install.out" && fail "a staged install mentions systemctl: $(cat "$T/install.out")"
# a second run keeps an edited env file, replaces the rest
echo 'VIDQ_API_KEY=kept' >> "$S/etc/vidq/vidq.env"
bash "$install" --bin "$VIDQ_BIN" --prefix /opt/vidq --destdir "$S" >"$T/install2.out" 2>&1 || fail "second install.sh failed"
grep -q '^VIDQ_API_KEY=kept$' "$S/etc/vidq/vidq.env" || fail "install.sh overwrote the edited env file"
grep -q '^ExecStart=/opt/vidq/bin/vidq serve$' "$S/etc/systemd/system/vidq.service" || fail "--prefix not in ExecStart"
[ -x "$S/opt/vidq/bin/vidq" ] || fail "--prefix: no /opt/vidq/bin/vidq"
ls -a "$S/opt/vidq/bin" "$S/etc/systemd/system" | grep -q '\.new$' && fail "install.sh left a .new file"

# --- bad arguments: exit 2 (usage) or 1, nothing installed
expect_install_fail() { # CTX WANT_RC ARGS...
  local ctx=$1 want=$2 rc=0; shift 2
  rm -rf "$T/bad"
  bash "$install" "$@" >"$T/bad.out" 2>&1 || rc=$?
  [ "$rc" = "$want" ] || fail "$ctx: exit $rc, want $want: $(cat "$T/bad.out")"
  [ -s "$T/bad.out" ] || fail "$ctx: no message"
  [ ! -e "$T/bad/etc" ] || fail "$ctx: installed something"
}
expect_install_fail "unknown flag" 2 --bin "$VIDQ_BIN" --destdir "$T/bad" --frobnicate
expect_install_fail "relative prefix" 2 --bin "$VIDQ_BIN" --destdir "$T/bad" --prefix usr/local
expect_install_fail "prefix with a space" 2 --bin "$VIDQ_BIN" --destdir "$T/bad" --prefix "/opt/my vidq"
expect_install_fail "--enable with --destdir" 2 --bin "$VIDQ_BIN" --destdir "$T/bad" --enable
expect_install_fail "missing binary" 1 --bin "$T/nope/vidq" --destdir "$T/bad"
printf '#!/bin/sh\nexit 3\n' > "$T/broken"; chmod +x "$T/broken"
expect_install_fail "binary that does not run" 1 --bin "$T/broken" --destdir "$T/bad"

# --- systemd-analyze verify: the staged unit with ExecStart at the staged
# binary (verify checks that it exists), no warning at all.
sed "s|^ExecStart=/opt/vidq/bin/vidq |ExecStart=$S/opt/vidq/bin/vidq |" \
  "$S/etc/systemd/system/vidq.service" > "$T/vidq.service"
rc=0; systemd-analyze verify "$T/vidq.service" >"$T/verify.out" 2>&1 || rc=$?
[ "$rc" = 0 ] || fail "systemd-analyze verify exit $rc: $(cat "$T/verify.out")"
[ -s "$T/verify.out" ] && fail "systemd-analyze verify warned: $(cat "$T/verify.out")"
# the check can fail: a bad line is reported
sed 's/^RestrictNamespaces=.*/RestrictNamespaces=user bogus/' "$T/vidq.service" > "$T/bad.service"
systemd-analyze verify "$T/bad.service" >"$T/verify-bad.out" 2>&1 || true
[ -s "$T/verify-bad.out" ] || fail "verify did not notice a bad line"

# --- exposure
systemd-analyze security --offline=true --no-pager "$T/vidq.service" >"$T/security.out" 2>&1 || true
exposure=$(sed -n 's/.*Overall exposure level for vidq.service: \([0-9.]*\).*/\1/p' "$T/security.out")
[ -n "$exposure" ] || fail "no exposure in: $(tail -3 "$T/security.out")"
[ -n "$exposure" ] && { fcmp "$exposure" '<=' 2.0 || fail "exposure $exposure, want <= 2.0: $(grep '✗' "$T/security.out")"; }
note "systemd-analyze security exposure: $exposure"

# --- the hardening the issue lists
for want in 'DynamicUser=yes' 'StateDirectory=vidq' 'ProtectSystem=strict' 'ProtectHome=yes' \
            'PrivateTmp=yes' 'PrivateDevices=yes' 'NoNewPrivileges=yes' 'CapabilityBoundingSet=' \
            'RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6' 'MemoryDenyWriteExecute=yes' \
            'SystemCallFilter=@system-service' 'KillMode=mixed'; do
  grep -qx -- "$want" "$unit" || fail "the unit lacks $want"
done

# --- what the worker sandbox needs passes the unit's filters. Allowed =
# the union of the positive SystemCallFilter lines minus the ~ lines (the
# unit's order: allow lines first, then denials).
expand() { # groups and names -> one syscall a line
  local x
  for x in "$@"; do
    if [[ "$x" == @* ]]; then
      systemd-analyze syscall-filter --no-pager "$x" | sed -n 's/^ \{4\}\([a-z_0-9@-]*\).*/\1/p' |
        while read -r y; do if [[ "$y" == @* ]]; then expand "$y"; else echo "$y"; fi; done
    else
      echo "$x"
    fi
  done
}
allow=$(grep '^SystemCallFilter=[^~]' "$unit" | sed 's/^SystemCallFilter=//' | tr ' ' '\n' | grep . || true)
deny=$(grep '^SystemCallFilter=~' "$unit" | sed 's/^SystemCallFilter=~//' | tr ' ' '\n' | grep . || true)
expand $allow | sort -u > "$T/allow.txt"
expand $deny | sort -u > "$T/deny.txt"
[ "$(wc -l < "$T/allow.txt")" -gt 200 ] || fail "could not expand the allow list ($(wc -l < "$T/allow.txt") names)"
# (svc/sandbox/sandbox.c: unshare, setns (probes join the zygote's namespaces), mount, pivot_root, umount2, chdir,
# fchdir, mkdir, readlink of /proc/self/fd, statfs, close_range, landlock_*,
# prctl, seccomp, setrlimit; SVT-AV1 in the child: affinity and NUMA calls)
for sc in unshare setns mount umount2 pivot_root landlock_create_ruleset landlock_add_rule \
          landlock_restrict_self seccomp prctl setrlimit prlimit64 setpriority clone clone3 \
          execve mmap mprotect memfd_create socket bind connect accept4 epoll_wait \
          close_range statfs readlink readlinkat chdir fchdir mkdir sched_setaffinity \
          set_mempolicy get_mempolicy mbind; do
  grep -qx "$sc" "$T/allow.txt" || fail "SystemCallFilter does not allow $sc (the service or its sandbox needs it)"
  grep -qx "$sc" "$T/deny.txt" && fail "SystemCallFilter denies $sc"
done
# and keeps out what nothing needs
for sc in ptrace reboot init_module kexec_load swapon settimeofday iopl; do
  grep -qx "$sc" "$T/allow.txt" && ! grep -qx "$sc" "$T/deny.txt" && fail "SystemCallFilter allows $sc"
done
ns=$(sed -n 's/^RestrictNamespaces=//p' "$unit")
for n in user mnt net ipc; do
  [[ " $ns " == *" $n "* ]] || fail "RestrictNamespaces ($ns) does not allow $n (the sandbox unshares it)"
done
for n in pid uts cgroup; do
  [[ " $ns " == *" $n "* ]] && fail "RestrictNamespaces allows $n, which nothing needs"
done

# --- PrivateUsers=yes runs the service in a user namespace of its own:
# the worker sandbox must get the same layers nested in one, and a job
# must run. (The rest of the unit needs systemd as PID 1, absent here.)
serve_layers() { # LOG: the server's "sandbox=..." line
  for _ in $(seq 100); do grep -q 'sandbox=' "$1" 2>/dev/null && break; sleep 0.1; done
  sed -n 's/.* sandbox=\([a-z,]*\).*/\1/p' "$1" | head -1
}
"$VIDQ_BIN" serve --listen 127.0.0.1:0 --data-dir "$T/top" --port-file "$T/top.port" >/dev/null 2>"$T/top.log" &
TOP=$!; CLEANUP_PIDS+=("$TOP")
top_layers=$(serve_layers "$T/top.log")
kill "$TOP"; wait "$TOP" 2>/dev/null || true
unshare -U -r "$VIDQ_BIN" serve --listen 127.0.0.1:0 --data-dir "$T/nested" --port-file "$T/nested.port" >/dev/null 2>"$T/nested.log" &
NEST=$!; CLEANUP_PIDS+=("$NEST")
nested_layers=$(serve_layers "$T/nested.log")
note "sandbox layers: top level '$top_layers', in a user namespace '$nested_layers'"
[ -n "$top_layers" ] || fail "the server logged no sandbox layers: $(tail -3 "$T/top.log")"
[ "$nested_layers" = "$top_layers" ] || fail "in a user namespace the sandbox has '$nested_layers', at top level '$top_layers'"
for _ in $(seq 100); do [ -s "$T/nested.port" ] && break; sleep 0.1; done
if [ -s "$T/nested.port" ]; then
  rc=0
  "$VIDQ_BIN" submit "$VIDQ_MEDIA/h264_aac_640x360.mp4" --server "http://127.0.0.1:$(cat "$T/nested.port")" \
    --preset mp4-480p --wait --progress none >"$T/nested.job" 2>"$T/nested.err" || rc=$?
  [ "$rc" = 0 ] && [ "$(tail -1 "$T/nested.job" | jq -r .status)" = succeeded ] || fail "a job in a user namespace: exit $rc: $(cat "$T/nested.err")"
else
  fail "the server in a user namespace did not start: $(tail -3 "$T/nested.log")"
fi
kill "$NEST"; wait "$NEST" 2>/dev/null || true
finish
