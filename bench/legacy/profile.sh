#!/usr/bin/env bash
# profile.sh: the legacy script nonstop replaces, written out for `make bench` as the seeds
# describe it (shared/reference/legacy-scripts.md; seeds 000, 002, 003; the book-derived scripts
# most of those blogs copy). Only these environment variables were added, each defaulting to the
# original's hard-coded value, so the scripts can run against the benchmark's private nginx:
#   NGINX_URL   (http://localhost)   where `curl /profile` asks the live app through nginx
#   PORT_REAL1  (8081)  PORT_REAL2 (8082)

# 쉬고 있는 profile 찾기: real1이 사용 중이면 real2가 쉬고 있고, 반대면 real1이 쉬고 있음
function find_idle_profile()
{
    RESPONSE_CODE=$(curl -s -o /dev/null -w "%{http_code}" ${NGINX_URL:-http://localhost}/profile)

    if [ ${RESPONSE_CODE} -ge 400 ] # 400 보다 크면 (즉, 40x/50x 에러 모두 포함)
    then
        CURRENT_PROFILE=real2
    else
        CURRENT_PROFILE=$(curl -s ${NGINX_URL:-http://localhost}/profile)
    fi

    if [ ${CURRENT_PROFILE} == real1 ]
    then
      IDLE_PROFILE=real2
    else
      IDLE_PROFILE=real1
    fi

    echo "${IDLE_PROFILE}"
}

# 쉬고 있는 profile의 port 찾기
function find_idle_port()
{
    IDLE_PROFILE=$(find_idle_profile)

    if [ ${IDLE_PROFILE} == real1 ]
    then
      echo "${PORT_REAL1:-8081}"
    else
      echo "${PORT_REAL2:-8082}"
    fi
}
