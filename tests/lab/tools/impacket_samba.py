#!/usr/bin/env python3
"""Run an impacket example script against Samba AD, with the compatibility patches applied.

usage: impacket_samba.py SCRIPT.py [ARGS...]     (the lab's client namespace has it as $IMP)

The patches, one module each, say what they fix:
  samba_tgs_req     TGS-REQ authenticator checksum, service name form, KDC options (kerberoasting, -k)
  samba_starttime   KDC replies without 'starttime' (getTGT.py, overpass-the-hash)
  samba_drs_prefix  DsGetNCChanges prefix table schemaInfo entry (secretsdump DCSync)
"""
import os
import runpy
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import samba_drs_prefix  # noqa: E402
import samba_starttime  # noqa: E402
import samba_tgs_req  # noqa: E402

for patch in (samba_tgs_req, samba_starttime, samba_drs_prefix):
    patch.apply()

if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    script = shutil.which(sys.argv[1]) or sys.argv[1]
    sys.argv = [script] + sys.argv[2:]
    runpy.run_path(script, run_name="__main__")
