import Cluster
import Dataplane
import PacketWire
import TestSupport
import Testing

/// A frame made bad in one way, and how the program must count it.
struct BadFrame: CustomTestStringConvertible, Sendable {
    let name: String
    let bytes: [UInt8]
    var wireLength: Int?
    let expected: Expected

    enum Expected: Sendable {
        case malformed(WireError)
        case passed(PassReason)
    }

    var testDescription: String { name }
}

/// Builds the bad frames from a good SYN to the ClusterIP.
enum BadFrames {
    static let syn = client(40000).ethernetFrame()
    static let udp = client(40001, to: "10.96.0.10", 53, IPProtocol.udp).ethernetFrame()

    static func with(_ frame: [UInt8], _ changes: [Int: UInt8]) -> [UInt8] {
        var copy = frame
        for (offset, value) in changes { copy[offset] = value }
        return copy
    }

    static var all: [BadFrame] {
        var tripleTagged = client(40002)
        tripleTagged.vlanTags = [1, 2, 3]
        return [
            BadFrame(name: "empty frame", bytes: [], expected: .malformed(.truncatedLinkHeader)),
            BadFrame(name: "Ethernet header cut", bytes: Array(syn.prefix(13)), expected: .malformed(.truncatedLinkHeader)),
            BadFrame(name: "VLAN tag cut", bytes: Array(syn.prefix(12)) + [0x81, 0, 0],
                     expected: .malformed(.truncatedLinkHeader)),
            BadFrame(name: "IPv4 header cut", bytes: Array(syn.prefix(30)), expected: .malformed(.truncatedIPv4Header)),
            BadFrame(name: "IHL below 5", bytes: with(syn, [14: 0x44]), expected: .malformed(.badIPv4HeaderLength)),
            BadFrame(name: "IHL past the frame", bytes: Array(with(syn, [14: 0x4F]).prefix(60)),
                     expected: .malformed(.truncatedIPv4Header)),
            BadFrame(name: "total length past the frame", bytes: with(syn, [16: 0x05]),
                     expected: .malformed(.badIPv4TotalLength)),
            BadFrame(name: "total length below the header", bytes: with(syn, [16: 0, 17: 12]),
                     expected: .malformed(.badIPv4TotalLength)),
            BadFrame(name: "IPv6 in an IPv4 EtherType", bytes: with(syn, [14: 0x60]), expected: .malformed(.badIPv4Version)),
            BadFrame(name: "TCP header cut by the snap length", bytes: Array(syn.prefix(44)), wireLength: syn.count,
                     expected: .malformed(.truncatedTCPHeader)),
            BadFrame(name: "TCP header past the frame as sent", bytes: Array(syn.prefix(44)), wireLength: 44,
                     expected: .malformed(.badIPv4TotalLength)),
            BadFrame(name: "TCP data offset below 5", bytes: with(syn, [46: 0x40]), expected: .malformed(.badTCPDataOffset)),
            BadFrame(name: "TCP data offset past the end", bytes: with(syn, [46: 0xF0]),
                     expected: .malformed(.badTCPDataOffset)),
            BadFrame(name: "UDP header cut", bytes: Array(udp.prefix(38)), wireLength: 60,
                     expected: .malformed(.truncatedUDPHeader)),
            BadFrame(name: "UDP length below 8", bytes: with(udp, [38: 0, 39: 7]), expected: .malformed(.badUDPLength)),
            BadFrame(name: "UDP length past the packet", bytes: with(udp, [38: 0, 39: 99]),
                     expected: .malformed(.badUDPLength)),
            BadFrame(name: "three VLAN tags", bytes: tripleTagged.ethernetFrame(), expected: .passed(.notIPv4)),
            BadFrame(name: "later fragment", bytes: with(syn, [20: 0x00, 21: 0x10]), expected: .passed(.laterFragment)),
        ]
    }
}

@Suite("Bad input")
struct BadInputTests {
    @Test("every bad frame passes unchanged and is counted by its reason", arguments: BadFrames.all)
    func badFrame(_ bad: BadFrame) throws {
        var harness = try Harness()
        let (action, out) = harness.run(bad.bytes, wireLength: bad.wireLength)
        #expect(action == .pass)
        #expect(out == bad.bytes)
        let stats = harness.program.stats
        switch bad.expected {
        case .malformed(let reason):
            #expect(stats.count(malformed: reason) == 1 && stats.count(passed: .malformed) == 1)
        case .passed(let reason):
            #expect(stats.count(passed: reason) == 1)
        }
        #expect(harness.program.conntrack.count == 0)
    }

    @Test("an unknown link type passes every frame unchanged, counted")
    func unknownLinkType() throws {
        var harness = try Harness(linkType: .other(147))
        let (action, out) = harness.run(BadFrames.syn)
        #expect(action == .pass && out == BadFrames.syn)
        #expect(harness.program.stats.count(malformed: .unsupportedLinkType) == 1)
    }

    @Test("IPv4 options of every length: translated, checksums valid, trailing padding kept",
          arguments: Array(stride(from: 0, through: 40, by: 4)))
    func ipOptions(length: Int) throws {
        var harness = try Harness()
        var syn = client(40100)
        syn.ipOptions = [UInt8](repeating: 1, count: length)  // NOPs
        let frame = syn.ethernetFrame() + [0xAA, 0xBB, 0xCC]  // bytes after the IP packet: padding
        let (action, out) = harness.run(frame)
        let ip = Array(out[14..<(14 + syn.ipPacket().count)])
        #expect(action == .pass && ip[16] == 10 && ip[17] == 244)
        #expect(ChecksumCheck.isValid(ipPacket: ip))
        #expect(Array(out.suffix(3)) == [0xAA, 0xBB, 0xCC])
    }

    @Test("a 64 KiB packet is translated like any other")
    func largest() throws {
        var harness = try Harness()
        var data = client(40200)
        data.flags = [.ack]
        data.payload = [UInt8](repeating: 0x5A, count: 65535 - 40)
        let frame = data.ethernetFrame()
        #expect(frame.count == 14 + 65535)
        let (action, out) = harness.run(frame)
        #expect(action == .pass && out[14 + 16] == 10)
        #expect(ChecksumCheck.isValid(ipPacket: Array(out[14...])))
    }
}

@Suite("Properties")
struct PropertyTests {
    /// A random frame: a client packet to a frontend, a reply from a pod, or noise, sometimes with a broken
    /// checksum, sometimes with random bytes flipped.
    static func randomFrame(_ random: inout SeededGenerator) -> (frame: [UInt8], validChecksums: Bool?) {
        let isUDP = Bool.random(using: &random)
        var packet = isUDP
            ? client(.random(in: 1024...1100, using: &random), to: "10.96.0.10", 53, IPProtocol.udp)
            : client(.random(in: 1024...1100, using: &random))
        if Int.random(in: 0..<3, using: &random) == 0 {
            packet = PacketBuilder(source: "10.244.\(Int.random(in: 1...3, using: &random)).11",
                                   destination: "10.0.1.2", sourcePort: isUDP ? 53 : 9376,
                                   destinationPort: packet.sourcePort, protocolNumber: packet.protocolNumber)
        }
        packet.flags = [[.syn], [.ack], [.syn, .ack], [.fin, .ack], [.rst], [.ack, .psh]][Int.random(in: 0..<6, using: &random)]
        packet.payload = (0..<Int.random(in: 0...30, using: &random)).map { _ in .random(in: 0...255, using: &random) }
        var frame = packet.ethernetFrame()
        switch Int.random(in: 0..<4, using: &random) {
        case 0:  // break the transport checksum
            frame[14 + 20 + (isUDP ? 6 : 16)] ^= 0x10
            return (frame, false)
        case 1:  // flip random bytes anywhere
            for _ in 0..<Int.random(in: 1...4, using: &random) {
                frame[Int.random(in: 0..<frame.count, using: &random)] = .random(in: 0...255, using: &random)
            }
            return (frame, nil)
        default:
            return (frame, true)
        }
    }

    @Test("conservation, checksum validity kept, frame lengths kept, over many random frames", arguments: [1, 2, 3])
    func randomTraffic(seed: UInt64) throws {
        var harness = try Harness(seed: seed)
        var random = SeededGenerator(seed: seed)
        var written = 0
        var checked = (valid: 0, invalid: 0)
        for _ in 0..<3000 {
            let (frame, valid) = Self.randomFrame(&random)
            let (action, out) = harness.run(frame)
            #expect(out.count == frame.count)
            switch action {
            case .pass: written += 1
            case .tx: written += 2
            default: break
            }
            if action == .pass, let valid, out != frame {
                let ipLength = Int(out[16]) << 8 | Int(out[17])
                #expect(ChecksumCheck.isValid(ipPacket: Array(out[14..<(14 + ipLength)])) == valid)
                if valid { checked.valid += 1 } else { checked.invalid += 1 }
            }
        }
        #expect(checked.valid > 300 && checked.invalid > 100, "rewritten packets of both kinds were checked")
        let stats = harness.program.stats
        #expect(stats.packets == 3000)
        #expect(XDPAction.allCases.map { stats.count(of: $0) }.reduce(0, +) == 3000)
        #expect(written == 3000 + stats.count(of: .tx) - stats.count(of: .drop), "in = out + dropped - generated")
    }
}
