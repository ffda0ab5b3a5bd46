#!/bin/sh
# docker-compose's Mosquitto (eclipse-mosquitto:2): on first start, creates the dynamic-security
# plugin's state in the data volume with the hub's service account (MQTT_USERNAME /
# MQTT_PASSWORD) as its admin, then runs the image's own entry point. Once the file exists it is
# the broker's: devices' accounts are added and removed at run time by the hub (broker-auth), and
# a later change of MQTT_PASSWORD is not applied here (change it with `mosquitto_ctrl dynsec
# setClientPassword`, or remove the file to start again without any device account).
set -eu
state=/mosquitto/data/dynamic-security.json
if [ ! -f "$state" ]; then
  if [ -z "${MQTT_USERNAME:-}" ] || [ -z "${MQTT_PASSWORD:-}" ]; then
    echo "mosquitto: set MQTT_USERNAME and MQTT_PASSWORD (the hub's service account on the broker) before the first start" >&2
    exit 1
  fi
  mosquitto_ctrl dynsec init "$state" "$MQTT_USERNAME" "$MQTT_PASSWORD" >/dev/null
  echo "mosquitto: created $state with the service account '$MQTT_USERNAME'"
fi
exec /docker-entrypoint.sh /usr/sbin/mosquitto -c /mosquitto/config/mosquitto.conf
