import Cluster
import Foundation
import PacketWire

/// The backends a capture's replies show (`ObservedBackends`), shared by a run's programs and filled while they
/// run, in capture order: the run records the sightings of each batch of frames it reads, ahead of the programs.
/// A program asking about a new connection waits until the sightings recorded so far decide it, or the capture
/// has been read a horizon past its clock, or to its end. When the run's reading is held up (it waits for a
/// program to move on) and a program still waits, a look-ahead reading of the capture (`lookAhead`, started
/// once) records the frames past those recorded, as far as the programs waiting need; not at once, since the
/// reading may be held by another program that is only behind (`lookAheadGrace`). The answer is the one a
/// complete first pass would give, whatever the threads' timing, and so is what every program reached lets
/// the replies forget (`forget(before:)`).
public final class CaptureReplies: @unchecked Sendable {
    /// An unchanging copy, for the passes over the capture to look at and decode frames with, without the lock
    /// (`ObservedBackends.candidateOffset` and `sighting`).
    public let decoder: ObservedBackends
    /// Guards everything below it.
    private let condition = NSCondition()
    private var observed: ObservedBackends
    /// Frames from the capture's start whose sightings are recorded (each frame's once, in order), and the
    /// capture clock (the latest timestamp) through them.
    private var scanned = 0
    private var scannedClock = Int64.min
    private var complete = false
    /// Since when the run's reading has been held up, if it is.
    private var heldSince: Date?
    /// Starts the look-ahead reading; nil once started.
    private var lookAhead: (@Sendable (CaptureReplies) -> Void)?
    private var lookAheadStarted = false
    /// The capture clock the look-ahead reading is to record past, for the programs waiting.
    private var wanted = Int64.min

    /// Replies from the endpoints of any of `tables` (the initial state and every `--apply` state). `lookAhead`
    /// starts a reading of the capture, on a thread of its own, that records in these replies the sightings of
    /// the frames past those recorded whenever `awaitLookAheadNeed` lets it, and finishes them at the capture's
    /// end; without it, whoever records must finish.
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

    /// Records the sightings of the frames before number `frames`, through which the capture clock is `clock` (in
    /// capture order, from frames that follow on from those recorded, or overlap them: a frame is recorded once),
    /// and wakes the programs waiting.
    public func record(_ sightings: [ObservedBackends.Sighting], throughFrame frames: Int, clock: Int64) {
        locked {
            for sighting in sightings where sighting.frame >= scanned { observed.record(sighting) }
            if frames > scanned { (scanned, scannedClock) = (frames, clock) }
        }
        condition.broadcast()
    }

    /// Every program has reached capture clock `clock`: forgets what none of them can ask about again.
    public func forget(before clock: Int64) {
        locked { observed.forget(before: clock) }
    }

    /// For the look-ahead reading, between two hand-overs of sightings: waits while the programs need no more
    /// recorded. False once the capture has been read.
    public func awaitLookAheadNeed() -> Bool {
        locked {
            while !complete, scannedClock > wanted { condition.wait() }
            return !complete
        }
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

    /// The position in `entry.backends` of the backend among `candidates` whose reply answered `flow`'s client
    /// first at `time` or after, for a program at capture clock `clock` (see `ObservedBackends.choice`); nil when
    /// the capture holds no such reply.
    func choice(for flow: FlowKey, at time: Int64, clock: Int64, entry: ServicePortEntry,
                among candidates: [Int]) -> Int?
    {
        let need = clock + decoder.horizon  // no reply recorded past this counts
        return locked {
            while true {
                if let position = observed.choice(for: flow, at: time, clock: clock, entry: entry,
                                                  among: candidates)
                {
                    return position
                }
                if complete || scannedClock > need { return nil }
                if let heldSince {
                    let deadline = heldSince.addingTimeInterval(Self.lookAheadGrace)
                    if Date() < deadline {
                        _ = condition.wait(until: deadline)
                        continue
                    }
                    if let start = lookAhead {
                        lookAhead = nil
                        lookAheadStarted = true
                        start(self)
                    }
                    if need > wanted {
                        wanted = need
                        condition.broadcast()
                    }
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

    /// Observations held: those of the connections from a horizon behind every program to as far as the capture
    /// has been read.
    public var count: Int { locked { observed.count } }
}
