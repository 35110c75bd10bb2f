import PacketWire

/// Builds the answer kube-proxy's `-j REJECT` gives a new connection to a Service without endpoints:
/// ICMP destination unreachable, code port unreachable, as the kernel's `icmp_send` forms it (TOS 0xC0,
/// TTL 64, quoting the offending datagram up to 576 bytes in all), sent back on the same link.
enum RejectReply {
    /// Largest ICMP error datagram `icmp_send` builds.
    static let maximumDatagram = 576

    /// Writes the reply frame into `output` and returns its length.
    static func portUnreachable(to frame: UnsafeMutableRawBufferPointer, link: LinkHeader, linkType: LinkType,
                                ip: IPv4Packet, from source: IPv4Address, into output: UnsafeMutableRawBufferPointer)
        -> Int
    {
        let linkLength = link.networkOffset
        let quoted = min(ip.frame.count - ip.offset, ip.totalLength, maximumDatagram - 28)
        let total = 28 + quoted
        precondition(linkLength + total <= output.count)

        output.copyMemory(from: UnsafeRawBufferPointer(rebasing: frame[0..<linkLength]))
        switch linkType {
        case .ethernet: try? EthernetFrame(frame: output).swapAddresses()
        case .linuxCooked: output.setU16(0, LinkHeader.packetOutgoing)
        case .linuxCooked2: output.setU8(10, UInt8(LinkHeader.packetOutgoing))
        default: break
        }

        let ipOffset = linkLength
        output.setU8(ipOffset, 0x45)
        output.setU8(ipOffset + 1, 0xC0)
        output.setU16(ipOffset + 2, UInt16(total))
        output.setU32(ipOffset + 4, 0)  // identification 0, no fragmentation flags
        output.setU8(ipOffset + 8, 64)
        output.setU8(ipOffset + 9, IPProtocol.icmp)
        output.setU32(ipOffset + 12, source.value)
        output.setU32(ipOffset + 16, ip.source.value)

        let icmpOffset = ipOffset + 20
        output.setU32(icmpOffset, 0x0303_0000)  // type 3, code 3, checksum 0
        output.setU32(icmpOffset + 4, 0)
        output.baseAddress!.advanced(by: icmpOffset + 8)
            .copyMemory(from: ip.frame.baseAddress!.advanced(by: ip.offset), byteCount: quoted)
        let icmp = UnsafeRawBufferPointer(rebasing: output[icmpOffset..<(icmpOffset + 8 + quoted)])
        output.setU16(icmpOffset + 2, InternetChecksum.finish(InternetChecksum.sum(icmp)))

        let replyFrame = UnsafeMutableRawBufferPointer(rebasing: output[0..<(linkLength + total)])
        if let header = try? IPv4Packet(frame: replyFrame, offset: ipOffset, wireLength: replyFrame.count) {
            header.computeHeaderChecksum()
        }
        return linkLength + total
    }
}
