import Foundation
import PacketIO
import PacketWire
import Testing

/// Paths of the repository, its sample captures and the built command.
enum Repository {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path
    static let pcaps = root + "/pcaps"

    /// The `svcplane` executable `swift test` built beside the test bundle (in whatever build folder).
    static let binary: String = {
        let testBundle = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        let candidates = [testBundle.deletingLastPathComponent().appendingPathComponent("svcplane").path,
                          root + "/.build/debug/svcplane"]
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) } ?? candidates[1]
    }()

    /// Every sample capture in pcaps/ that has its manifest beside it.
    static var sampleCaptures: [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: pcaps)) ?? []
        return names.filter { ($0.hasSuffix(".pcap") || $0.hasSuffix(".pcapng")) && !$0.contains(".kernel-") }
            .map { String($0.prefix { $0 != "." }) }
            .filter { FileManager.default.fileExists(atPath: "\(pcaps)/\($0).yaml") }
            .sorted()
    }

    static func capture(_ name: String) -> String {
        let pcapng = "\(pcaps)/\(name).pcapng"
        return FileManager.default.fileExists(atPath: pcapng) ? pcapng : "\(pcaps)/\(name).pcap"
    }
}

/// What a finished process printed.
struct ProcessResult {
    let status: Int32
    let standardOutput: String
    let standardError: String
}

/// Runs a program to completion with captured output; `environment` adds to (or overrides) this process's.
func runProcess(_ executable: String, _ arguments: [String], environment: [String: String] = [:]) throws
    -> ProcessResult
{
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    if !environment.isEmpty {
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    }
    let output = Pipe()
    let error = Pipe()
    process.standardOutput = output
    process.standardError = error
    try process.run()
    // Read both pipes to the end before waiting, so a large output cannot block the child.
    let outputData = output.fileHandleForReading.readDataToEndOfFile()
    let errorData = error.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return ProcessResult(status: process.terminationStatus, standardOutput: String(decoding: outputData, as: UTF8.self),
                         standardError: String(decoding: errorData, as: UTF8.self))
}

func svcplane(_ arguments: String...) throws -> ProcessResult { try runProcess(Repository.binary, arguments) }

/// Finds a program on PATH.
func which(_ name: String) -> String? {
    for directory in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
        let path = "\(directory)/\(name)"
        if FileManager.default.isExecutableFile(atPath: path) { return path }
    }
    return nil
}

/// Expects tshark to find no packet in the capture at `path` whose IP, TCP, UDP, ICMP or SCTP checksum is wrong,
/// and none malformed; the failure lists those it finds.
func expectValidChecksums(_ path: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
    let tshark = try #require(which("tshark"), "tshark is needed to verify written captures (apt-get install tshark)")
    let result = try runProcess(tshark, [
        // DNS is off: the sample pods answer port 53 with plain text, which is not malformed traffic of ours.
        "-r", path, "--disable-protocol", "dns", "-o", "ip.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE",
        "-o", "udp.check_checksum:TRUE", "-o", "sctp.checksum:CRC-32c",
        "-Y", "ip.checksum.status == 2 || tcp.checksum.status == 2 || udp.checksum.status == 2 "
            + "|| icmp.checksum.status == 2 || sctp.checksum.status == 2 || _ws.malformed",
    ])
    #expect(result.status == 0, "tshark failed: \(result.standardError)", sourceLocation: sourceLocation)
    let bad = result.standardOutput.split(separator: "\n")
    #expect(bad.isEmpty, "packets with a wrong checksum, or malformed: \(bad)", sourceLocation: sourceLocation)
}

/// The header fields of one TCP/UDP/ICMP packet that a NAT comparison looks at.
struct PacketFacts: Hashable, CustomStringConvertible {
    var source: String
    var destination: String
    var sourcePort: UInt16
    var destinationPort: UInt16
    var protocolNumber: UInt8
    var sequence: UInt32 = 0
    var acknowledgement: UInt32 = 0
    var flags: UInt8 = 0
    var identification: UInt16
    var totalLength: Int

    var description: String {
        "\(source):\(sourcePort) > \(destination):\(destinationPort)/\(protocolNumber) seq \(sequence) "
            + "ack \(acknowledgement) flags \(flags) id \(identification) len \(totalLength)"
    }
}

/// A capture's IPv4 packets, decoded to facts (ARP and everything undecodable left out).
func packetFacts(_ path: String) throws -> [PacketFacts] { try packetFactsWithTimes(path).map(\.fact) }

/// A capture's IPv4 packets with their timestamps.
func packetFactsWithTimes(_ path: String) throws -> [(fact: PacketFacts, time: Int64)] {
    let reader = try PcapReader(path: path)
    let linkType = LinkType(dlt: reader.datalink)
    var facts: [(fact: PacketFacts, time: Int64)] = []
    while let frame = try reader.next() {
        var bytes = Array(frame.bytes)
        let fact: PacketFacts? = bytes.withUnsafeMutableBytes { data in
            guard let link = try? LinkHeader(frame: data, linkType: linkType), link.etherType == EtherType.ipv4,
                  let ip = try? IPv4Packet(frame: data, offset: link.networkOffset, wireLength: frame.wireLength)
            else { return nil }
            var fact = PacketFacts(source: ip.source.description, destination: ip.destination.description,
                                   sourcePort: 0, destinationPort: 0, protocolNumber: ip.protocolNumber,
                                   identification: ip.identification, totalLength: ip.totalLength)
            if ip.protocolNumber == IPProtocol.tcp || ip.protocolNumber == IPProtocol.udp,
               let transport = try? TransportHeader(ip: ip)
            {
                fact.sourcePort = transport.sourcePort
                fact.destinationPort = transport.destinationPort
                if ip.protocolNumber == IPProtocol.tcp {
                    let segment = TCPSegment(header: transport, ip: ip)
                    fact.sequence = segment.sequenceNumber
                    fact.acknowledgement = segment.acknowledgementNumber
                    fact.flags = segment.flags.rawValue
                }
            } else if let icmp = try? ICMPv4Message(ip: ip) {
                fact.sourcePort = UInt16(icmp.type)
                fact.destinationPort = UInt16(icmp.code)
            }
            return fact
        }
        if let fact { facts.append((fact, frame.timestamp)) }
    }
    return facts
}

/// A `conntrack -L` line split into its timeout and the rest.
struct ListingLine: Hashable {
    let timeout: Int
    let rest: String

    init?(_ line: String) {
        let fields = line.split(separator: " ", omittingEmptySubsequences: true)
        guard fields.count > 3, let timeout = Int(fields[2]), !line.hasPrefix("conntrack v") else { return nil }
        self.timeout = timeout
        rest = ([fields[0], fields[1]] + fields[3...]).joined(separator: " ")
    }
}

func listing(_ text: String) -> [ListingLine] { text.split(separator: "\n").compactMap { ListingLine(String($0)) } }

/// A temporary directory removed when the test ends.
final class TemporaryDirectory {
    let path: String

    init() throws {
        path = NSTemporaryDirectory() + "svcplane-test-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    func file(_ name: String) -> String { "\(path)/\(name)" }
}

/// A network namespace a test made for itself.
struct NetworkNamespace {
    let name: String
    let ip: String

    /// Runs a command inside the namespace.
    func run(_ command: [String]) throws -> ProcessResult { try runProcess(ip, ["netns", "exec", name] + command) }
}

/// Runs `body` with a new network namespace (named from `prefix`, the process and a random number), deleted when
/// `body` returns or throws.
func withNetworkNamespace<T>(_ prefix: String, _ body: (NetworkNamespace) throws -> T) throws -> T {
    let ip = try #require(which("ip"))
    let namespace = NetworkNamespace(name: "\(prefix)\(getpid())-\(UInt16.random(in: 0...UInt16.max))", ip: ip)
    let created = try runProcess(ip, ["netns", "add", namespace.name])
    try #require(created.status == 0, "ip netns add: \(created.standardError)")
    defer { _ = try? runProcess(ip, ["netns", "delete", namespace.name]) }
    return try body(namespace)
}
