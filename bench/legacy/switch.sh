#!/usr/bin/env bash
# switch.sh: the legacy script (sourced by health.sh); see profile.sh. The include is rewritten
# in place with tee, with no `nginx -t`, no revert and no check that the reload took effect.
# Added environment variables, defaulting to the original's values:
#   SERVICE_URL_INC  (/etc/nginx/conf.d/service-url.inc)
#   NGINX_RELOAD     (service nginx reload)  e.g. "nginx -p PREFIX -c CONF -s reload"
#   SUDO             (sudo)  set it empty when already root and sudo is not installed

ABSPATH=$(readlink -f $0)
ABSDIR=$(dirname $ABSPATH)
source ${ABSDIR}/profile.sh

function switch_proxy() {
    IDLE_PORT=$(find_idle_port)

    echo "> 전환할 Port: $IDLE_PORT"
    echo "> Port 전환"
    echo "set \$service_url http://127.0.0.1:${IDLE_PORT};" | ${SUDO-sudo} tee ${SERVICE_URL_INC:-/etc/nginx/conf.d/service-url.inc}

    echo "> 엔진엑스 Reload"
    ${SUDO-sudo} ${NGINX_RELOAD:-service nginx reload}
}
