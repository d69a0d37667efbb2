#!/usr/bin/env bash
# make demo: a real Prometheus on loopback scraping the fixture cluster's exporters (ingress-nginx,
# cAdvisor, node-exporter, kube-state-metrics, an Istio gateway, queues), the adapter in --standalone
# mode with config/demo.yaml, an HPA replayed over the history, and commands to try.
# Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
PROM_PORT=${PROM_PORT:-19090}
ADAPTER_PORT=${ADAPTER_PORT:-6443}
BIN="${CARGO_TARGET_DIR:-target}/debug/prom-adapter"
WORK=$(mktemp -d -t prom-adapter-demo.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
  echo "demo stopped"
}
trap cleanup EXIT
trap "exit 130" INT TERM

for port in "$PROM_PORT" "$ADAPTER_PORT"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "port $port is in use; set PROM_PORT / ADAPTER_PORT" >&2; exit 1
  fi
done

# wait_ready URL PID NAME LOG: poll URL until it answers, failing if the process dies or 30 s pass.
wait_ready() {
  local deadline=$(( $(date +%s) + 30 ))
  until curl -ksf "$1" >/dev/null 2>&1; do
    if ! kill -0 "$2" 2>/dev/null || [ "$(date +%s)" -ge "$deadline" ]; then
      echo "$3 did not start; last lines of its log:" >&2
      tail -n 20 "$4" >&2 || true
      exit 1
    fi
    sleep 0.1
  done
}

# The fixture cluster's exporters (tests/fixtures/cluster.py): ingress-nginx, the kubelets' cAdvisor,
# node-exporter, kube-state-metrics, an Istio gateway and queue exporters, on loopback, with the
# scrape jobs kube-prometheus-stack would give them. Their first scrape carries 50 minutes of
# history, in which Ingress `shop` surges from 20 to 600 requests per second for 20 minutes.
now=$(date +%s); history=3000
surge_from=$(( now - history + 840 )); surge_to=$(( surge_from + 1200 ))
echo "starting the fixture cluster's exporters and a Prometheus that scrapes them..."
python3 tests/fixtures/cluster.py --dir "$WORK/cluster" --interval 10 --history "$history" \
  --surge shop "$surge_from" "$surge_to" 20 600 > "$WORK/cluster.out" &
pids+=($!)
until grep -q '^ready' "$WORK/cluster.out" 2>/dev/null; do
  kill -0 "${pids[-1]}" 2>/dev/null || { echo "the fixture cluster did not start" >&2; exit 1; }
  sleep 0.1
done
targets=$(sed -n 's/^ready //p' "$WORK/cluster.out")
prometheus --config.file="$WORK/cluster/prometheus.yml" --storage.tsdb.path="$WORK/prometheus" \
  --storage.tsdb.retention.time=100y --web.listen-address="127.0.0.1:$PROM_PORT" \
  </dev/null >"$WORK/prometheus.log" 2>&1 &
pids+=($!)
wait_ready "http://127.0.0.1:$PROM_PORT/-/ready" "${pids[-1]}" Prometheus "$WORK/prometheus.log"
# Every target's first scrape (with its history) takes up to 15 s.
deadline=$(( $(date +%s) + 60 ))
until [ "$(curl -s -G "http://127.0.0.1:$PROM_PORT/api/v1/query" --data-urlencode 'query=count(up == 1)' \
        | python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else 0)')" = "$targets" ]; do
  [ "$(date +%s)" -lt "$deadline" ] || { echo "Prometheus did not scrape all $targets targets" >&2; exit 1; }
  sleep 0.5
done
echo "Prometheus: http://127.0.0.1:$PROM_PORT (scraping $targets targets; see its /targets page)"

"$BIN" --standalone --config config/demo.yaml \
  --prometheus-url "http://127.0.0.1:$PROM_PORT" --secure-port "$ADAPTER_PORT" \
  --cert-dir "$WORK/certs" --metrics-relist-interval 30s 2> >(tee "$WORK/adapter.log" >&2) &
pids+=($!)
wait_ready "https://127.0.0.1:$ADAPTER_PORT/readyz" "${pids[-1]}" prom-adapter "$WORK/adapter.log"

# Replay the shop HPA over the surge: what would the autoscaler have done?
SVG="${DEMO_OUT:-$PWD}/prom-adapter-simulation.svg"
SIMULATE=("$BIN" simulate --config config/demo.yaml --prometheus-url "http://127.0.0.1:$PROM_PORT"
  --hpa config/hpa/shop.yaml --start "$(( surge_from - 300 ))" --end "$(( surge_to + 900 ))")
"${SIMULATE[@]}" --output svg > "$SVG"
"${SIMULATE[@]}" | tail -n 1
"${SIMULATE[@]}" --explain-at "$(( surge_to + 120 ))"
echo "simulation chart: $SVG (open it in a browser)"

K="kubectl --server https://127.0.0.1:$ADAPTER_PORT --insecure-skip-tls-verify --token demo"
cat <<TXT

prom-adapter serves custom.metrics.k8s.io, external.metrics.k8s.io and metrics.k8s.io on https://127.0.0.1:$ADAPTER_PORT (rules: config/demo.yaml).
Try:
  $K get --raw /apis/custom.metrics.k8s.io/v1beta2 | jq -r '.resources[].name'
  $K get --raw /apis/custom.metrics.k8s.io/v1beta2/namespaces/default/ingresses.networking.k8s.io/web/nginx_ingress_requests_per_second | jq
  $K get --raw '/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/services/web/nginx_ingress_requests_per_second?metricLabelSelector=status%3D500' | jq
  $K get --raw /apis/custom.metrics.k8s.io/v1beta2/namespaces/store/services/checkout/istio_requests_per_second | jq
  $K get --raw '/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/pods/*/cpu_usage' | jq
  $K get --raw /apis/custom.metrics.k8s.io/v1beta2/nodes/node-a/kubelet_running_pods | jq
  $K get --raw '/apis/external.metrics.k8s.io/v1beta1/namespaces/default/queue_consumer_lag?labelSelector=name%3Dq1' | jq
  $K get --raw /apis/external.metrics.k8s.io/v1beta1/namespaces/default/queue_messages_ready | jq
  $K top pod -n default
  $K top pod -A
  $K get --raw /apis/metrics.k8s.io/v1beta1/nodes | jq
  curl -k https://127.0.0.1:$ADAPTER_PORT/metrics
  ${SIMULATE[*]}

Press Ctrl-C to stop.
TXT
wait
