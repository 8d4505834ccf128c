#!/usr/bin/env bash
# Makes sure the services the tests talk to are up: PostgreSQL (127.0.0.1:5432, trust auth,
# database `test`), MariaDB (127.0.0.1:3306, user root without a password from 127.0.0.1 only,
# database `test`) and Redis (127.0.0.1:6379). Starts them where they are installed but stopped;
# installs them from Debian's packages where they are missing. Safe to run again.
set -euo pipefail

pg_up() { pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; }
redis_up() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }
# MariaDB answering on its local socket (as the OS root user: Debian's root@localhost
# authenticates by socket) and over TCP as the tests connect.
maria_socket_up() { mariadb-admin --protocol=socket ping >/dev/null 2>&1; }
maria_tcp_up() { mariadb --protocol=tcp -h 127.0.0.1 -P 3306 -u root -e 'select 1' >/dev/null 2>&1; }

if ! command -v pg_ctlcluster >/dev/null 2>&1 || ! command -v redis-server >/dev/null 2>&1 \
  || ! [ -x /usr/sbin/mariadbd ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql redis-server mariadb-server \
    >/dev/null
fi

if ! pg_up; then
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  for _ in $(seq 1 30); do pg_up && break; sleep 1; done
fi
pg_up || { echo "PostgreSQL is not reachable on 127.0.0.1:5432" >&2; exit 1; }
# Trust auth and the `test` database are what the tests expect.
if ! psql -h 127.0.0.1 -U postgres -d test -c 'select 1' >/dev/null 2>&1; then
  su postgres -c "psql -c 'create database test'" >/dev/null 2>&1 || true
fi
psql -h 127.0.0.1 -U postgres -d test -c 'select 1' >/dev/null

if ! maria_tcp_up; then
  if ! maria_socket_up; then
    /etc/init.d/mariadb start >/dev/null 2>&1 || service mariadb start >/dev/null 2>&1 || true
    for _ in $(seq 1 30); do maria_socket_up && break; sleep 1; done
  fi
  maria_socket_up || { echo "MariaDB did not start" >&2; exit 1; }
  # The tests connect as root over TCP without a password; allow that from 127.0.0.1 only.
  mariadb --protocol=socket -u root -e "CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' \
    IDENTIFIED BY ''; GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;"
fi
maria_tcp_up || { echo "MariaDB is not reachable on 127.0.0.1:3306" >&2; exit 1; }
mariadb --protocol=tcp -h 127.0.0.1 -P 3306 -u root -e 'CREATE DATABASE IF NOT EXISTS test'

if ! redis_up; then
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  for _ in $(seq 1 30); do redis_up && break; sleep 0.5; done
fi
redis_up || { echo "Redis is not reachable on 127.0.0.1:6379" >&2; exit 1; }
echo "services: postgresql, mariadb and redis are up"
