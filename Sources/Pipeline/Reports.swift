import Cluster
import Conntrack
import Dataplane
import Foundation
import PacketWire

/// Output formats of dumps and statistics (`-o`).
public enum OutputFormat: String, Sendable, CaseIterable {
    case text
    case json
}

/// The conntrack table rendered as `conntrack -L` prints it, or as JSON.
public enum ConntrackDump {
    /// Records of the live entries at the programs' clock (the last packet's time), or at a later `now` (a live
    /// node's wall clock), in creation order: the tables of a run's workers listed as one.
    public static func records(of programs: [ServiceLoadBalancer], at now: Int64 = 0) -> [ConntrackRecord] {
        let time = programs.reduce(now) { max($0, $1.clock) }
        return programs.flatMap { $0.conntrack.entries(at: time) }.sorted { $0.serial < $1.serial }
            .map { ConntrackRecord($0, now: time) }
    }

    /// The dump's body: one `conntrack -L` line per entry, or a JSON array.
    public static func render(_ records: [ConntrackRecord], format: OutputFormat) -> String {
        switch format {
        case .text: return records.map { $0.line + "\n" }.joined()
        case .json: return JSON.encode(records)
        }
    }
}

/// What happened in a run, for people (text on stderr) and programs (JSON).
public struct RunSummary: Encodable, Sendable {
    public struct BackendLine: Encodable, Sendable {
        public var endpoint: String
        public var pod: String?
        public var ready: Bool
        public var connections: Int
        public var packets: Int
    }

    public struct ServiceLine: Encodable, Sendable {
        public var service: String
        public var frontend: String
        public var backends: [BackendLine]
    }

    public var packetsRead: Int
    public var packetsWritten: Int
    /// Frames left to the other shards of a `--shard` run.
    public var otherShards: Int
    /// Packets each worker's program ran (`--workers`; one number for one worker).
    public var workerPackets: [Int]
    public var generatedReplies: Int
    public var dropped: Int
    public var verdicts: [String: Int]
    public var translatedClientToPod: Int
    public var translatedPodToClient: Int
    /// ICMP errors about tracked connections, translated (RELATED).
    public var translatedICMPErrors: Int
    public var newConnections: Int
    /// New connections whose backend the capture's own replies decided (nil when the run did not follow them).
    public var choicesFromCapture: Int?
    public var rejected: Int
    public var masqueraded: Int
    public var passed: [String: Int]
    public var malformed: [String: Int]
    public var drops: [String: Int]
    public var conntrackEntries: Int
    public var conntrackEarlyDrops: Int
    public var services: [ServiceLine]
    /// Service ports that exist but are not load balanced (headless, ExternalName, IPv6-only, SCTP).
    public var notLoadBalanced: [String]
    /// Cluster changes applied during the run (`--apply`).
    public var changes: [ClusterChange]

    /// The summary of a run by `programs`, one per worker (sharing the tables and cluster changes).
    public init(counts: RewriteCounts, programs: [ServiceLoadBalancer]) {
        let program = programs[0]
        let stats = programs.dropFirst().reduce(program.stats) { $0 + $1.stats }
        packetsRead = counts.packetsRead
        packetsWritten = counts.packetsWritten
        otherShards = counts.otherShards
        workerPackets = programs.map(\.stats.packets)
        generatedReplies = counts.generated
        dropped = counts.dropped
        verdicts = Dictionary(uniqueKeysWithValues: XDPAction.allCases.map { ($0.name, stats.count(of: $0)) })
        translatedClientToPod = stats.translatedOriginal
        translatedPodToClient = stats.translatedReply
        translatedICMPErrors = stats.translatedRelated
        newConnections = stats.newConnections
        choicesFromCapture = program.observed.map { _ in stats.connectionsFromCapture }
        rejected = stats.rejected
        masqueraded = stats.masqueraded
        passed = Dictionary(uniqueKeysWithValues: PassReason.allCases.map { ($0.name, stats.count(passed: $0)) })
        malformed = Dictionary(uniqueKeysWithValues: WireError.allCases.compactMap {
            stats.count(malformed: $0) > 0 ? ($0.name, stats.count(malformed: $0)) : nil
        })
        drops = Dictionary(uniqueKeysWithValues: DropReason.allCases.map { ($0.name, stats.count(dropped: $0)) })
        conntrackEntries = programs.reduce(0) { $0 + $1.conntrack.liveCount(at: $1.clock) }
        conntrackEarlyDrops = programs.reduce(0) { $0 + $1.conntrack.earlyDrops }
        notLoadBalanced = program.table.unservedPorts
        changes = counts.changes
        services = program.table.entries.enumerated().map { position, entry in
            ServiceLine(service: entry.name.description, frontend: entry.frontend.description,
                        backends: entry.backends.enumerated().map { backendPosition, backend in
                            let global = program.backendIndex.global(entry: position, backend: backendPosition)
                            return BackendLine(endpoint: backend.description, pod: backend.podName,
                                               ready: backend.ready,
                                               connections: stats.backendConnections[global],
                                               packets: stats.backendPackets[global])
                        })
        }
    }

    /// Past this many service ports the text lists only those that saw traffic.
    static let servicesListedInFull = 50

    /// The human summary printed on stderr at the end of a run.
    public var text: String {
        var lines: [String] = []
        let shards = otherShards > 0 ? ", \(otherShards) left to other shards" : ""
        lines.append("packets: \(packetsRead) read, \(packetsWritten) written (\(generatedReplies) generated, "
            + "\(dropped) dropped\(shards))")
        if workerPackets.count > 1 {
            lines.append("workers: \(workerPackets.count), packets each: "
                + workerPackets.map(String.init).joined(separator: ", "))
        }
        lines.append("verdicts: " + XDPAction.allCases.map { "\($0.name) \(verdicts[$0.name] ?? 0)" }
            .joined(separator: ", "))
        lines.append("translated: \(translatedClientToPod) client->pod (DNAT), "
            + "\(translatedPodToClient) pod->client (reverse NAT), \(translatedICMPErrors) ICMP errors (RELATED)")
        let followed = choicesFromCapture.map { " (\($0) on the backend the capture shows)" } ?? ""
        lines.append("connections: \(newConnections) new\(followed), "
            + "\(rejected) rejected (no endpoints), \(masqueraded) masqueraded, "
            + "\(conntrackEntries) in conntrack at end, \(conntrackEarlyDrops) early-dropped")
        lines.append("passed unchanged: " + PassReason.allCases.map { "\($0.name) \(passed[$0.name] ?? 0)" }
            .joined(separator: ", "))
        if !malformed.isEmpty {
            lines.append("malformed: " + malformed.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }
                .joined(separator: ", "))
        }
        lines.append("dropped: " + DropReason.allCases.map { "\($0.name) \(drops[$0.name] ?? 0)" }
            .joined(separator: ", "))
        // A large cluster lists the service ports that saw traffic and counts the others (the JSON has them all).
        let listed = services.count <= Self.servicesListedInFull ? services
            : services.filter { service in service.backends.contains { $0.packets > 0 } }
        for service in listed {
            lines.append("service \(service.service) \(service.frontend):")
            if service.backends.isEmpty { lines.append("  (no endpoints)") }
            for backend in service.backends {
                let pod = backend.pod.map { " \($0)" } ?? ""
                let readiness = backend.ready ? "" : " (not ready)"
                lines.append("  \(backend.endpoint)\(pod)\(readiness): \(backend.connections) connections, "
                    + "\(backend.packets) packets")
            }
        }
        if listed.count < services.count {
            lines.append("\(services.count - listed.count) other service ports saw no traffic (all are in --stats)")
        }
        for port in notLoadBalanced { lines.append("service \(port)") }
        for change in changes {
            let fraction = String(change.time % 1_000_000_000 + 1_000_000_000).dropFirst()
            let seconds = "\(change.time / 1_000_000_000).\(fraction)"
            lines.append("change at \(seconds) from \(change.source): \(change.udpEntriesDeleted) UDP entries deleted, "
                + "\(change.tcpEntriesOrphaned) TCP connections left on removed endpoints")
            for moved in change.moved {
                let endpoints = moved.removed.map { "-\($0)" } + moved.added.map { "+\($0)" }
                lines.append("  \(moved.servicePort): \(endpoints.joined(separator: " "))")
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }
}

/// Stable, pretty JSON with sorted keys: the same input always gives the same bytes.
public enum JSON {
    public static func encode(_ value: some Encodable) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        guard let data = try? encoder.encode(value) else { return "null\n" }
        return String(decoding: data, as: UTF8.self) + "\n"
    }
}
