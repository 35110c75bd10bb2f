#if canImport(Glibc)
import Dataplane
import Foundation
import Glibc
import PacketIO
import Pipeline
import Synchronization

/// Set from a SIGUSR1 handler: write the conntrack dump now.
public enum DumpRequest {
    public static let requested = Atomic<Bool>(false)
}

/// Where and how the live conntrack table is written: every second, on SIGUSR1 and at the end.
public struct ConntrackDumpTarget: Sendable {
    public var path: String
    public var format: OutputFormat

    public init(path: String, format: OutputFormat) {
        self.path = path
        self.format = format
    }

    /// Replaces the file in one step (written aside, then renamed), so a reader never sees half a table.
    func write(_ program: ServiceLoadBalancer, now: Int64) throws(CaptureError) {
        let text = ConntrackDump.render(ConntrackDump.records(of: [program], at: now), format: format)
        do { try text.write(toFile: path, atomically: true, encoding: .utf8) } catch {
            throw CaptureError(path: path, message: "cannot write the conntrack dump: \(error.localizedDescription)")
        }
    }
}

/// The live node: one event loop (poll) over the TAP devices, feeding every frame to a `NodeForwarder` and
/// writing what it sends to the TAPs (and to a capture, if asked). Runs until `Interruption.requested` is set.
public final class NodeRunner {
    private let devices: [TapDevice]
    public let forwarder: NodeForwarder
    private let recorder: PcapWriter?
    private let dump: ConntrackDumpTarget?
    /// Frames read from one device before the loop turns to the next, so one busy TAP cannot starve the rest.
    private static let readBudget = 64
    private static let tickInterval: Int64 = 1_000_000_000

    /// Problems met while running that did not stop the node (a TAP gone, a dump that could not be written).
    public private(set) var warnings: [String] = []

    public init(devices: [TapDevice], forwarder: NodeForwarder, recorder: PcapWriter?, dump: ConntrackDumpTarget?) {
        precondition(devices.count == forwarder.interfaces.count)
        self.devices = devices
        self.forwarder = forwarder
        self.recorder = recorder
        self.dump = dump
    }

    /// Wall-clock time in nanoseconds since the epoch: a live node's packet timestamps.
    static func now() -> Int64 {
        var time = timespec()
        clock_gettime(CLOCK_REALTIME, &time)
        return Int64(time.tv_sec) * 1_000_000_000 + Int64(time.tv_nsec)
    }

    /// Forwards until interrupted, then writes the last dump and closes the capture. `ready` is called once the
    /// first dump is written, just before the first frame is read.
    public func run(ready: () -> Void = {}) throws {
        var transmitter = TapTransmitter(devices: devices, recorder: recorder)
        var watched = devices.map { pollfd(fd: $0.descriptor, events: Int16(POLLIN), revents: 0) }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 65_536, alignment: 16)
        defer { buffer.deallocate() }
        try dump?.write(forwarder.program, now: Self.now())  // a bad path fails now, not a second later
        ready()
        var nextTick = Self.now() + Self.tickInterval

        while !Interruption.requested.load(ordering: .relaxed) {
            let timeout = Int32(clamping: max(0, (nextTick - Self.now()) / 1_000_000) + 1)
            if poll(&watched, nfds_t(watched.count), timeout) < 0 && errno != EINTR {
                throw TapError(device: devices.map(\.name).joined(separator: ","),
                               message: "poll failed: \(String(cString: strerror(errno)))")
            }
            for position in watched.indices where watched[position].revents != 0 {
                read(from: position, into: buffer, watched: &watched, via: &transmitter)
            }
            let now = Self.now()
            if now >= nextTick {
                transmitter.now = now
                forwarder.expireResolutions(at: now, via: &transmitter)
                writeDump(now: now)
                flushRecorder()
                nextTick = now + Self.tickInterval
            }
            if DumpRequest.requested.exchange(false, ordering: .relaxed) { writeDump(now: now) }
        }
        writeDump(now: Self.now())
        try recorder?.close()
    }

    /// Reads the frames waiting on one device, up to the budget. A device that fails (its interface deleted)
    /// is no longer watched; the others go on.
    private func read(from position: Int, into buffer: UnsafeMutableRawBufferPointer, watched: inout [pollfd],
                      via transmitter: inout TapTransmitter)
    {
        for _ in 0..<Self.readBudget {
            let length: Int
            do {
                guard let read = try devices[position].read(into: buffer) else { return }
                length = read
            } catch {
                warnings.append("\(error.description); no longer watched")
                watched[position].fd = -1  // poll skips negative descriptors
                return
            }
            transmitter.now = Self.now()
            forwarder.receive(UnsafeMutableRawBufferPointer(rebasing: buffer[0..<length]), on: position,
                              at: transmitter.now, via: &transmitter)
        }
    }

    private func writeDump(now: Int64) {
        guard let dump else { return }
        do { try dump.write(forwarder.program, now: now) } catch {
            if warnings.last != error.description { warnings.append(error.description) }
        }
    }

    private func flushRecorder() {
        guard let recorder else { return }
        do { try recorder.flush() } catch {
            if warnings.last != error.description { warnings.append(error.description) }
        }
    }
}

/// Writes the node's frames to its TAP devices, and to the capture of what it sent.
struct TapTransmitter: FrameTransmitter {
    let devices: [TapDevice]
    let recorder: PcapWriter?
    /// Timestamp of the frames being sent.
    var now: Int64 = 0

    mutating func transmit(_ frame: UnsafeRawBufferPointer, on interface: Int) -> Bool {
        guard devices[interface].write(frame) else { return false }
        recorder?.write(frame, wireLength: frame.count, timestamp: now)
        return true
    }
}
#endif
