#!/usr/bin/env bash
# A reduced version of the official postgres image's entrypoint: same variables, same
# first-start behaviour (initdb, POSTGRES_DB, /docker-entrypoint-initdb.d), then exec postgres.
set -Eeo pipefail

log() { echo "entrypoint: $*" >&2; }

# VAR_FILE names a file holding VAR (a Compose or Swarm secret), as in the official image.
# A missing, unreadable or empty file stops the container with one line naming it.
file_env() {
    local var="$1" file_var="${1}_FILE"
    local file="${!file_var:-}"
    if [ -z "$file" ]; then
        return 0
    fi
    if [ -n "${!var:-}" ]; then
        log "both $var and $file_var are set; set only one"
        exit 1
    fi
    if [ ! -e "$file" ]; then
        log "$file_var: $file does not exist"
        exit 1
    fi
    if [ ! -r "$file" ] || [ -d "$file" ]; then
        log "$file_var: cannot read $file"
        exit 1
    fi
    local value
    value="$(<"$file")"
    if [ -z "$value" ]; then
        log "$file_var: $file is empty"
        exit 1
    fi
    export "$var"="$value"
    unset "$file_var"
}

if [ "${1:0:1}" = '-' ]; then
    set -- postgres "$@"
fi
if [ "$1" != 'postgres' ]; then
    exec "$@"
fi

if [ "$(id -u)" = '0' ]; then
    mkdir -p "$PGDATA" /var/run/postgresql
    chown postgres:postgres "$PGDATA" /var/run/postgresql
    chmod 700 "$PGDATA"
    exec setpriv --reuid=postgres --regid=postgres --init-groups "${BASH_SOURCE[0]}" "$@"
fi

# Checked on every start, not only the first: a broken secret shows now, not at the next initdb.
for var in POSTGRES_USER POSTGRES_PASSWORD POSTGRES_DB; do
    file_env "$var"
done

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    : "${POSTGRES_USER:=postgres}"
    : "${POSTGRES_DB:=$POSTGRES_USER}"
    : "${POSTGRES_HOST_AUTH_METHOD:=scram-sha-256}"
    if [ -z "${POSTGRES_PASSWORD:-}" ] && [ "$POSTGRES_HOST_AUTH_METHOD" != 'trust' ]; then
        log "Database is uninitialized and superuser password is not specified."
        log "You must specify POSTGRES_PASSWORD to a non-empty value for the superuser."
        exit 1
    fi

    # shellcheck disable=SC2086  # POSTGRES_INITDB_ARGS is a list of arguments on purpose
    initdb --username="$POSTGRES_USER" --pwfile=<(printf '%s\n' "${POSTGRES_PASSWORD:-}") \
        --auth-local=trust --auth-host=trust ${POSTGRES_INITDB_ARGS:-} >/dev/null
    printf "\nlisten_addresses = '*'\n" >>"$PGDATA/postgresql.conf"
    printf 'host all all all %s\n' "$POSTGRES_HOST_AUTH_METHOD" >>"$PGDATA/pg_hba.conf"

    # Private server on the unix socket only, while the database and init scripts are set up.
    pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
    psql=(psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --no-psqlrc)
    if [ "$POSTGRES_DB" != 'postgres' ]; then
        "${psql[@]}" --dbname postgres --set db="$POSTGRES_DB" <<<'CREATE DATABASE :"db";' >/dev/null
    fi
    for f in /docker-entrypoint-initdb.d/*; do
        case "$f" in
            *.sh)
                log "running $f"
                # The init scripts are the user's, mounted at run time: nothing to follow when linting.
                # shellcheck source=/dev/null
                if [ -x "$f" ]; then "$f"; else . "$f"; fi ;;
            *.sql) log "running $f"; "${psql[@]}" --dbname "$POSTGRES_DB" -f "$f" ;;
            *.sql.gz) log "running $f"; gunzip -c "$f" | "${psql[@]}" --dbname "$POSTGRES_DB" ;;
            *) [ -e "$f" ] && log "ignoring $f" ;;
        esac
    done
    pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
    log "PostgreSQL init process complete; ready for start up."
fi

exec "$@"
