#!/usr/bin/env bash
# Put the Debian Developer's Reference PDF (Debian package developers-reference, 12.18 in bookworm) in
# evaluation/sets/pdf-manual/corpus/ (not committed). Installing the package does as well: evaluation/corpora.py reads
# /usr/share/developers-reference/developers-reference.pdf when corpus/ has no copy.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
PDF=/usr/share/developers-reference/developers-reference.pdf
mkdir -p "$HERE/corpus"
if [ -f "$PDF" ]; then
  cp "$PDF" "$HERE/corpus/"
else
  TMP="$(mktemp -d)"; trap 'rm -rf "$TMP"' EXIT
  (cd "$TMP" && apt-get download developers-reference >/dev/null && dpkg-deb -x developers-reference_*.deb root)
  cp "$TMP/root$PDF" "$HERE/corpus/"
fi
ls -l "$HERE/corpus"
