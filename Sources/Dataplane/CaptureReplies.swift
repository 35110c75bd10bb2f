import Cluster
import Foundation
import PacketWire

/// The backends a capture's replies show (`ObservedBackends`), shared by a run's programs and filled while they
/// run, in capture order: the run records the sightings of each batch of frames it reads, ahead of the programs.
/// A program asking about a new connection waits until the sightings recorded so far decide it, or the capture
/// has been read to its end. When the run's reading is held up (it waits for a program to move on) and a program
/// still waits, a look-ahead reading of the capture (`lookAhead`, started once) records the frames past those
/// recorded, to the end; not at once, since the reading may be held by another program that is only behind
/// (`lookAheadGrace`). The answer is the one a complete first pass would give, whatever the threads' timing.
public final class CaptureReplies: @unchecked Sendable {
    /// Guards everything below it.
    private let condition = NSCondition()
    private var observed: ObservedBackends
    /// Frames from the capture's start whose sightings are recorded (each frame's once, in order).
    private var scanned = 0
    private var complete = false
    /// Since when the run's reading has been held up, if it is.
    private var heldSince: Date?
    /// Starts the look-ahead reading; nil once started.
    private var lookAhead: (@Sendable (CaptureReplies) -> Void)?
    private var lookAheadStarted = false
    /// An unchanging copy, to decode frames without the lock.
    private let decoder: ObservedBackends

    /// Replies from the endpoints of any of `tables` (the initial state and every `--apply` state). `lookAhead`
    /// starts a reading of the capture, on a thread of its own, that records in these replies the sightings of
    /// the frames past `scannedFrames`, and finishes; without it, whoever records must finish.
    public init(tables: [ServiceTable], udpTimeoutSeconds: Int64,
                lookAhead: (@Sendable (CaptureReplies) -> Void)? = nil)
    {
        observed = ObservedBackends(tables: tables, udpTimeoutSeconds: udpTimeoutSeconds)
        decoder = observed
        self.lookAhead = lookAhead
    }

    private func locked<T>(_ body: () -> T) -> T {
        condition.lock()
        defer { condition.unlock() }
        return body()
    }

    /// The sighting frame number `frame` (counted from 0) is, if it comes from a backend and may change what is
    /// recorded; `reported` holds the pairs of the TCP sightings this pass over the capture has returned (see
    /// `ObservedBackends.sighting`).
    public func sighting(in bytes: UnsafeMutableRawBufferPointer, frame: Int, linkType: LinkType, wireLength: Int,
                         timestamp: Int64, reported: inout ReportedPairs) -> ObservedBackends.Sighting?
    {
        decoder.sighting(in: bytes, frame: frame, linkType: linkType, wireLength: wireLength, timestamp: timestamp,
                         reported: &reported)
    }

    /// Frames from the capture's start whose sightings are recorded.
    public var scannedFrames: Int { locked { scanned } }

    /// Records the sightings of the frames before number `frames` (in capture order, from frames that follow
    /// on from those recorded, or overlap them: a frame is recorded once), and wakes the programs waiting.
    public func record(_ sightings: [ObservedBackends.Sighting], throughFrame frames: Int) {
        locked {
            for sighting in sightings where sighting.frame >= scanned { observed.record(sighting) }
            scanned = max(scanned, frames)
        }
        condition.broadcast()
    }

    /// The capture has been read: what is not decided now never will be.
    public func finish() {
        locked { complete = true }
        condition.broadcast()
    }

    /// Whether the run's reading waits for a program to move on (so that it records nothing more until then).
    public func setReadingHeld(_ held: Bool) {
        locked { heldSince = held ? Date() : nil }
        condition.broadcast()
    }

    /// The position in `entry.backends` of the backend among `candidates` that answered `flow`'s client next
    /// after `time`; nil when the whole capture holds no such reply.
    func choice(for flow: FlowKey, at time: Int64, entry: ServicePortEntry, among candidates: [Int]) -> Int? {
        locked {
            while true {
                if let position = observed.choice(for: flow, at: time, entry: entry, among: candidates) {
                    return position
                }
                if complete { return nil }
                if let heldSince, let start = lookAhead {
                    let deadline = heldSince.addingTimeInterval(Self.lookAheadGrace)
                    if Date() < deadline {
                        _ = condition.wait(until: deadline)
                        continue
                    }
                    lookAhead = nil
                    lookAheadStarted = true
                    start(self)
                }
                condition.wait()
            }
        }
    }

    /// How long a program waits for the sightings while the run's reading is held before it starts the look-ahead
    /// reading: long enough for another program that is only behind (on the batch the reading waits for) to catch
    /// up and let the reading go on. A reply further ahead than the reading can go, or none, costs this wait once.
    /// The clock decides only whether the capture is read a second time, never what is recorded.
    static let lookAheadGrace: TimeInterval = 0.02

    /// Whether the look-ahead reading was needed.
    var readAhead: Bool { locked { lookAheadStarted } }

    /// Whether the capture has been read to its end.
    public var isComplete: Bool { locked { complete } }

    /// Whether any backend answered in what has been read.
    public var isEmpty: Bool { locked { observed.isEmpty } }
}
