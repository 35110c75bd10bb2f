import ArgumentParser
import Conntrack
import Dataplane
import Foundation
import PacketIO
import PacketWire
import Pipeline

/// `svcplane rewrite`: a capture in, the Service dataplane applied, a capture out.
struct Rewrite: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Rewrite a capture as the node's Service dataplane would (DNAT, conntrack, reverse NAT).")

    @Option(name: .customShort("r"), help: ArgumentHelp("Input capture (pcap or pcapng).", valueName: "file"))
    var input: String

    @Option(name: .customShort("w"), help: ArgumentHelp(
        "Output capture (pcap, with the input's link type and timestamp precision).", valueName: "file"))
    var output: String

    @OptionGroup var cluster: ManifestOptions
    @OptionGroup var program: ProgramOptions
    @OptionGroup var capture: CaptureOptions

    @Option(name: .customLong("conntrack-dump"), help: ArgumentHelp(
        "Write the conntrack table after the last packet (or at --conntrack-at) to a file, or - for stdout.",
        valueName: "file|-"))
    var conntrackDump: String?

    @OptionGroup var listingTime: ListingTimeOption

    @Option(name: .customShort("o"), help: "Format of the conntrack dump and the statistics: text or json.")
    var format: OutputFormat = .text

    @Option(help: ArgumentHelp("Write run statistics to a file, or - for stdout.", valueName: "file|-"))
    var stats: String?

    @Flag(help: "Print neither the progress (shown on a terminal for runs over a second) nor the summary on stderr.")
    var quiet = false

    @Flag(help: ArgumentHelp(
        "Print on stderr how long the run took: setting up (reading the manifests) and the packets, with "
            + "nanoseconds per packet (wall clock, for measuring only)."))
    var timing = false

    func validate() throws {
        try program.validateMasqueradeSource()
        let inputs = ([input] + cluster.manifests).compactMap { FileIdentity(path: $0) }
        for (flag, path) in [("-w", output), ("--stats", stats), ("--conntrack-dump", conntrackDump)] {
            guard let path, path != "-", let identity = FileIdentity(path: path), identity.isRegularFile else {
                continue
            }
            if inputs.contains(identity) {
                throw ValidationError("\(flag) names an input file; svcplane will not overwrite its input.")
            }
        }
        let outputs = [output, stats, conntrackDump].compactMap { $0 }.filter { $0 != "-" }
        if Set(outputs.map { URL(fileURLWithPath: $0).standardizedFileURL.path }).count != outputs.count {
            throw ValidationError("-w, --stats and --conntrack-dump must name different files.")
        }
    }

    func run() throws {
        SignalFlags.installInterruption()
        let clock = ContinuousClock()
        let start = clock.now
        let runner = try CaptureRun(input: input, cluster: cluster, program: program, capture: capture)
        let setUp = clock.now
        let writer: PcapWriter
        do {
            writer = try PcapWriter(path: output, datalink: runner.reader.datalink,
                                    snapLength: runner.reader.snapLength, precision: runner.reader.filePrecision,
                                    expectedSize: runner.reader.fileSize)
        } catch { throw CommandFailure(message: error.description) }
        let counts = try runner.run(writer: writer, quiet: quiet)
        if timing { Output.standardError(Self.timingLine(setUp: setUp - start, packets: clock.now - setUp,
                                                          count: counts.packetsRead)) }
        if !quiet || stats != nil {
            let summary = RunSummary(counts: counts, programs: runner.programs)
            if !quiet { Output.standardError(summary.text) }
            if let stats { try Output.write(format == .json ? JSON.encode(summary) : summary.text, to: stats) }
        }
        if let conntrackDump { try runner.dumpConntrack(to: conntrackDump, format: format, at: listingTime) }
        if counts.interrupted {
            Output.standardError("svcplane: interrupted after \(counts.packetsRead) packets; "
                + "\(counts.packetsWritten) written to \(output)\n")
            throw ExitCode(130)
        }
    }
}

extension Rewrite {
    /// `timing: set-up 2.714 s, packets 0.452 s (452 ns per packet)`.
    static func timingLine(setUp: Duration, packets: Duration, count: Int) -> String {
        let perPacket = count > 0 ? packets.seconds * 1e9 / Double(count) : 0
        return String(format: "timing: set-up %.3f s, packets %.3f s (%.0f ns per packet)\n", setUp.seconds,
                      packets.seconds, perPacket)
    }
}

/// `svcplane conntrack`: the conntrack table after a capture, as `conntrack -L` shows it.
struct ConntrackCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "conntrack",
        abstract: "Print the conntrack table after the last packet of a capture (conntrack -L format or JSON).")

    @Option(name: .customShort("r"), help: ArgumentHelp("Input capture (pcap or pcapng).", valueName: "file"))
    var input: String

    @OptionGroup var cluster: ManifestOptions
    @OptionGroup var program: ProgramOptions
    @OptionGroup var capture: CaptureOptions

    @Option(name: .customShort("o"), help: "Output format: text (conntrack -L) or json.")
    var format: OutputFormat = .text

    @OptionGroup var listingTime: ListingTimeOption

    func validate() throws { try program.validateMasqueradeSource() }

    func run() throws {
        let runner = try CaptureRun(input: input, cluster: cluster, program: program, capture: capture)
        _ = try runner.run(writer: nil as PcapWriter?)
        try runner.dumpConntrack(to: "-", format: format, at: listingTime)
    }
}

/// A capture, the programs built for it (one per worker), and running one through the others. A run is kept to the
/// process's exit, which gives its memory back at once: freeing its state object by object (the programs' tables,
/// an array for each client whose replies were followed) would change nothing and cost time at the end of every
/// run (8 ms of a 0.18 s run of 20,000 connections here).
final class CaptureRun {
    let reader: PcapReader
    var programs: [ServiceLoadBalancer]
    let changes: [ScheduledChange]
    let partition: ConnectionPartition?
    nonisolated(unsafe) private static var keptToExit: [CaptureRun] = []

    init(input: String, cluster: ManifestOptions, program: ProgramOptions, capture: CaptureOptions) throws {
        let table = try cluster.serviceTable()
        let changes = try capture.scheduledChanges()
        self.changes = changes
        var configuration = program.configuration
        let selection = capture.shard.flatMap(CaptureOptions.parseShard)
        let divided = selection != nil || capture.workers > 1
        // Needed to shard, to share the work and to masquerade (its ports follow the shards); the same whatever
        // the shards and workers, so that masquerade ports do not depend on them.
        let sharding = divided || configuration.clusterCIDR != nil
            ? FlowSharding(tables: [table] + changes.map(\.table), nodeAddresses: configuration.nodeAddresses) : nil
        configuration.sharding = sharding
        partition = divided ? sharding.map {
            ConnectionPartition(sharding: $0, shardIndex: selection?.index ?? 0, shardCount: selection?.count ?? 1,
                                workers: capture.workers)
        } : nil
        do {
            reader = try PcapReader(path: input)
            // The replies are read ahead from a regular file only (the reader knows its size): a pipe is read once.
            let observed = capture.followCapture && reader.fileSize != nil
                ? try CaptureRewriter.followReplies(path: input, tables: [table] + changes.map(\.table),
                                                    udpTimeoutSeconds: configuration.timeouts.udp)
                : nil
            let program = ServiceLoadBalancer(table: table, linkType: LinkType(dlt: reader.datalink),
                                              configuration: configuration, observed: observed)
            programs = Array(repeating: program, count: capture.workers)
        } catch { throw CommandFailure(message: error.description) }
        Self.keptToExit.append(self)
    }

    /// Runs the capture through the program; progress on stderr unless `quiet` (and only on a terminal).
    func run(writer: (some FrameSink)?, quiet: Bool = false) throws -> RewriteCounts {
        let meter = ProgressMeter(reader: reader, quiet: quiet)
        defer { meter?.finish() }
        do {
            return try CaptureRewriter.run(reader: reader, writer: writer, programs: &programs, changes: changes,
                                           partition: partition,
                                           progress: meter.map { meter in { meter.update(packetsRead: $0) } })
        } catch let partial as PartialRewrite {
            let written = partial.counts.packetsWritten
            let note = writer.map { " (\(written) packets before it were written to \($0.destination))" } ?? ""
            throw CommandFailure(message: partial.error.description + note)
        } catch let error as CaptureError {
            throw CommandFailure(message: error.description)
        }
    }

    /// Writes the conntrack table as it stands after the last packet, or at the time `listing` names.
    func dumpConntrack(to destination: String, format: OutputFormat, at listing: ListingTimeOption) throws {
        let lastPacket = programs.map(\.clock).max() ?? 0
        let records = ConntrackDump.records(of: programs, at: listing.nanoseconds(lastPacket: lastPacket))
        try Output.write(ConntrackDump.render(records, format: format), to: destination)
        if format == .text && destination == "-" {
            Output.standardError(ConntrackRecord.summaryLine(count: records.count) + "\n")
        }
    }
}

/// A file's device and inode: two paths name the same file when these are equal.
struct FileIdentity: Equatable {
    let device: UInt64
    let inode: UInt64
    /// False for pipes and devices, which can be read only once.
    let isRegularFile: Bool

    init?(path: String) {
        var status = stat()
        guard stat(path, &status) == 0 else { return nil }
        device = UInt64(status.st_dev)
        inode = UInt64(status.st_ino)
        isRegularFile = status.st_mode & S_IFMT == S_IFREG
    }
}

/// Writing results to stdout, stderr or a file.
enum Output {
    static func standardError(_ text: String) { FileHandle.standardError.write(Data(text.utf8)) }
    static func standardOutput(_ text: String) { FileHandle.standardOutput.write(Data(text.utf8)) }

    static func write(_ text: String, to destination: String) throws {
        if destination == "-" {
            standardOutput(text)
            return
        }
        guard FileManager.default.createFile(atPath: destination, contents: Data(text.utf8)) else {
            throw CommandFailure(message: "\(destination): cannot write file")
        }
    }
}
