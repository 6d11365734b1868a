#!/usr/bin/python3
"""Set accountExpires of the named users to VALUE (a FILETIME), straight in sam.ldb: a change
each the next incremental directory sync must carry (the benchmark's).

usage: touch_users.py SMB_CONF VALUE NAME...      (inside the DC namespace)
"""
import sys

import ldb
from samba.auth import system_session
from samba.param import LoadParm
from samba.samdb import SamDB

conf, value, names = sys.argv[1], sys.argv[2], sys.argv[3:]
lp = LoadParm()
lp.load(conf)
db = SamDB(url=lp.samdb_url(), session_info=system_session(), lp=lp)
for name in names:
    found = db.search(expression="(sAMAccountName=%s)" % name, attrs=["dn"])
    if len(found) != 1:
        sys.exit("no user %s" % name)
    message = ldb.Message()
    message.dn = found[0].dn
    message["accountExpires"] = ldb.MessageElement(value, ldb.FLAG_MOD_REPLACE, "accountExpires")
    db.modify(message)
