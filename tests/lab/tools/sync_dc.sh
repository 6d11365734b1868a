#!/usr/bin/env bash
# A Samba AD DC of its own for the directory sync tests: one network namespace, one address,
# its own realm, so it runs beside the lab without touching it.
#
#   sync_dc.sh up        provision (once, kept in $STATE), fill and start; prints nothing on success
#                        (DCWSYNC_FILL_MINUTES bounds the fill: a later `up` goes on with it)
#   sync_dc.sh exec CMD  runs CMD in the DC's namespace with its config (samba-tool ... $CONF)
#   sync_dc.sh down      stops Samba and removes the namespace (the provision stays)
#
# Names: namespace dcwsync-dc, address 10.97.0.1 on a dummy-free veth-less namespace (the tests
# connect from inside it), realm SYNC.EXAMPLE, DC dc1.sync.example, state in /tmp/dcwsync.
set -euo pipefail

readonly HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly STATE=${DCWSYNC_DIR:-/tmp/dcwsync}
readonly NS=${DCWSYNC_NS:-dcwsync-dc}
readonly IP=${DCWSYNC_IP:-10.97.0.1}
readonly REALM=SYNC.EXAMPLE DOMAIN=SYNC DNSDOMAIN=sync.example DC_NAME=dc1
readonly ADMIN_PW='Adm1n!Passw0rd'
readonly DC=$STATE/dc CONF=$STATE/dc/etc/smb.conf
# Directory size the first `up` fills (USERS COMPUTERS GROUPS): small enough for the default
# test run on a fresh machine (about a minute); the benchmark asks for more.
readonly FILL=${DCWSYNC_FILL:-"1000 200 30"}

log() { printf 'sync_dc: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

in_dc() {
    ip netns exec "$NS" unshare -m --propagation private bash -c '
        mount --bind "$0/resolv.conf" /etc/resolv.conf && mount --bind "$0/hosts" /etc/hosts &&
        mount --bind "$0/run" /run/samba && export KRB5_CONFIG="$0/krb5.conf" && eval "$1"' "$DC" "$*"
}

samba_pid() {
    local pid
    pid=$(cat "$DC/run/samba.pid" 2>/dev/null) || return 1
    kill -0 "$pid" 2>/dev/null && echo "$pid"
}

listening() { ip netns exec "$NS" ss -Hltn "sport = :$1" | grep -q "$IP:$1"; }

network_up() {
    ip netns list | grep -qw "^$NS" || ip netns add "$NS"
    ip -n "$NS" link set lo up
    ip -n "$NS" link show sync0 >/dev/null 2>&1 || ip -n "$NS" link add sync0 type dummy 2>/dev/null ||
        ip -n "$NS" link add sync0 type veth peer sync1
    ip -n "$NS" addr replace "$IP/24" dev sync0
    ip -n "$NS" link set sync0 up
}

write_configs() {
    mkdir -p "$DC/run" "$DC/log"
    [ -d /run/samba ] || mkdir /run/samba
    printf 'nameserver %s\nsearch %s\n' "$IP" $DNSDOMAIN >"$DC/resolv.conf"
    printf '127.0.0.1 localhost\n%s %s.%s %s\n' "$IP" $DC_NAME $DNSDOMAIN $DC_NAME >"$DC/hosts"
    printf '[libdefaults]\n\tdefault_realm = %s\n\tdns_lookup_kdc = true\n[kdc]\n\trequire-preauth = false\n' \
        $REALM >"$DC/krb5.conf"
}

provision() {
    [ -f "$DC/.provisioned" ] && return 0
    log "provisioning $REALM in $DC"
    : >"$DC/empty.conf"
    in_dc "samba-tool domain provision --configfile=$DC/empty.conf --targetdir=$DC \
        --realm=$REALM --domain=$DOMAIN --server-role=dc --dns-backend=SAMBA_INTERNAL \
        --host-name=$DC_NAME --host-ip=$IP --adminpass='$ADMIN_PW' \
        --option='interfaces = lo sync0' --option='bind interfaces only = yes' \
        --option='pid directory = $DC/run' --option='ncalrpc dir = $DC/run/ncalrpc' \
        --option='winbindd socket directory = $DC/run/winbindd' \
        --option='ntp signd socket directory = $DC/run/ntp_signd' \
        --option='log file = $DC/log/samba.log' --option='load printers = no' \
        --option='printing = bsd' --option='printcap name = /dev/null' --option='disable spoolss = yes'" \
        >"$DC/provision.log" 2>&1 || { tail -20 "$DC/provision.log" >&2; die "provisioning failed"; }
    sed -i '/dns forwarder/d' "$CONF"
    # Only the services the tests use.
    sed -i '/^\[global\]/a\	server services = ldap, kdc, dns' "$CONF"
    touch "$DC/.provisioned"
}

configure() {
    [ -f "$DC/.configured" ] && return 0
    local started=$SECONDS rc=0
    if [ ! -f "$DC/.accounts" ]; then
        in_dc "set -e
            samba-tool domain passwordsettings set --max-pwd-age=0 --configfile=$CONF >/dev/null
            samba-tool user add alice 'Alice!Passw0rd1' --configfile=$CONF
            samba-tool user add bob 'Bob!Passw0rd1' --configfile=$CONF
            samba-tool user add svc_sql 'Svc!Sql2024x' --configfile=$CONF
            samba-tool spn add MSSQLSvc/sql01.$DNSDOMAIN:1433 svc_sql --configfile=$CONF
            /usr/bin/python3 $HERE/set_uac.py $CONF bob on" \
            >"$DC/configure.log" 2>&1 || { tail -20 "$DC/configure.log" >&2; die "configuring failed"; }
        touch "$DC/.accounts"
    fi
    # A fill bounded in time (DCWSYNC_FILL_MINUTES) may stop part way; the next `up` goes on.
    local deadline=inf
    [ -n "${DCWSYNC_FILL_MINUTES:-}" ] && deadline=$(($(date +%s) + 60 * DCWSYNC_FILL_MINUTES))
    log "fill ($FILL)"
    in_dc "echo 'It!Adm1nPassw0rd' | FILL_DEADLINE=$deadline /usr/bin/python3 $HERE/fill_directory.py $CONF $FILL" \
        >>"$DC/configure.log" 2>&1 || rc=$?
    case $rc in
    0) touch "$DC/.configured" ;;
    3) log "the fill stopped at its deadline: the DC holds part of it (up again to go on)" ;;
    *) tail -20 "$DC/configure.log" >&2; die "filling failed" ;;
    esac
    log "configured in $((SECONDS - started)) s: $(tail -1 "$DC/configure.log")"
}

tls_certs() {
    [ -f "$DC/tls/cert.pem" ] && return 0
    "$HERE/dc_tls.sh" "$DC/tls" "$CONF" $DC_NAME.$DNSDOMAIN $DNSDOMAIN "$IP"
    if pid=$(samba_pid); then kill "$pid"; sleep 2; fi
}

samba_start() {
    samba_pid >/dev/null && return 0
    in_dc "samba -s $CONF -D"
    local tries
    for tries in $(seq 1 120); do
        if listening 636 && listening 389; then return 0; fi
        sleep 0.5
    done
    tail -30 "$DC/log/samba.log" >&2
    die "samba did not come up"
}

case "${1:-}" in
up)
    network_up
    write_configs
    provision
    configure
    tls_certs
    samba_start
    ;;
exec)
    shift
    in_dc "$*"
    ;;
down)
    if pid=$(samba_pid); then kill "$pid"; fi
    for pid in $(ip netns pids "$NS" 2>/dev/null); do kill "$pid" 2>/dev/null || true; done
    sleep 1
    ip netns list | grep -qw "^$NS" && ip netns del "$NS"
    ;;
*)
    sed -n '2,12p' "$0" >&2
    exit 2
    ;;
esac
