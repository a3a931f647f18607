#!/usr/bin/env bash
# Two local Docker registries (Debian's docker-registry) for the image tests:
#   plain HTTP          127.0.0.1:5000  no auth
#   TLS + basic auth    127.0.0.1:5443  cert from a self-signed CA, htpasswd user
# State lives in build/registry/{plain,tls}/ (data, config, pid, log) and the
# CA in build/registry/ca/. Idempotent: `start` leaves running registries
# alone, `stop` only stops registries whose pid file names a live process.
#   hack/registry.sh start|stop|status|env
# The test user is dockyard / dockyard-test-password (test-only secret).
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
state=${DOCKYARD_REGISTRY_DIR:-$here/build/registry}
user=dockyard
password=dockyard-test-password

need() { command -v "$1" >/dev/null || { echo "registry.sh: $1 missing (hack/apt-packages.txt: $2)" >&2; exit 1; }; }

make_ca() {
  local ca=$state/ca
  [[ -s $ca/server.crt && -s $ca/trust/ca.crt ]] && return
  mkdir -p "$ca/trust"
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=dockyard test CA" \
    -keyout "$ca/ca.key" -out "$ca/ca.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
    -keyout "$ca/server.key" -out "$ca/server.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >"$ca/ext.cnf"
  openssl x509 -req -in "$ca/server.csr" -CA "$ca/ca.crt" -CAkey "$ca/ca.key" -CAcreateserial \
    -days 3650 -extfile "$ca/ext.cnf" -out "$ca/server.crt" 2>/dev/null
  # A directory holding only the CA, for skopeo's --dest-cert-dir (which
  # would read server.key there as a client key).
  cp "$ca/ca.crt" "$ca/trust/ca.crt"
}

write_config() { # name addr extra-yaml
  local dir=$state/$1
  mkdir -p "$dir/data"
  cat >"$dir/config.yml" <<YAML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $dir/data
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: $2
$3
YAML
}

running() { # name -> 0 if its pid file names a live docker-registry
  local pidf=$state/$1/pid
  [[ -s $pidf ]] && kill -0 "$(cat "$pidf")" 2>/dev/null \
    && grep -q docker-registry "/proc/$(cat "$pidf")/cmdline" 2>/dev/null
}

wait_port() { # url curl-args...
  local url=$1; shift
  for _ in $(seq 100); do
    curl -s -o /dev/null "$@" "$url" && return 0
    sleep 0.1
  done
  return 1
}

start_one() { # name addr url extra-yaml curl-args...
  local name=$1 addr=$2 url=$3 extra=$4; shift 4
  if running "$name"; then return; fi
  write_config "$name" "$addr" "$extra"
  # The registry outlives this script: it must not keep any descriptor the
  # caller had open (a `flock LOCK make test` lock fd held by a leftover
  # registry once kept every later locked run waiting).
  (
    for fd in /proc/self/fd/*; do
      fd=${fd##*/}
      if ((fd > 2)); then eval "exec $fd>&-" 2>/dev/null || true; fi
    done
    exec setsid docker-registry serve "$state/$name/config.yml" >"$state/$name/log" 2>&1 </dev/null
  ) &
  echo $! >"$state/$name/pid"
  wait_port "$url" "$@" || { echo "registry.sh: $name did not come up on $addr; log:" >&2; tail "$state/$name/log" >&2; exit 1; }
}

start() {
  need docker-registry docker-registry; need openssl openssl; need htpasswd apache2-utils; need curl curl
  mkdir -p "$state"
  make_ca
  [[ -s $state/htpasswd ]] || htpasswd -Bbn "$user" "$password" >"$state/htpasswd"
  start_one plain 127.0.0.1:5000 http://127.0.0.1:5000/v2/ ""
  start_one tls 127.0.0.1:5443 https://127.0.0.1:5443/v2/ "  tls:
    certificate: $state/ca/server.crt
    key: $state/ca/server.key
auth:
  htpasswd:
    realm: dockyard-test
    path: $state/htpasswd" --cacert "$state/ca/ca.crt"
}

stop() {
  local name
  for name in plain tls; do
    if running "$name"; then
      local pid; pid=$(cat "$state/$name/pid")
      kill "$pid"
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -f "$state/$name/pid"
  done
}

status() {
  local name rc=0
  for name in plain tls; do
    if running "$name"; then echo "$name: running (pid $(cat "$state/$name/pid"))"; else echo "$name: stopped"; rc=1; fi
  done
  return $rc
}

case ${1:-} in
  start) start ;;
  stop) stop ;;
  status) status ;;
  env) echo "DOCKYARD_REGISTRY_PLAIN=127.0.0.1:5000 DOCKYARD_REGISTRY_TLS=127.0.0.1:5443 DOCKYARD_REGISTRY_CA=$state/ca/ca.crt DOCKYARD_REGISTRY_USER=$user DOCKYARD_REGISTRY_PASSWORD=$password" ;;
  *) echo "usage: $0 start|stop|status|env" >&2; exit 2 ;;
esac
