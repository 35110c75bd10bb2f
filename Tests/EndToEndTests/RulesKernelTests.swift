import Foundation
import Testing

@Suite("kube-proxy rules in a real kernel")
struct RulesKernelTests {
    @Test("svcplane rules loads with iptables-restore into a namespace, and iptables-save shows what --format iptables-save prints",
          .enabled(if: LiveKernel.available, LiveKernel.reason), arguments: [
              ["-f", "\(Repository.pcaps)/service-demo.yaml", "-f", "\(Repository.pcaps)/refused.yaml"],
              ["-f", "\(Repository.pcaps)/cluster.yaml", "--node-name", "node-a"],
          ])
    func loadIntoKernel(manifests: [String]) throws {
        let directory = try TemporaryDirectory()
        let rules = try runProcess(Repository.binary, ["rules", "--cluster-cidr", "10.244.0.0/16"] + manifests)
        try #require(rules.status == 0, "\(rules.standardError)")
        try rules.standardOutput.write(toFile: directory.file("rules"), atomically: true, encoding: .utf8)

        let saved = try withNetworkNamespace("svcplane-rules-") { namespace in
            let load = try namespace.run(["iptables-restore", "--noflush", directory.file("rules")])
            #expect(load.status == 0, "iptables-restore refused the rules: \(load.standardError)")
            return try namespace.run(["iptables-save"])
        }
        let declared = rules.standardOutput.split(separator: "\n").filter { $0.hasPrefix(":KUBE-") }
        #expect(declared.count > 10)
        for chain in declared { #expect(saved.standardOutput.contains(chain), "\(chain) is in the kernel") }
        #expect(saved.standardOutput.contains("-m statistic --mode random --probability 0.33333333349"))
        let predicted = try runProcess(Repository.binary, ["rules", "--cluster-cidr", "10.244.0.0/16",
                                                           "--format", "iptables-save"] + manifests)
        let shown = saved.standardOutput.split(separator: "\n").filter { !$0.hasPrefix("#") }
        let ours = predicted.standardOutput.split(separator: "\n")
        for (index, line) in shown.enumerated() {
            #expect(index < ours.count && ours[index] == line, "iptables-save line \(index + 1)")
        }
        #expect(ours.count == shown.count, "--format iptables-save prints what iptables-save shows")
        #expect(saved.standardOutput.contains("has no endpoints\""))
    }
}

extension RulesKernelTests {
    @Test("svcplane rules --mode nftables loads with nft -f into a namespace, again over the table it made (as a restarted kube-proxy does), and nft lists every chain, set and map it adds and its numgen balancing",
          .enabled(if: LiveKernel.available, LiveKernel.reason), arguments: [
              ["-f", "\(Repository.pcaps)/service-demo.yaml", "-f", "\(Repository.pcaps)/refused.yaml"],
              ["-f", "\(Repository.pcaps)/cluster.yaml", "--node-name", "node-a", "--node-ip", "10.0.1.1",
               "--service-cidr", "10.96.0.0/12"],
          ])
    func loadNFTablesIntoKernel(manifests: [String]) throws {
        let directory = try TemporaryDirectory()
        let rules = try runProcess(Repository.binary, ["rules", "--mode", "nftables", "--cluster-cidr", "10.244.0.0/16"]
            + manifests)
        try #require(rules.status == 0, "\(rules.standardError)")
        try rules.standardOutput.write(toFile: directory.file("rules.nft"), atomically: true, encoding: .utf8)

        let listing = try withNetworkNamespace("svcplane-nft-") { namespace in
            for attempt in ["first", "second"] {
                let load = try namespace.run(["nft", "-f", directory.file("rules.nft")])
                #expect(load.status == 0, "nft refused the \(attempt) load: \(load.standardError)")
            }
            return try namespace.run(["nft", "list", "table", "ip", "kube-proxy"])
        }
        try #require(listing.status == 0, "\(listing.standardError)")
        let added = rules.standardOutput.split(separator: "\n").filter { $0.hasPrefix("add chain ") || $0.hasPrefix("add set ")
            || $0.hasPrefix("add map ") }
        #expect(added.count > 20)
        let deletedSets = rules.standardOutput.split(separator: "\n").filter { $0.hasPrefix("delete set ") }
            .map { $0.split(separator: " ")[4] }  // nodeport-ips, when node ports are served on every address
        for line in added {
            let words = line.split(separator: " ")
            if deletedSets.contains(words[4]) { continue }
            #expect(listing.standardOutput.contains("\t\(words[1]) \(words[4]) {"), "\(words[1]) \(words[4]) is in the kernel")
        }
        let numgen = rules.standardOutput.split(separator: "\n").filter { $0.contains(" numgen random mod ") }
        #expect(!numgen.isEmpty)
        for line in numgen {
            let rule = line.split(separator: " ", maxSplits: 5)[5].replacingOccurrences(of: " , ", with: ", ")
            #expect(listing.standardOutput.contains(rule), "\(rule)")
        }
    }
}

/// One `conntrack -L` line reduced to what a Service decided: the frontend a client reached and the endpoint
/// (and masquerade) the node chose.
private struct Decision {
    let frontend: String
    let endpoint: String
    let masqueraded: Bool
    /// The TCP or SCTP state (empty for UDP).
    let state: String

    init?(_ line: Substring) {
        let fields = line.split(separator: " ")
        let values = fields.compactMap { field -> (String, String)? in
            let parts = field.split(separator: "=", maxSplits: 1)
            return parts.count == 2 ? (String(parts[0]), String(parts[1])) : nil
        }
        let keys = values.map(\.0)
        guard keys.starts(with: ["src", "dst", "sport", "dport", "src", "dst", "sport", "dport"]) else { return nil }
        frontend = "\(fields[0]) \(values[0].1) > \(values[1].1):\(values[3].1)"
        endpoint = "\(values[4].1):\(values[6].1)"
        masqueraded = values[5].1 != values[0].1
        state = fields.count > 3 && !fields[3].contains("=") ? String(fields[3]) : ""
    }
}

@Suite("svcplane against the kernel running its own rules")
struct FrontendDifferentialTests {
    @Test("every frontend of pcaps/cluster.yaml (TCP, UDP, SCTP): the kernel with svcplane's iptables or nftables rules picks among the endpoints svcplane picks among, masquerades the same connections, tracks them in the same states, refuses and drops the same ones",
          .enabled(if: LiveKernel.available, LiveKernel.reason), arguments: ["iptables", "nftables"])
    func everyFrontend(mode: String) throws {
        let directory = try TemporaryDirectory()
        let probe = try runProcess(Repository.root + "/tools/kernel-frontends",
                                   [directory.path, "\(Repository.pcaps)/cluster.yaml", "node-a", "40", mode],
                                   environment: ["SVCPLANE": Repository.binary])
        try #require(probe.status == 0, "tools/kernel-frontends failed: \(probe.standardError)")
        let replay = try svcplane("rewrite", "-r", directory.file("node-in.pcap"), "-w", directory.file("out.pcap"),
                                  "-f", "\(Repository.pcaps)/cluster.yaml", "--node-ip", "192.168.100.10",
                                  "--node-ip", "10.0.1.1", "--node-name", "node-a", "--cluster-cidr", "10.244.0.0/16",
                                  "--lb", "round-robin", "--no-follow-capture", "--conntrack-dump", "-", "--quiet")
        try #require(replay.status == 0, "\(replay.standardError)")
        let kernelListing = try String(contentsOfFile: directory.file("conntrack.txt"), encoding: .utf8)
        let kernel = Dictionary(grouping: kernelListing.split(separator: "\n").compactMap(Decision.init), by: \.frontend)
        let ours = Dictionary(grouping: replay.standardOutput.split(separator: "\n").compactMap(Decision.init),
                              by: \.frontend)
        #expect(kernel.count > 20, "connections of both clients to most frontends")
        #expect(Set(kernel.keys) == Set(ours.keys), "the same frontends were served (the rest refused or dropped)")
        for (frontend, decisions) in kernel {
            let choices = Set(decisions.map(\.endpoint))
            let candidates = Set((ours[frontend] ?? []).map(\.endpoint))  // round-robin: every candidate, in order
            if frontend.hasSuffix("> 10.96.10.20:80") {  // shop/cart, ClientIP affinity: one endpoint per client
                #expect(choices.count == 1 && candidates.count == 1, "\(frontend): kernel \(choices), svcplane \(candidates)")
            } else {
                #expect(choices.isSubset(of: candidates), "\(frontend): kernel \(choices), svcplane \(candidates)")
                if candidates.count <= 3 { #expect(choices == candidates, "\(frontend)") }
            }
            #expect(Set(decisions.map(\.masqueraded)) == Set((ours[frontend] ?? []).map(\.masqueraded)),
                    "\(frontend): masquerade")
            #expect(decisions.count == ours[frontend]?.count, "\(frontend): connections")
            #expect(Set(decisions.map(\.state)) == Set((ours[frontend] ?? []).map(\.state)), "\(frontend): states")
        }
    }
}
