#!/usr/bin/env bash
# The main job, end to end, with no cloud account: publish a sample result directory in
# directory mode and in archive mode, with the local publisher and with the S3 publisher
# (to an embedded S3 server, moto's, that this script starts on 127.0.0.1), describe each
# result, `get` it back (verified by size and SHA-256) and compare it with the original.
set -euo pipefail

work=$(mktemp -d "${TMPDIR:-/tmp}/publisher-demo.XXXXXX")
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
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

say "an embedded S3 server (moto) on 127.0.0.1, and a bucket"
port=$(python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
moto_server -H 127.0.0.1 -p "$port" > "$work/s3-server.log" 2>&1 &
server_pid=$!
export AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo-secret AWS_REGION=us-east-1
endpoint="http://127.0.0.1:$port"
python - "$endpoint" <<'PY'
import sys, time, urllib.request
for _ in range(100):  # up to 10 s for the server to answer
    try:
        urllib.request.urlopen(sys.argv[1], timeout=1).close()
        break
    except Exception:
        time.sleep(0.1)
else:
    sys.exit("the embedded S3 server did not start")
import boto3
boto3.client("s3", endpoint_url=sys.argv[1]).create_bucket(Bucket="demo-results")
PY
echo "s3://demo-results at $endpoint"

for mode in directory archive; do
  spec="s3://demo-results/runs/{jobID}/{date},opt=endpoint=$endpoint"
  if [ "$mode" = archive ]; then spec="$spec,opt=compress=true"; fi
  say "S3, $mode mode: publisher publish '$spec'"
  publisher publish "$spec" "$work/result" --job-id demo-job > "$work/s3-$mode.yaml"
  cat "$work/s3-$mode.yaml"
  say "S3, $mode mode: describe (pre-signed URLs), then get with no credentials"
  publisher describe "$work/s3-$mode.yaml" --json > "$work/s3-$mode-download.json"
  env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY \
    publisher get "$work/s3-$mode-download.json" -o "$work/restored-s3-$mode"
  diff -r "$work/result" "$work/restored-s3-$mode"
  echo "restored tree is identical to the original (diff -r)"
done

say "a tampered result is refused"
victim=$(find "$work/store" -name table.csv | head -n 1)
printf 'tampered' >> "$victim"
if publisher get "$work/directory.yaml" -o "$work/tampered"; then
  echo "tampering went unnoticed" >&2; exit 1
fi
test ! -e "$work/tampered" && echo "nothing was written to $work/tampered"

say "demo finished: both modes, local and S3, published, verified and restored byte for byte"
