#!/usr/bin/env python3
"""Run an impacket example script with SMB 2.1 as its preferred dialect, patches applied.

usage: smb21.py SCRIPT.py [ARGS...]

Over SMB 3.x impacket encrypts SAMR and LSA secrets with a session key Samba 4.17 does not use
for them: addcomputer.py's SamrSetInformationUser2 (the new account's password) is answered
STATUS_WRONG_PASSWORD, and LsarQuerySecret's values do not decrypt. Over SMB 2.1 both sides
use the SMB session key, and both work. Only the scripts that need it run this way: the other
scenarios keep impacket's SMB 3.1.1.
"""
import os
import runpy
import sys

from impacket import smb3structs, smbconnection

_init = smbconnection.SMBConnection.__init__


def _init_smb21(self, *args, **kwargs):
    if len(args) < 5 and kwargs.get("preferredDialect") is None:
        kwargs["preferredDialect"] = smb3structs.SMB2_DIALECT_21
    _init(self, *args, **kwargs)


smbconnection.SMBConnection.__init__ = _init_smb21

if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    sys.argv = [os.path.join(os.path.dirname(os.path.abspath(__file__)), "impacket_samba.py")] + sys.argv[1:]
    runpy.run_path(sys.argv[0], run_name="__main__")
