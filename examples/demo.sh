#!/usr/bin/env bash
# The main job, end to end, on the local publisher (no cloud account needed):
# publish a sample result directory in directory mode and in archive mode, describe each
# result, `get` it back (verified by size and SHA-256) and compare it with the original.
set -euo pipefail

work=$(mktemp -d "${TMPDIR:-/tmp}/publisher-demo.XXXXXX")
trap 'rm -rf "$work"' EXIT
export PUBLISHER_LOCAL_ROOT="$work/store"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "a sample job result in $work/result"
mkdir -p "$work/result/logs" "$work/result/data/empty dir" "$work/result/données"
printf 'id,value\n1,0.5\n2,0.25\n' > "$work/result/data/table.csv"
printf '{"step": 1, "loss": 0.5}\n{"step": 2, "loss": 0.25}\n' > "$work/result/metrics.jsonl"
seq 1 20000 | sed 's/^/log line /' > "$work/result/logs/run.log"
printf 'unicode name\n' > "$work/result/données/résumé.txt"
: > "$work/result/empty.txt"
(cd "$work/result" && find . | sort)

say "publisher list"
publisher list

for mode in directory archive; do
  if [ "$mode" = archive ]; then spec='local://results/{jobID}/{date},opt=compress=true'
  else spec='local://results/{jobID}/{date}'; fi
  say "$mode mode: publisher validate / publish '$spec'"
  publisher validate "$spec" --job-id demo-job
  publisher publish "$spec" "$work/result" --job-id demo-job --dry-run
  publisher publish "$spec" "$work/result" --job-id demo-job > "$work/$mode.yaml"
  cat "$work/$mode.yaml"

  say "$mode mode: publisher describe, then get with only the description"
  publisher describe "$work/$mode.yaml" --json > "$work/$mode-download.json"
  publisher get "$work/$mode-download.json" -o "$work/restored-$mode"
  diff -r "$work/result" "$work/restored-$mode"
  echo "restored tree is identical to the original (diff -r)"
done

say "a tampered result is refused"
victim=$(find "$work/store" -name table.csv | head -n 1)
printf 'tampered' >> "$victim"
if publisher get "$work/directory.yaml" -o "$work/tampered"; then
  echo "tampering went unnoticed" >&2; exit 1
fi
test ! -e "$work/tampered" && echo "nothing was written to $work/tampered"

say "demo finished: both modes published, verified and restored byte for byte"
