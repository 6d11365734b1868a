#!/usr/bin/env python3
"""LDAP searches over SASL GSS-SPNEGO with NTLM that negotiates signing without sealing.

usage: ldap_ntlm_sign.py DC_IP DOMAIN USER BASE FILTER [FILTER...]   (password in $LDAP_PASSWORD)

The NTLMSSP NEGOTIATE asks for NEGOTIATE_SIGN and not NEGOTIATE_SEAL (impacket's LDAP client
asks for both), as a Windows client asking for integrity only does. The SASL buffers are still
encrypted: an AD LDAP server handles NTLM "LDAP style" (Samba's GENSEC_FEATURE_LDAP_STYLE, after
Windows), treating SIGN as SEAL for NTLM, so a signature-only wrap is refused ("NTLMSSP NTLM2
packet check failed due to invalid signature", tried against Samba 4.17). Unlike Kerberos,
sign-only NTLM leaves no LDAP in clear on the wire. Prints the DNs found, one per line.
"""
import os
import sys

from impacket import ntlm
from impacket.ldap import ldap, ldapasn1


def negotiate_without_seal(*args, **kwargs):
    message = ntlm.getNTLMSSPType1(*args, **kwargs)
    message["flags"] &= ~ntlm.NTLMSSP_NEGOTIATE_SEAL
    return message


def main():
    if len(sys.argv) < 6:
        sys.exit(__doc__)
    dc_ip, domain, user, base = sys.argv[1:5]
    ldap.getNTLMSSPType1 = negotiate_without_seal
    connection = ldap.LDAPConnection(f"ldap://{dc_ip}", base, dc_ip, signing=True)
    connection.login(user, os.environ["LDAP_PASSWORD"], domain)
    for search_filter in sys.argv[5:]:
        entries = connection.search(searchFilter=search_filter, attributes=["sAMAccountName"])
        for entry in entries:
            if isinstance(entry, ldapasn1.SearchResultEntry):
                print(f"{search_filter}\t{entry['objectName']}")
    connection.close()


if __name__ == "__main__":
    main()
