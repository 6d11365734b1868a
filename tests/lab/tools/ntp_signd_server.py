#!/usr/bin/env python3
"""The DC's MS-SNTP server: answers NTP client requests on UDP 123 with replies Samba signs.

usage: ntp_signd_server.py ADDRESS SIGND_SOCKET

A Windows DC's time service signs its answers to a domain member with the member's computer
account password (MS-SNTP). Samba leaves the time service to ntpd or chrony and signs for them
through its ntp_signd socket ("ntp signd socket directory"); this is a minimal such time server,
so that the lab's DC answers as a Windows DC does, Timeroasting included. A request that carries
a key identifier (68 bytes: NTP header, RID, zero checksum) is passed to ntp_signd with that key
id; Samba answers with the reply signed by the account's key, or a failure (no such RID, not a
computer account), in which case nothing is sent back, as Windows does. Requests without one are
answered unsigned. Runs until killed; the lab's `down` ends it with the namespace.
"""
import socket
import struct
import sys
import time

NTP_EPOCH_OFFSET = 2208988800
SIGN_TO_CLIENT = 0
SIGNING_SUCCESS = 3


def ntp_time(now):
    seconds = int(now) + NTP_EPOCH_OFFSET
    fraction = int((now % 1) * (1 << 32))
    return struct.pack(">II", seconds, fraction)


def reply_header(request, received):
    """A server (mode 4) NTPv3 header answering `request`: stratum 1, reference LOCL."""
    version = (request[0] >> 3) & 0x7
    flags = (0 << 6) | (version << 3) | 4
    return (
        struct.pack(">BBbb", flags, 1, request[2], -20)
        + struct.pack(">II", 0, 0)  # root delay, root dispersion
        + b"LOCL"
        + ntp_time(received)  # reference time
        + request[40:48]  # originate: the client's transmit time
        + ntp_time(received)
        + ntp_time(time.time())
    )


def sign(socket_path, packet_id, key_id, packet):
    """Samba's signature of `packet` for `key_id` (ntp_signd.idl), or None if it refuses."""
    # Big-endian NDR, but for the key id, which stays as the client sent it (little-endian).
    body = struct.pack(">IIHH", 0, SIGN_TO_CLIENT, packet_id, 0) + struct.pack("<I", key_id) + packet
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as signd:
        signd.settimeout(5)
        signd.connect(socket_path)
        signd.sendall(struct.pack(">I", len(body)) + body)
        length = struct.unpack(">I", receive(signd, 4))[0]
        reply = receive(signd, length)
    _version, op, _packet_id = struct.unpack(">III", reply[:12])
    return reply[12:] if op == SIGNING_SUCCESS else None


def receive(sock, count):
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise ConnectionError("ntp_signd closed the connection")
        data += chunk
    return data


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    address, socket_path = sys.argv[1:]
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind((address, 123))
    packet_id = 0
    while True:
        request, client = server.recvfrom(512)
        received = time.time()
        if len(request) < 48:
            continue
        header = reply_header(request, received)
        if len(request) == 68:
            packet_id = (packet_id + 1) & 0xFFFF
            key_id = struct.unpack("<I", request[48:52])[0]
            try:
                signed = sign(socket_path, packet_id, key_id, header)
            except OSError as error:
                print(f"ntp_signd: {error}", file=sys.stderr, flush=True)
                continue
            if signed is not None:
                server.sendto(signed, client)
        else:
            server.sendto(header, client)


if __name__ == "__main__":
    main()
