#!/usr/bin/python3
"""Add COUNT disabled users without passwords to OU=OU (made if missing), straight into sam.ldb:
more objects for the directory sync benchmark.

usage: add_users.py SMB_CONF OU COUNT      (inside the DC namespace; idempotent per name)
"""
import sys
import time

import ldb
from samba.auth import system_session
from samba.param import LoadParm
from samba.samdb import SamDB

conf, ou_name, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
lp = LoadParm()
lp.load(conf)
db = SamDB(url=lp.samdb_url(), session_info=system_session(), lp=lp)
base = str(db.domain_dn())
ou = "OU=%s,%s" % (ou_name, base)
if not db.search(base=base, scope=ldb.SCOPE_SUBTREE, expression="(ou=%s)" % ou_name, attrs=["dn"]):
    db.add({"dn": ou, "objectClass": "organizationalUnit"})
have = {str(m["sAMAccountName"][0]) for m in db.search(base=ou, expression="(objectClass=user)", attrs=["sAMAccountName"])}
started = time.time()
added = 0
db.transaction_start()
for i in range(count):
    name = "%s%06d" % (ou_name.lower()[:6], i)
    if name in have:
        continue
    db.add({"dn": "CN=%s,%s" % (name, ou), "objectClass": "user", "sAMAccountName": name, "userAccountControl": str(0x222)})
    added += 1
    if added % 1000 == 0:
        db.transaction_commit()
        db.transaction_start()
db.transaction_commit()
print("added %d users to %s in %.1f s" % (added, ou, time.time() - started))
