#!/usr/bin/env bash
# Run critest against a CRI endpoint with this repo's skip list and clean up
# what critest leaves on the host.
#   hack/run-critest.sh ENDPOINT [--handler NAME] [--benchmark OUT.txt] [-- critest args...]
# ENDPOINT is unix:///path/to.sock. Images come from the local registry
# (hack/build-critest-images.sh) through the runtime's hosts.toml mirrors.
# The report (JUnit XML + log) goes to build/critest/<name>/, where <name> is
# $CRITEST_NAME or derived from the handler.
#
# Facts:
#   - critest's HostIpc specs create SysV shared memory segments on the host
#     (ipcmk -M) and never remove them: segments that appeared during the run
#     are removed afterwards (ipcrm).
#   - With -benchmark, critest runs only pkg/benchmark; gmeasure prints its
#     tables to stdout, which is saved to OUT.txt.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
endpoint=${1:?usage: run-critest.sh unix:///path.sock [--handler NAME] [--benchmark OUT] [-- args]}
shift
handler="" bench_out="" extra=()
while (($#)); do
  case $1 in
    --handler) handler=$2; shift 2 ;;
    --benchmark) bench_out=$2; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    *) echo "run-critest.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

"$here/hack/install-critest.sh"
"$here/hack/build-critest-images.sh" >/dev/null

name=${CRITEST_NAME:-${handler:-default}}
[[ -n $bench_out ]] && name=$name-benchmark
report=$here/build/critest/$name
rm -rf "$report" && mkdir -p "$report"

args=(--runtime-endpoint "$endpoint" --image-endpoint "$endpoint" --ginkgo.no-color)
[[ -n $handler ]] && args+=(--runtime-handler "$handler")
while IFS= read -r line; do
  [[ -z $line || $line == \#* ]] && continue
  args+=("--ginkgo.skip=$line")
done <"$here/hack/critest-skips.txt"
if [[ -n $bench_out ]]; then
  args+=(-benchmark --benchmarking-output-dir "$report"
        --benchmarking-params-file "$here/hack/critest-benchmark.yaml")
else
  # critest v1.34 accepts --report-dir but writes nothing there; ginkgo's
  # own JUnit reporter does.
  args+=(--ginkgo.junit-report="$report/junit.xml")
fi

shm_ids() { awk 'NR > 1 {print $2}' /proc/sysvipc/shm | sort; }
before=$(shm_ids)
cleanup_shm() {
  local id
  for id in $(comm -13 <(echo "$before") <(shm_ids)); do
    ipcrm -m "$id" 2>/dev/null || true
  done
}
trap cleanup_shm EXIT

rc=0
# critest writes relative temp paths (pod log dirs) into its working dir.
(cd "$report" && "$here/build/bin/critest" "${args[@]}" "${extra[@]}") 2>&1 | tee "$report/critest.log" || rc=$?
if [[ -n $bench_out ]]; then
  # gmeasure prints only the pod+container start table; the lifecycle
  # benchmarks leave per-sample JSON in the output dir: one table from both.
  python3 - "$report" "$endpoint" "${handler:-default}" >"$bench_out" <<'PY'
import json, pathlib, statistics, sys
report, endpoint, handler = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3]
print(f"critest -benchmark against {endpoint} (handler {handler}), params hack/critest-benchmark.yaml")
print(f"{'benchmark':<26} {'operation':<26} {'N':>3} {'min ms':>8} {'median':>8} {'mean':>8} {'max':>8}")
for path in sorted(report.glob("*_benchmark_data.json")):
    data = json.loads(path.read_text())
    for i, op in enumerate(data["operationsNames"]):
        ms = [d["operationsDurationsNs"][i] / 1e6 for d in data["datapoints"]]
        if ms:
            print(f"{path.name.removesuffix('_benchmark_data.json'):<26} {op:<26} {len(ms):>3} {min(ms):>8.2f} "
                  f"{statistics.median(ms):>8.2f} {statistics.fmean(ms):>8.2f} {max(ms):>8.2f}")
log = (report / "critest.log").read_text()
print()
print("\n".join(line for line in log.splitlines() if "|" in line or "=====" in line))
PY
fi
grep -E '^(Ran [0-9]+ of|FAIL!|SUCCESS!)' "$report/critest.log" || true
exit $rc
