"""Patch: tolerate a KDC reply without 'starttime'.

Samba's KDC omits the OPTIONAL 'starttime' in EncKDCRepPart (Windows always sends
it). impacket's ccache code reads it unconditionally and dies with
'Attempted "__str__" operation on ASN.1 schema object', so getTGT.py (the
overpass-the-hash step) and -k logins crash. We read an absent time as "now".
"""
import datetime

from impacket.krb5 import types

_original_from_asn1 = types.KerberosTime.from_asn1


def _from_asn1(data):
    if hasattr(data, "isValue") and not data.isValue:
        return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None, microsecond=0)
    return _original_from_asn1(data)


def apply():
    types.KerberosTime.from_asn1 = staticmethod(_from_asn1)
