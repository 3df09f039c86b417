#!/usr/bin/env bash
# stop.sh (AfterInstall): the legacy script, verbatim; see profile.sh.
# Needs lsof. `lsof -ti tcp:PORT` lists every process with ANY socket on that port (client
# sockets too), and `kill -15` + `sleep 5` never checks that the app exited.

ABSPATH=$(readlink -f $0)
ABSDIR=$(dirname $ABSPATH)
source ${ABSDIR}/profile.sh

IDLE_PORT=$(find_idle_port)

echo "> $IDLE_PORT 에서 구동중인 애플리케이션 pid 확인"
IDLE_PID=$(lsof -ti tcp:${IDLE_PORT})

if [ -z ${IDLE_PID} ]
then
  echo "> 현재 구동중인 애플리케이션이 없으므로 종료하지 않습니다."
else
  echo "> kill -15 $IDLE_PID"
  kill -15 ${IDLE_PID}
  sleep 5
fi
