#!/usr/bin/python3
"""Set or clear a userAccountControl flag on a DC account, straight in sam.ldb.

usage: set_uac.py SMB_CONF ACCOUNT on|off [UF_FLAG]     (inside the DC namespace; Debian's python3-samba)

samba-tool has no switch for UF_DONT_REQUIRE_PREAUTH, which AS-REP roasting needs.
Samba's KDC checks the flag on the server entry (krbtgt) too, so the lab sets it on both.
"""
import sys

import samba.dsdb
from samba.auth import system_session
from samba.param import LoadParm
from samba.samdb import SamDB

conf, account, op = sys.argv[1:4]
flag = getattr(samba.dsdb, sys.argv[4] if len(sys.argv) > 4 else "UF_DONT_REQUIRE_PREAUTH")
lp = LoadParm()
lp.load(conf)
db = SamDB(url=lp.samdb_url(), session_info=system_session(), lp=lp)
db.toggle_userAccountFlags("(sAMAccountName=%s)" % account, flag, on=(op == "on"), strict=False)
uac = db.search(expression="(sAMAccountName=%s)" % account, attrs=["userAccountControl"])[0]["userAccountControl"]
print(account, "userAccountControl =", uac)
