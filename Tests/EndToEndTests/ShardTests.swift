import Foundation
import PacketIO
import Testing

/// Every record of a capture: its timestamp and bytes.
private func records(_ path: String) throws -> [[UInt8]] {
    let reader = try PcapReader(path: path)
    var all: [[UInt8]] = []
    while let frame = try reader.next() {
        all.append(withUnsafeBytes(of: frame.timestamp) { Array($0) } + Array(frame.bytes))
    }
    return all
}

@Suite("Sharding a run by connection")
struct ShardTests {
    @Test("N runs with --shard K/N, merged by mergecap, equal the one-run output (every sample, random and maglev)",
          .enabled(if: which("mergecap") != nil, "needs mergecap (wireshark-common)"),
          arguments: Repository.sampleCaptures, ["random", "maglev"])
    func mergedShardsEqualOneRun(name: String, balancing: String) throws {
        let directory = try TemporaryDirectory()
        let common = ["-r", Repository.capture(name), "-f", "\(Repository.pcaps)/\(name).yaml", "--lb", balancing,
                      "--seed", "9", "--quiet"]
        let single = try runProcess(Repository.binary, ["rewrite", "-w", directory.file("one.pcap")] + common)
        try #require(single.status == 0, "\(single.standardError)")
        let shards = 3
        var parts: [String] = []
        for shard in 0..<shards {
            let part = directory.file("part\(shard).pcap")
            let run = try runProcess(Repository.binary, ["rewrite", "-w", part, "--shard", "\(shard)/\(shards)"]
                + common)
            try #require(run.status == 0, "\(run.standardError)")
            parts.append(part)
        }
        let merge = try runProcess(try #require(which("mergecap")), ["-w", directory.file("merged.pcapng")]
            + parts)
        try #require(merge.status == 0, "\(merge.standardError)")
        let expected = try records(directory.file("one.pcap"))
        #expect(try records(directory.file("merged.pcapng")) == expected)
        let sizes = try parts.map { try records($0).count }
        #expect(sizes.reduce(0, +) == expected.count)
        if name == "service-demo" { #expect(sizes.filter { $0 > 0 }.count > 1, "the connections spread: \(sizes)") }
    }

    @Test("the cluster sample with masquerade: shards merged equal one run", .enabled(if: which("mergecap") != nil))
    func clusterWithMasquerade() throws {
        let directory = try TemporaryDirectory()
        let common = ["-r", Repository.capture("cluster"), "-f", "\(Repository.pcaps)/cluster.yaml", "--node-ip",
                      "192.168.1.10", "--node-name", "node-a", "--cluster-cidr", "10.244.0.0/16", "--quiet"]
        #expect(try runProcess(Repository.binary, ["rewrite", "-w", directory.file("one.pcap")] + common).status == 0)
        var parts: [String] = []
        for shard in 0..<4 {
            parts.append(directory.file("part\(shard).pcap"))
            let run = try runProcess(Repository.binary, ["rewrite", "-w", parts[shard], "--shard", "\(shard)/4"] + common)
            #expect(run.status == 0, "\(run.standardError)")
        }
        _ = try runProcess(try #require(which("mergecap")), ["-w", directory.file("merged.pcapng")] + parts)
        #expect(try records(directory.file("merged.pcapng")) == records(directory.file("one.pcap")))
    }
}
