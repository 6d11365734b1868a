#!/usr/bin/env python3
"""Reads the domain's DPAPI backup key secrets through LSARPC the way mimikatz's
lsadump::backupkeys does: LsarOpenPolicy2, then LsarOpenSecret and LsarQuerySecret of
G$BCKUPKEY_PREFERRED, G$BCKUPKEY_P and the G$BCKUPKEY_{GUID} the preferred one names.

A fresh Samba domain has no backup keys until someone asks for them, so first a BackupKey
Remote Protocol call (BKRP BackuprKey, BACKUPKEY_RETRIEVE_BACKUP_KEY_GUID: the domain's public
certificate, what a client fetches before protecting a master key) over \\pipe\\protected_storage,
with packet privacy as Windows requires, makes Samba create them.

usage: lsa_backupkey.py DOMAIN USER DC_IP      (password in $LSA_PASSWORD)

impacket's `dpapi.py backupkeys` asks with LsarRetrievePrivateData instead, which Samba's LSA
server does not implement (nca_s_op_rng_error). Over \\pipe\\lsarpc, SMB without encryption and
the RPC without authentication, as dpapi.py does: the secret names are in clear, the secrets are
encrypted with the SMB session key. Prints each secret's name and length, never its value.
"""
import os
import sys

from impacket.dcerpc.v5 import bkrp, lsad, transport
from impacket.dcerpc.v5.rpcrt import RPC_C_AUTHN_LEVEL_PKT_PRIVACY
from impacket.smbconnection import SMB2_DIALECT_21, SMBConnection
from impacket.uuid import bin_to_string
from impacket.dcerpc.v5.dtypes import MAXIMUM_ALLOWED
from impacket import crypto


def query(dce, session_key, policy, name):
    opened = lsad.hLsarOpenSecret(dce, policy, name, MAXIMUM_ALLOWED)
    answer = lsad.hLsarQuerySecret(dce, opened["SecretHandle"])
    secret = crypto.decryptSecret(session_key, b"".join(answer["EncryptedCurrentValue"]["Buffer"]))
    lsad.hLsarClose(dce, opened["SecretHandle"])
    print(f"{name}: {len(secret)} bytes")
    return secret


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    domain, user, dc_ip = sys.argv[1:]
    password = os.environ["LSA_PASSWORD"]
    rpc = transport.DCERPCTransportFactory(rf"ncacn_np:{dc_ip}[\pipe\protected_storage]")
    rpc.set_credentials(user, password, domain)
    dce = rpc.get_dce_rpc()
    dce.set_auth_level(RPC_C_AUTHN_LEVEL_PKT_PRIVACY)
    dce.connect()
    dce.bind(bkrp.MSRPC_UUID_BKRP)
    certificate = bkrp.hBackuprKey(dce, bkrp.BACKUPKEY_RETRIEVE_BACKUP_KEY_GUID, b"\0")
    print(f"BackuprKey RETRIEVE_BACKUP_KEY: certificate of {len(certificate['ppDataOut'])} bytes")
    dce.disconnect()
    # SMB 2.1: impacket has the session key LSA encrypts secrets with only before SMB 3.
    connection = SMBConnection(dc_ip, dc_ip, preferredDialect=SMB2_DIALECT_21)
    connection.login(user, password, domain)
    rpc = transport.DCERPCTransportFactory(r"ncacn_np:445[\pipe\lsarpc]")
    rpc.set_smb_connection(connection)
    dce = rpc.get_dce_rpc()
    dce.connect()
    dce.bind(lsad.MSRPC_UUID_LSAD)
    policy = lsad.hLsarOpenPolicy2(dce, lsad.POLICY_GET_PRIVATE_INFORMATION)["PolicyHandle"]
    session_key = connection.getSessionKey()
    # The legacy key's pointer (G$BCKUPKEY_P) exists only once a legacy client asked for it:
    # Samba answers STATUS_OBJECT_NAME_NOT_FOUND, Windows has both.
    for name in ("G$BCKUPKEY_PREFERRED", "G$BCKUPKEY_P"):
        try:
            guid = bin_to_string(query(dce, session_key, policy, name)[:16])
        except lsad.DCERPCSessionError as error:
            print(f"{name}: {error}")
            continue
        query(dce, session_key, policy, f"G$BCKUPKEY_{guid}")
    dce.disconnect()


if __name__ == "__main__":
    main()
