import Foundation
import Testing

/// What a run left: the written capture's bytes, the conntrack dump, and the JSON statistics without the
/// per-worker counts (which name the workers).
private struct RunResult: Equatable {
    let capture: Data
    let conntrack: String
    let stats: NSDictionary
    let workerPackets: [Int]

    init(_ arguments: [String], in directory: TemporaryDirectory, tag: String) throws {
        let output = directory.file("\(tag).pcap")
        let conntrackPath = directory.file("\(tag).conntrack")
        let statsPath = directory.file("\(tag).json")
        let run = try runProcess(Repository.binary, ["rewrite", "-w", output, "--conntrack-dump", conntrackPath,
                                                     "--stats", statsPath, "-o", "json", "--quiet"] + arguments)
        try #require(run.status == 0, "\(run.standardError)")
        capture = try Data(contentsOf: URL(fileURLWithPath: output))
        conntrack = try String(contentsOfFile: conntrackPath, encoding: .utf8)
        var stats = try #require(try JSONSerialization.jsonObject(
            with: Data(contentsOf: URL(fileURLWithPath: statsPath))) as? [String: Any])
        workerPackets = try #require(stats.removeValue(forKey: "workerPackets") as? [Int])
        self.stats = stats as NSDictionary
    }

    static func == (left: RunResult, right: RunResult) -> Bool {
        left.capture == right.capture && left.conntrack == right.conntrack && left.stats == right.stats
    }
}

@Suite("Workers in parallel")
struct WorkerTests {
    @Test("--workers 2 and 3 write the bytes, conntrack table and statistics of one worker (every sample)",
          arguments: Repository.sampleCaptures, ["random", "maglev"])
    func sameAsOneWorker(name: String, balancing: String) throws {
        let directory = try TemporaryDirectory()
        let common = ["-r", Repository.capture(name), "-f", "\(Repository.pcaps)/\(name).yaml", "--lb", balancing,
                      "--seed", "5"]
        let one = try RunResult(common, in: directory, tag: "one")
        #expect(one.workerPackets.count == 1)
        for workers in [2, 3] {
            let several = try RunResult(common + ["--workers", "\(workers)"], in: directory, tag: "w\(workers)")
            #expect(several == one, "\(workers) workers")
            #expect(several.workerPackets.count == workers)
            #expect(several.workerPackets.reduce(0, +) == one.workerPackets[0], "each packet runs once")
            if name == "service-demo" {
                #expect(several.workerPackets.filter { $0 > 0 }.count > 1, "the work spreads: \(several.workerPackets)")
            }
        }
    }

    @Test("with masquerade, with --shard, and with cluster changes, workers change nothing")
    func masqueradeShardsAndChanges() throws {
        let directory = try TemporaryDirectory()
        let cluster = ["-r", Repository.capture("cluster"), "-f", "\(Repository.pcaps)/cluster.yaml", "--node-ip",
                       "192.168.1.10", "--node-name", "node-a", "--cluster-cidr", "10.244.0.0/16"]
        #expect(try RunResult(cluster + ["--workers", "4"], in: directory, tag: "c4")
            == RunResult(cluster, in: directory, tag: "c1"))
        #expect(try RunResult(cluster + ["--shard", "1/2", "--workers", "3"], in: directory, tag: "s3")
            == RunResult(cluster + ["--shard", "1/2"], in: directory, tag: "s1"))

        let original = try String(contentsOfFile: "\(Repository.pcaps)/service-demo.yaml", encoding: .utf8)
        try original.replacingOccurrences(of: "10.244.2.11", with: "10.244.5.11")
            .write(toFile: directory.file("step.yaml"), atomically: true, encoding: .utf8)
        let rolling = ["-r", Repository.capture("service-demo"), "-f", "\(Repository.pcaps)/service-demo.yaml",
                       "--apply", "+0.12=\(directory.file("step.yaml"))", "--no-follow-capture", "--lb", "random"]
        let one = try RunResult(rolling, in: directory, tag: "r1")
        let changes = try #require(one.stats["changes"] as? [[String: Any]])
        #expect(changes.count == 1 && (changes[0]["tcpEntriesOrphaned"] as? Int ?? 0) >= 2)
        #expect(try RunResult(rolling + ["--workers", "3"], in: directory, tag: "r3") == one,
                "the changes' counts add up over the workers")
    }

    @Test("a capture of many batches: workers give one worker's output")
    func manyBatches() throws {
        let directory = try TemporaryDirectory()
        let generated = try runProcess(Repository.root + "/tools/gen-capture", [
            directory.file("big.pcap"), directory.file("big.yaml"), "--packets", "30000", "--flows", "600",
        ])
        try #require(generated.status == 0, "\(generated.standardError)")
        let common = ["-r", directory.file("big.pcap"), "-f", directory.file("big.yaml"), "--lb", "maglev",
                      "--no-follow-capture"]
        let one = try RunResult(common, in: directory, tag: "one")
        let two = try RunResult(common + ["--workers", "2"], in: directory, tag: "two")
        #expect(two == one)
        #expect(two.workerPackets.allSatisfy { $0 > 10000 }, "\(two.workerPackets)")
    }

    @Test("--workers is checked: at least 1, and at most 256 with the --shard count")
    func validation() throws {
        for arguments in [["--workers", "0"], ["--workers", "129", "--shard", "0/2"]] {
            let run = try runProcess(Repository.binary, ["rewrite", "-r", Repository.capture("service-demo"), "-w",
                                                         "/dev/null", "-f", "\(Repository.pcaps)/service-demo.yaml"]
                + arguments)
            #expect(run.status == 2 && run.standardError.contains("--workers"), "\(run.standardError)")
        }
    }
}
