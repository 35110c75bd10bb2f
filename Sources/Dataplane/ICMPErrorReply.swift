import PacketWire

/// Builds an ICMP error about a received datagram as the kernel's `icmp_send` forms it (TOS 0xC0, TTL 64,
/// quoting the offending datagram up to 576 bytes in all), to be sent back on the link it came from: the
/// answer of kube-proxy's `-j REJECT` (port unreachable), of a router whose TTL ran out (time exceeded), of a
/// neighbour that never answered ARP (host unreachable).
public enum ICMPErrorReply {
    /// The errors svcplane sends, as ICMP type and code.
    public enum Kind: Sendable {
        case portUnreachable
        case hostUnreachable
        case timeExceeded

        var typeAndCode: UInt16 {
            switch self {
            case .portUnreachable: 0x0303
            case .hostUnreachable: 0x0301
            case .timeExceeded: 0x0B00
            }
        }
    }

    /// Largest ICMP error datagram `icmp_send` builds.
    static let maximumDatagram = 576

    /// Writes the reply frame (the received link header, addresses swapped, then IPv4 and ICMP) into `output`
    /// and returns its length. `output` holds at least `XDPContext.generatedCapacity` bytes.
    public static func write(_ kind: Kind, about frame: UnsafeMutableRawBufferPointer, link: LinkHeader,
                             linkType: LinkType, ip: IPv4Packet, from source: IPv4Address,
                             into output: UnsafeMutableRawBufferPointer) -> Int
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
        output.setU32(icmpOffset, UInt32(kind.typeAndCode) << 16)  // type, code, checksum 0
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
