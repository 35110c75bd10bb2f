import Foundation
import PacketWire
import Testing

/// Compares svcplane with the kernel on a capture of a node built by tools/make-pcaps: `NAME.pcap` is what the
/// node received, `NAME.kernel-out.pcap` what the kernel sent, `NAME.kernel-conntrack.txt` its conntrack -L.
struct KernelComparison {
    let directory: String
    let name: String
    static let client = "10.0.1.2"

    /// Packets grouped by connection: protocol and the client's port.
    static func flows(_ facts: [PacketFacts]) -> [String: [PacketFacts]] {
        Dictionary(grouping: facts.filter { $0.protocolNumber != IPProtocol.icmp }) { fact in
            "\(fact.protocolNumber)/\(fact.source == client ? fact.sourcePort : fact.destinationPort)"
        }
    }

    /// Packets in an order of their own (by their text), to compare them as sets.
    static func inOneOrder(_ packets: [PacketFacts]) -> [PacketFacts] {
        packets.sorted { $0.description < $1.description }
    }

    func check() throws {
        let temporary = try TemporaryDirectory()
        let output = temporary.file("out.pcap")
        let input = FileManager.default.fileExists(atPath: "\(directory)/\(name).pcapng")
            ? "\(directory)/\(name).pcapng" : "\(directory)/\(name).pcap"
        // The kernel's listing time, where make-pcaps noted it (after the captures stopped): svcplane lists its
        // table as at that time, so entries that expired between the last packet and the listing agree too.
        let listedAt = (try? String(contentsOfFile: "\(directory)/\(name).kernel-conntrack-at.txt", encoding: .utf8))
            .map { ["--conntrack-at", $0.trimmingCharacters(in: .whitespacesAndNewlines)] } ?? []
        let arguments = ["rewrite", "-r", input, "-w", output, "-f", "\(directory)/\(name).yaml",
                         "--node-ip", "10.0.1.1", "--conntrack-dump", "-", "--quiet"] + listedAt
        let result = try runProcess(Repository.binary, arguments)
        try #require(result.status == 0, "\(result.standardError)")

        // Conntrack: the same entries (tuples, state, flags), timeouts within 3 s.
        let kernelListing = listing(try String(contentsOfFile: "\(directory)/\(name).kernel-conntrack.txt",
                                               encoding: .utf8))
        let ours = listing(result.standardOutput)
        #expect(Set(ours.map(\.rest)) == Set(kernelListing.map(\.rest)), "conntrack entries differ from the kernel's")
        for line in ours {
            if let kernel = kernelListing.first(where: { $0.rest == line.rest }) {
                #expect(abs(kernel.timeout - line.timeout) <= 3, "timeout of \(line.rest)")
            }
        }

        // Packets: what svcplane makes of the received packets equals what the kernel sent, per connection. The
        // packets are compared as sets: the order in which the kernel sends two packets of a connection need not
        // be the order its capture of them received shows, since a veth hands each packet to the backlog of the
        // CPU that sent it, and two CPUs may then forward two packets of one connection at once.
        let kernelOut = "\(directory)/\(name).kernel-out.pcap"
        guard FileManager.default.fileExists(atPath: kernelOut) else { return }
        let kernelFacts = try packetFacts(kernelOut)
        let ourFacts = try packetFacts(output)
        let kernelFlows = Self.flows(kernelFacts)
        let ourFlows = Self.flows(ourFacts)
        #expect(!kernelFlows.isEmpty)
        for (flow, packets) in kernelFlows {
            #expect(ourFlows[flow].map(Self.inOneOrder) == Self.inOneOrder(packets),
                    "connection \(flow) differs from the kernel's")
        }

        // Rejects: the kernel's ICMP errors, as svcplane generates them (identification aside).
        func rejects(_ facts: [PacketFacts]) -> [String] {
            facts.filter { $0.protocolNumber == IPProtocol.icmp }.map {
                "\($0.source) > \($0.destination) type \($0.sourcePort) code \($0.destinationPort) len \($0.totalLength)"
            }
        }
        #expect(rejects(ourFacts) == rejects(kernelFacts))
    }
}

@Suite("Differential against the Linux kernel")
struct KernelDifferentialTests {
    @Test("recorded samples: svcplane's packets and conntrack equal the kernel's",
          arguments: ["service-demo", "single-pod", "vlan", "refused", "cooked", "cooked-v1"])
    func recorded(name: String) throws {
        try KernelComparison(directory: Repository.pcaps, name: name).check()
    }

    @Test("live: a node built now from network namespaces agrees with svcplane",
          .enabled(if: LiveKernel.available, LiveKernel.reason))
    func live() throws {
        let directory = try TemporaryDirectory()
        let result = try runProcess(Repository.root + "/tools/make-pcaps", [directory.path, "single-pod", "refused"])
        try #require(result.status == 0, "tools/make-pcaps failed: \(result.standardError)")
        for name in ["single-pod", "refused"] {
            try KernelComparison(directory: directory.path, name: name).check()
        }
    }
}

/// Whether this machine can build namespace topologies (root, iproute2, iptables, conntrack, tcpdump).
enum LiveKernel {
    static let missing: [String] = ["ip", "iptables", "conntrack", "tcpdump", "ethtool", "python3", "curl",
                                    "mergecap"].filter { which($0) == nil }

    /// Root, the tools, and a network namespace can really be made (a container may refuse it).
    static let available: Bool = getuid() == 0 && missing.isEmpty && canCreateNamespace

    private static var canCreateNamespace: Bool {
        guard let unshare = which("unshare") else { return false }
        return (try? runProcess(unshare, ["--net", "true"]).status) == 0
    }

    static var reason: Comment {
        getuid() != 0 ? "SKIPPED: the live kernel tests need root (network namespaces)"
            : !missing.isEmpty ? "SKIPPED: the live kernel tests need \(missing.joined(separator: ", "))"
            : "SKIPPED: this machine refuses to create a network namespace"
    }
}
