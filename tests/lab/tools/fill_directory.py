#!/usr/bin/python3
"""Fill a Samba AD domain with a realistic directory, straight into sam.ldb (minutes faster than
samba-tool or LDAP adds: one process, one transaction per thousand entries).

usage: fill_directory.py SMB_CONF USERS COMPUTERS GROUPS      (inside the DC namespace)

Makes OU=Staff (USERS users u00000...), OU=Workstations (COMPUTERS computers WS00000$...) and
OU=Teams (GROUPS groups team000... of 50 users each, every tenth team nested in the one before:
nesting ten deep), plus the accounts the directory tests look for: the group IT-Admins nested in
Domain Admins with it_admin in it, and honey_admin (a honeytoken the configuration names).
Accounts are made without passwords and disabled (ACCOUNTDISABLE | PASSWD_NOTREQD), except
it_admin and honey_admin, whose password is given on stdin (one line). Idempotent: a second run
adds nothing.

Resumable: entries go in in order, a thousand per transaction, so a run stopped part way (killed,
or at FILL_DEADLINE, a Unix time in the environment) is gone on with by the next, from what each
OU already holds. Exits 3 when it stopped at the deadline with the directory not yet whole.
"""
import os
import sys
import time

import ldb
from samba.auth import system_session
from samba.param import LoadParm
from samba.samdb import SamDB

conf, users, computers, groups = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
password = sys.stdin.readline().rstrip("\n")
lp = LoadParm()
lp.load(conf)
db = SamDB(url=lp.samdb_url(), session_info=system_session(), lp=lp)
base = str(db.domain_dn())
dns = lp.get("realm").lower()

if db.search(base=base, scope=ldb.SCOPE_SUBTREE, expression="(sAMAccountName=it_admin)", attrs=["dn"]):
    print("already filled")
    sys.exit(0)

started = time.time()
deadline = float(os.environ.get("FILL_DEADLINE", "inf"))


def held(ou):
    """Entries already in OU=ou (creating it if need be): where a stopped run left off."""
    dn = "OU=%s,%s" % (ou, base)
    if not db.search(base=base, scope=ldb.SCOPE_ONELEVEL, expression="(ou=%s)" % ou, attrs=["dn"]):
        db.add({"dn": dn, "objectClass": "organizationalUnit"})
        return 0
    return len(db.search(base=dn, scope=ldb.SCOPE_ONELEVEL, attrs=["dn"]))


def stop_if_late():
    if time.time() > deadline:
        print("stopped at the deadline after %.1f s; run again to go on" % (time.time() - started))
        sys.exit(3)


DISABLED_NO_PASSWORD = 0x0002 | 0x0020
BATCH = 1000


def batched(entries):
    stop_if_late()
    db.transaction_start()
    try:
        for count, entry in enumerate(entries, 1):
            db.add(entry)
            if count % BATCH == 0:
                db.transaction_commit()
                stop_if_late()
                db.transaction_start()
        db.transaction_commit()
    except Exception:
        db.transaction_cancel()
        raise


batched(
    {
        "dn": "CN=u%05d,OU=Staff,%s" % (i, base),
        "objectClass": "user",
        "sAMAccountName": "u%05d" % i,
        "userPrincipalName": "u%05d@%s" % (i, dns),
        "userAccountControl": str(0x0200 | DISABLED_NO_PASSWORD),
    }
    for i in range(held("Staff"), users)
)
batched(
    {
        "dn": "CN=WS%05d,OU=Workstations,%s" % (i, base),
        "objectClass": "computer",
        "sAMAccountName": "WS%05d$" % i,
        "dNSHostName": "ws%05d.%s" % (i, dns),
        "operatingSystem": "Windows 11 Enterprise",
        "operatingSystemVersion": "10.0 (22631)",
        "userAccountControl": str(0x1000 | DISABLED_NO_PASSWORD),
    }
    for i in range(held("Workstations"), computers)
)


def team(i):
    members = ["CN=u%05d,OU=Staff,%s" % (j, base) for j in range(i * 50, min(i * 50 + 50, users))]
    entry = {"dn": "CN=team%03d,OU=Teams,%s" % (i, base), "objectClass": "group", "sAMAccountName": "team%03d" % i}
    if members:
        entry["member"] = members
    return entry


batched(team(i) for i in range(held("Teams"), groups))
stop_if_late()
# Nesting: team N is a member of team N-1 unless N is a multiple of 10.
db.transaction_start()
for i in range(1, groups):
    if i % 10:
        m = ldb.Message()
        m.dn = ldb.Dn(db, "CN=team%03d,OU=Teams,%s" % (i - 1, base))
        m["member"] = ldb.MessageElement("CN=team%03d,OU=Teams,%s" % (i, base), ldb.FLAG_MOD_ADD, "member")
        db.modify(m)
db.transaction_commit()

# IT-Admins inside Domain Admins, it_admin inside IT-Admins; honey_admin alone.
db.newuser("it_admin", password)
db.newuser("honey_admin", password)
db.newgroup("IT-Admins")
db.add_remove_group_members("IT-Admins", ["it_admin"], add_members_operation=True)
db.add_remove_group_members("Domain Admins", ["IT-Admins"], add_members_operation=True)
print(
    "filled %d users, %d computers, %d groups in %.1f s"
    % (users, computers, groups, time.time() - started)
)
