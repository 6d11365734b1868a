#!/usr/bin/env python3
"""Adds enabled user accounts sharing one password (read from stdin, one line) straight into the
DC's database, in one process: seconds where a samba-tool call per account costs more than one
each. The password spray's targets are made this way.

usage: add_users.py SMB_CONF NAME... < password
"""
import sys

from samba.auth import system_session
from samba.param import LoadParm
from samba.samdb import SamDB

conf, names = sys.argv[1], sys.argv[2:]
password = sys.stdin.readline().rstrip("\n")
lp = LoadParm()
lp.load(conf)
db = SamDB(url=lp.samdb_url(), session_info=system_session(), lp=lp)
for name in names:
    db.newuser(name, password)
print(f"{len(names)} users added")
