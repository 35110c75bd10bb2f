import PacketWire

/// Address and port rewriting with incremental checksum updates (the kernel's `nf_nat_ipv4_manip_pkt`).
enum NAT {
    /// Rewrites the destination (DNAT, client to pod).
    static func rewriteDestination(_ ip: IPv4Packet, _ transport: TransportHeader, address: IPv4Address,
                                   port: UInt16)
    {
        let old = ip.destination
        if old != address {
            ip.destination = address
            transport.addressChanged(from: old, to: address)
        }
        if transport.destinationPort != port { transport.setDestinationPort(port) }
    }

    /// Rewrites the source (reverse NAT, pod to client).
    static func rewriteSource(_ ip: IPv4Packet, _ transport: TransportHeader, address: IPv4Address, port: UInt16) {
        let old = ip.source
        if old != address {
            ip.source = address
            transport.addressChanged(from: old, to: address)
        }
        if transport.sourcePort != port { transport.setSourcePort(port) }
    }
}
