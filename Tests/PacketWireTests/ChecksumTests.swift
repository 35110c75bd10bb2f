import PacketWire
import TestSupport
import Testing

@Suite("Internet checksum")
struct ChecksumTests {
    @Test("full checksum of a known IPv4 header")
    func knownHeader() {
        // RFC 1071-style example: header from a real capture, checksum 0xb861.
        let header: [UInt8] = [0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00,
                               0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7]
        let sum = header.withUnsafeBytes { InternetChecksum.finish(InternetChecksum.sum($0)) }
        #expect(sum == 0xB861)
    }

    @Test("incremental update equals full recomputation for random packets and rewrites")
    func incrementalMatchesFull() {
        var random = SeededGenerator(seed: 7)
        for _ in 0..<2000 {
            let isTCP = Bool.random(using: &random)
            var builder = PacketBuilder(source: "10.0.1.2", destination: "10.96.0.10",
                                        sourcePort: .random(in: 1...65535, using: &random),
                                        destinationPort: .random(in: 1...65535, using: &random),
                                        protocolNumber: isTCP ? IPProtocol.tcp : IPProtocol.udp)
            builder.source = IPv4Address(.random(in: 0...UInt32.max, using: &random))
            builder.destination = IPv4Address(.random(in: 0...UInt32.max, using: &random))
            builder.payload = (0..<Int.random(in: 0...40, using: &random))
                .map { _ in .random(in: 0...255, using: &random) }
            builder.sequence = .random(in: 0...UInt32.max, using: &random)
            // Either end, with its address, its port or both changed.
            let end: PacketEnd = Bool.random(using: &random) ? .source : .destination
            let (keepsAddress, keepsPort) = [(false, false), (true, false), (false, true)]
                .randomElement(using: &random)!
            var expected = builder
            if end == .source {
                if !keepsAddress { expected.source = IPv4Address(.random(in: 0...UInt32.max, using: &random)) }
                if !keepsPort { expected.sourcePort = .random(in: 0...65535, using: &random) }
            } else {
                if !keepsAddress { expected.destination = IPv4Address(.random(in: 0...UInt32.max, using: &random)) }
                if !keepsPort { expected.destinationPort = .random(in: 0...65535, using: &random) }
            }
            let (address, port) = end == .source
                ? (expected.source, expected.sourcePort) : (expected.destination, expected.destinationPort)
            let (_, rewritten) = withFrame(builder.ipPacket()) { bytes in
                let ip = try! IPv4Packet(frame: bytes, offset: 0, wireLength: bytes.count)
                try! TransportHeader(ip: ip).rewrite(end, of: ip, address: address, port: port)
            }
            #expect(rewritten == expected.ipPacket())
            #expect(ChecksumCheck.isValid(ipPacket: rewritten))
        }
    }

    @Test("a wrong checksum stays wrong by the same amount")
    func wrongStaysWrong() {
        let builder = PacketBuilder(source: "10.0.1.2", destination: "10.96.0.10", sourcePort: 40000,
                                    destinationPort: 80)
        var packet = builder.ipPacket()
        packet[36] ^= 0x01  // corrupt the TCP checksum's high byte
        let (_, rewritten) = withFrame(packet) { bytes in
            let ip = try! IPv4Packet(frame: bytes, offset: 0, wireLength: bytes.count)
            try! TransportHeader(ip: ip).rewrite(.destination, of: ip, address: IPv4Address("10.244.1.11")!, port: 80)
        }
        #expect(!ChecksumCheck.isValid(ipPacket: rewritten))
        var fixed = rewritten
        fixed[36] ^= 0x01
        #expect(ChecksumCheck.isValid(ipPacket: fixed))
    }

    @Test("a UDP checksum of zero stays zero")
    func udpZeroChecksum() {
        var builder = PacketBuilder(source: "10.0.1.2", destination: "10.96.0.10", sourcePort: 5353,
                                    destinationPort: 53, protocolNumber: IPProtocol.udp)
        builder.udpChecksum = false
        let (_, rewritten) = withFrame(builder.ipPacket()) { bytes in
            let ip = try! IPv4Packet(frame: bytes, offset: 0, wireLength: bytes.count)
            let transport = try! TransportHeader(ip: ip)
            transport.rewrite(.destination, of: ip, address: IPv4Address("10.244.1.11")!, port: 5353)
            #expect(transport.checksum == 0)
        }
        #expect(ChecksumCheck.isValid(ipPacket: rewritten))
    }

    @Test("RFC 1624 example: a computed zero for UDP is written as 0xFFFF")
    func udpComputedZero() {
        // Search for a port change whose incremental result is zero and check it is stored as 0xFFFF.
        var builder = PacketBuilder(source: "10.0.1.2", destination: "10.96.0.10", sourcePort: 1,
                                    destinationPort: 53, protocolNumber: IPProtocol.udp)
        builder.payload = [1, 2, 3]
        let packet = builder.ipPacket()
        let checksum = UInt16(packet[26]) << 8 | UInt16(packet[27])
        for port in UInt16(0)...UInt16.max where InternetChecksum.update(checksum, old: 53, new: port) == 0 {
            let (_, rewritten) = withFrame(packet) { bytes in
                let ip = try! IPv4Packet(frame: bytes, offset: 0, wireLength: bytes.count)
                try! TransportHeader(ip: ip).rewrite(.destination, of: ip, address: ip.destination, port: port)
            }
            #expect(rewritten[26] == 0xFF && rewritten[27] == 0xFF)
            #expect(ChecksumCheck.isValid(ipPacket: rewritten))
            return
        }
        Issue.record("no port gives a zero checksum")
    }
}
