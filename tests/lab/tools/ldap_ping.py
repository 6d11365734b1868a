#!/usr/bin/env python3
"""Account enumeration through LDAP pings: a NETLOGON search with a `User=` guess per name, over
CLDAP (UDP 389) and over LDAP (TCP 389, one anonymous connection), as DsGetDcName does and as
user-enumeration tools abuse it (no credentials, no logon events on the DC).

usage: ldap_ping.py DC_IP DNS_DOMAIN NAME [NAME...]

The filter is (&(DnsDomain=DNS_DOMAIN)(NtVer=\\06\\00\\00\\00)(AAC=\\10\\00\\00\\00)(User=NAME)) on
the rootDSE, attribute Netlogon. The answer's opcode says whether the account exists:
LOGON_SAM_LOGON_RESPONSE_EX (23) when it does, LOGON_SAM_USER_UNKNOWN_EX (25) when it does not
(MS-ADTS 6.3.3.2). Prints one line per name and transport with that opcode.
"""
import socket
import struct
import sys

OPCODES = {23: "LOGON_SAM_LOGON_RESPONSE_EX (exists)", 25: "LOGON_SAM_USER_UNKNOWN_EX (unknown)"}


def tlv(tag, value):
    if len(value) < 0x80:
        return bytes([tag, len(value)]) + value
    length = len(value).to_bytes((len(value).bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(length)]) + length + value


def equality(attribute, value):
    return tlv(0xA3, tlv(0x04, attribute.encode()) + tlv(0x04, value))


def ping(message_id, dns_domain, user):
    search_filter = tlv(
        0xA0,
        equality("DnsDomain", dns_domain.encode())
        + equality("NtVer", b"\x06\x00\x00\x00")
        + equality("AAC", b"\x10\x00\x00\x00")  # USER_NORMAL_ACCOUNT (ACB bits, MS-SAMR 2.2.1.12)
        + equality("User", user.encode()),
    )
    request = (
        tlv(0x04, b"")  # the rootDSE
        + tlv(0x0A, b"\x00")  # base object
        + tlv(0x0A, b"\x00")  # never dereference
        + tlv(0x02, b"\x00")
        + tlv(0x02, b"\x00")
        + tlv(0x01, b"\x00")
        + search_filter
        + tlv(0x30, tlv(0x04, b"Netlogon"))
    )
    return tlv(0x30, tlv(0x02, bytes([message_id])) + tlv(0x63, request))


def opcode(answer):
    """The NETLOGON response's opcode: the first two bytes of the Netlogon value."""
    at = answer.lower().find(b"netlogon")
    if at < 0:
        return "no Netlogon attribute"
    rest = answer[at + len("netlogon") :]
    # SET OF { OCTET STRING value }: 0x31 LEN 0x04 LEN value (short or long lengths).
    position = 0
    for expected in (0x31, 0x04):
        if rest[position] != expected:
            return "unexpected answer"
        length = rest[position + 1]
        position += 2 + (length & 0x7F if length & 0x80 else 0)
    code = struct.unpack("<H", rest[position : position + 2])[0]
    return OPCODES.get(code, f"opcode {code}")


def receive_message(sock):
    """One LDAP message from a TCP stream."""
    head = sock.recv(2)
    length = head[1]
    extra = b""
    if length & 0x80:
        extra = sock.recv(length & 0x7F)
        length = int.from_bytes(extra, "big")
    body = b""
    while len(body) < length:
        body += sock.recv(length - len(body))
    return head + extra + body


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    dc_ip, dns_domain, names = sys.argv[1], sys.argv[2], sys.argv[3:]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.settimeout(2)
        for number, name in enumerate(names, 1):
            udp.sendto(ping(number, dns_domain, name), (dc_ip, 389))
            print(f"cldap {name}: {opcode(udp.recvfrom(4096)[0])}")
    with socket.create_connection((dc_ip, 389), timeout=5) as tcp:
        for number, name in enumerate(names, 1):
            tcp.sendall(ping(number, dns_domain, name))
            entry = receive_message(tcp)
            receive_message(tcp)  # searchResDone
            print(f"ldap {name}: {opcode(entry)}")
        tcp.sendall(tlv(0x30, tlv(0x02, bytes([len(names) + 1])) + b"\x42\x00"))  # unbind


if __name__ == "__main__":
    main()
