#!/usr/bin/env bash
# Write the log set's thirteen documents to evaluation/sets/fail2ban-logs/corpus/ (not committed), for uploading: fail2ban's
# test samples (Debian package fail2ban) without their "# failJSON" annotation lines, named <sample>.log.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
LOGS=/usr/lib/python3/dist-packages/fail2ban/tests/files/logs
[ -d "$LOGS" ] || { echo "$LOGS is missing: apt-get install fail2ban" >&2; exit 1; }
mkdir -p "$HERE/corpus"
for sample in sshd apache-auth postfix dovecot nginx-http-auth \
  named-refused mysqld-auth squid mssql-auth murmur openhab grafana nagios; do
  grep -v '^#' "$LOGS/$sample" > "$HERE/corpus/$sample.log" || true
done
ls -l "$HERE/corpus"
