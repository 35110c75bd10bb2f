import Cluster
import Foundation
import PacketWire

/// The backends a capture's replies show (`ObservedBackends`), shared by a run's programs and filled while they
/// run: a reader ahead of them (on a thread of its own) records sightings, and a program asking about a new
/// connection waits until the sightings recorded so far decide it, or the capture has been read to its end. The
/// answer is the one a complete first pass would give, whatever the threads' timing.
public final class CaptureReplies: @unchecked Sendable {
    /// Guards `observed`, `complete` and `decidedCount`.
    private let condition = NSCondition()
    private var observed: ObservedBackends
    private var complete = false
    private var decidedCount = 0
    /// An unchanging copy, to decode frames without the lock.
    private let decoder: ObservedBackends

    /// Replies from the endpoints of any of `tables` (the initial state and every `--apply` state).
    public init(tables: [ServiceTable], udpTimeoutSeconds: Int64) {
        observed = ObservedBackends(tables: tables, udpTimeoutSeconds: udpTimeoutSeconds)
        decoder = observed
    }

    /// The sighting a frame is, if it comes from a backend.
    public func sighting(in frame: UnsafeMutableRawBufferPointer, linkType: LinkType, wireLength: Int,
                         timestamp: Int64) -> ObservedBackends.Sighting?
    {
        decoder.sighting(in: frame, linkType: linkType, wireLength: wireLength, timestamp: timestamp)
    }

    /// Records sightings, in capture order, and wakes the programs waiting for them.
    public func record(_ sightings: [ObservedBackends.Sighting]) {
        condition.lock()
        for sighting in sightings { observed.record(sighting) }
        condition.broadcast()
        condition.unlock()
    }

    /// The capture has been read: what is not decided now never will be.
    public func finish() {
        condition.lock()
        complete = true
        condition.broadcast()
        condition.unlock()
    }

    /// The position in `entry.backends` of the backend among `candidates` that answered `flow`'s client next
    /// after `time`; nil when the whole capture holds no such reply.
    func choice(for flow: FlowKey, at time: Int64, entry: ServicePortEntry, among candidates: [Int]) -> Int? {
        condition.lock()
        defer { condition.unlock() }
        while true {
            if let position = observed.choice(for: flow, at: time, entry: entry, among: candidates) {
                decidedCount += 1
                return position
            }
            if complete { return nil }
            condition.wait()
        }
    }

    /// Whether the capture has been read to its end.
    public var isComplete: Bool {
        condition.lock()
        defer { condition.unlock() }
        return complete
    }

    /// Connections whose backend came from the capture.
    public var decided: Int {
        condition.lock()
        defer { condition.unlock() }
        return decidedCount
    }

    /// Whether any backend answered in what has been read.
    public var isEmpty: Bool {
        condition.lock()
        defer { condition.unlock() }
        return observed.isEmpty
    }
}
