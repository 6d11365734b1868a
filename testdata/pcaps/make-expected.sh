#!/bin/bash
# Regenerates expected/*.tsv: what each bundled capture holds, frame by frame, as tshark (not
# dcwatch) decodes it. The replay tests compare dcwatch's JSON lines against these files.
#
# Columns: time in microseconds since the epoch, frame length, captured length, source and
# destination ("ip:port", "[ipv6]:port", or the bare address when the packet carries no TCP or
# UDP header of its own), transport (tcp, udp, or - for other IP protocols). A frame tshark does
# not see as IPv4 or IPv6 is written as "non-ip". tshark's IP defragmentation is off: dcwatch
# replays frames as they are.
#
# Needs tshark. Run from anywhere: testdata/pcaps/make-expected.sh
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p expected
tail -n +2 MANIFEST.tsv | cut -f1 | while read -r capture; do
    out="expected/$(echo "$capture" | tr '/' '_').tsv"
    tshark -r "$capture" -o ip.defragment:FALSE -o ipv6.defragment:FALSE \
        -T fields -E separator=/t -E occurrence=f \
        -e frame.time_epoch -e frame.len -e frame.cap_len -e frame.protocols \
        -e ip.src -e ip.dst -e ipv6.src -e ipv6.dst \
        -e tcp.srcport -e tcp.dstport -e udp.srcport -e udp.dstport |
    awk -F'\t' 'BEGIN { OFS = "\t" }
    {
        split($1, t, "."); micros = t[1] substr(t[2] "000000", 1, 6)
        n = split($4, layers, ":"); ip = ""; transport = "-"
        for (i = 1; i <= n; i++) {
            if (ip == "" && (layers[i] == "ip" || layers[i] == "ipv6")) ip = layers[i]
            if (ip != "" && (layers[i] == "tcp" || layers[i] == "udp")) { transport = layers[i]; break }
            if (ip != "" && (layers[i] == "icmp" || layers[i] == "icmpv6")) break
        }
        if (ip == "") { print micros, $2, $3, "non-ip"; next }
        src = (ip == "ip") ? $5 : $7; dst = (ip == "ip") ? $6 : $8
        if (transport != "-") {
            sport = (transport == "tcp") ? $9 : $11; dport = (transport == "tcp") ? $10 : $12
            if (ip == "ipv6") { src = "[" src "]"; dst = "[" dst "]" }
            src = src ":" sport; dst = dst ":" dport
        }
        print micros, $2, $3, src, dst, transport
    }' >"$out"
    echo "$out: $(wc -l <"$out") frames"
done
