#!/usr/bin/env bash
# Make the office set's three documents from git's own guides (Debian package git-doc) with pandoc:
#   gitfaq.html -> gitfaq.docx, gittutorial.html -> gittutorial.odt, giteveryday.html -> giteveryday.pptx
# The results are committed (evaluation/sets/office/corpus/): the expected spans were copied from these files'
# extracted text, and another pandoc or git-doc version would write slightly different ones.
# Needs: apt-get install git-doc pandoc (the HTML is read from the installed package, or from its .deb when absent).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
OUT="$HERE/corpus"
GIT_DOC=/usr/share/doc/git-doc
if [ ! -f "$GIT_DOC/gitfaq.html" ]; then
  TMP="$(mktemp -d)"; trap 'rm -rf "$TMP"' EXIT
  (cd "$TMP" && apt-get download git-doc >/dev/null && dpkg-deb -x git-doc_*.deb root)
  GIT_DOC="$TMP/root/usr/share/doc/git-doc"
fi
command -v pandoc >/dev/null || { echo "pandoc is missing: apt-get install pandoc" >&2; exit 1; }
mkdir -p "$OUT"
pandoc -f html -t docx -o "$OUT/gitfaq.docx" "$GIT_DOC/gitfaq.html"
pandoc -f html -t odt -o "$OUT/gittutorial.odt" "$GIT_DOC/gittutorial.html"
pandoc -f html -t pptx -o "$OUT/giteveryday.pptx" "$GIT_DOC/giteveryday.html"
ls -l "$OUT"
