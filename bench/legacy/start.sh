#!/usr/bin/env bash
# start.sh (ApplicationStart): the legacy script; see profile.sh. Added environment variables:
#   REPOSITORY  (/home/ec2-user/app/step3)  the app folder; CodeDeploy unpacks the jar to zip/
#   JAVA_OPTS   (empty)  extra JVM options (the benchmark's heap flags and -Ddemo.boot-ms)
#   APP_CONFIG_DIR (/home/ec2-user/app)  where application-oauth.properties and
#               application-real-db.properties are (Spring Boot refuses to start without them)
# The one other change: a real Spring app reads its port from application-$IDLE_PROFILE.properties
# (named by -Dspring.config.location); the stand-in demo app reads -Dserver.port, so the idle
# port is passed that way. Note `cp` writes over the jar the live JVM is running from.

ABSPATH=$(readlink -f $0)
ABSDIR=$(dirname $ABSPATH)
source ${ABSDIR}/profile.sh

REPOSITORY=${REPOSITORY:-/home/ec2-user/app/step3}
PROJECT_NAME=freelec-springboot2-webservice

echo "> Build 파일 복사"
echo "> cp $REPOSITORY/zip/*.jar $REPOSITORY/"

cp $REPOSITORY/zip/*.jar $REPOSITORY/

echo "> 새 어플리케이션 배포"
JAR_NAME=$(ls -tr $REPOSITORY/*.jar | tail -n 1)

echo "> JAR Name: $JAR_NAME"

echo "> $JAR_NAME 에 실행권한 추가"

chmod +x $JAR_NAME

echo "> $JAR_NAME 실행"

IDLE_PROFILE=$(find_idle_profile)
IDLE_PORT=$(find_idle_port)

echo "> $JAR_NAME 를 profile=$IDLE_PROFILE 로 실행합니다."
nohup java ${JAVA_OPTS} -jar \
    -Dspring.config.location=classpath:/application.properties,classpath:/application-$IDLE_PROFILE.properties,${APP_CONFIG_DIR:-/home/ec2-user/app}/application-oauth.properties,${APP_CONFIG_DIR:-/home/ec2-user/app}/application-real-db.properties \
    -Dspring.profiles.active=$IDLE_PROFILE \
    -Dserver.port=$IDLE_PORT \
    $JAR_NAME > $REPOSITORY/nohup.out 2>&1 &
