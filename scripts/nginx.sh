#!/usr/bin/env bash
# nginx in front of a local glassbox, as the Paxos seed ran it: TLS with glassbox's certificate
# on port 5000, proxying to the replicas in GLASSBOX_UPSTREAMS. Renders the shipped template
# into target/nginx/ and runs nginx in the foreground until Ctrl-C.
#
# Environment (defaults in brackets):
#   NGINX_LISTEN [127.0.0.1:5000]  NGINX_STATUS_LISTEN [127.0.0.1:8080]
#   NGINX_ACCESS_LOG [/dev/stdout] GLASSBOX_CERTS_DIR [./certs]  GLASSBOX_TLS_NAME [localhost]
#   GLASSBOX_UPSTREAMS ["server 127.0.0.1:8443;"]: one `server host:port;` per replica
#   NGINX_UPSTREAM_KEEPALIVE_TIMEOUT [20s]: below glassbox's --idle-timeout
# With NGINX_RENDER_ONLY=1 it only writes target/nginx/ and prints where.
set -euo pipefail
cd "$(dirname "$0")/.."

nginx=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$nginx" ] || { echo "nginx is needed: apt-get install nginx" >&2; exit 1; }
[ -f certs/server.crt ] || cargo run --release -q -p glassbox -- certs >/dev/null

export NGINX_LISTEN=${NGINX_LISTEN:-127.0.0.1:5000}
export NGINX_STATUS_LISTEN=${NGINX_STATUS_LISTEN:-127.0.0.1:8080}
export NGINX_ACCESS_LOG=${NGINX_ACCESS_LOG:-/dev/stdout}
export GLASSBOX_CERTS_DIR=${GLASSBOX_CERTS_DIR:-$PWD/certs}
export GLASSBOX_TLS_NAME=${GLASSBOX_TLS_NAME:-localhost}
export GLASSBOX_UPSTREAMS=${GLASSBOX_UPSTREAMS:-server 127.0.0.1:8443;}
export NGINX_UPSTREAM_KEEPALIVE_TIMEOUT=${NGINX_UPSTREAM_KEEPALIVE_TIMEOUT:-20s}
# HTTP/2 is a listen parameter before nginx 1.25.1 and a directive from it.
version=$("$nginx" -v 2>&1 | sed -n 's|.*nginx/\([0-9.]*\).*|\1|p')
if printf '%s\n1.25.1\n' "$version" | sort -V -C; then
  [ "$version" = 1.25.1 ] && { NGINX_LISTEN_HTTP2=""; NGINX_HTTP2="http2 on;"; } \
    || { NGINX_LISTEN_HTTP2=" http2"; NGINX_HTTP2=""; }
else
  NGINX_LISTEN_HTTP2=""; NGINX_HTTP2="http2 on;"
fi
export NGINX_LISTEN_HTTP2 NGINX_HTTP2

out=$PWD/target/nginx
mkdir -p "$out/conf.d"
cp nginx/nginx.conf "$out/nginx.conf"
# envsubst's rendering, for exactly the template's variables, in plain bash.
conf=$(<nginx/templates/glassbox.conf.template)
for var in NGINX_LISTEN NGINX_STATUS_LISTEN NGINX_ACCESS_LOG GLASSBOX_CERTS_DIR GLASSBOX_TLS_NAME \
  GLASSBOX_UPSTREAMS NGINX_UPSTREAM_KEEPALIVE_TIMEOUT NGINX_LISTEN_HTTP2 NGINX_HTTP2; do
  conf=${conf//"\${$var}"/${!var}}
done
printf '%s\n' "$conf" >"$out/conf.d/glassbox.conf"

if [ "${NGINX_RENDER_ONLY:-}" = 1 ]; then
  echo "rendered $out/nginx.conf and $out/conf.d/glassbox.conf"
  exit 0
fi
echo "nginx on https://localhost:${NGINX_LISTEN##*:} -> $GLASSBOX_UPSTREAMS (Ctrl-C stops it)"
exec "$nginx" -p "$out/" -c nginx.conf -e stderr -g "daemon off; pid $out/nginx.pid;"
