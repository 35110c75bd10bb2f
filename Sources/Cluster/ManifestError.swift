/// A manifest problem: the file, where in it, and what is wrong, printed as one line.
public struct ManifestError: Error, CustomStringConvertible, Sendable, Equatable {
    /// File and document (and list item) the problem is in, e.g. `c.yaml: document 2: items[3]`.
    public let origin: String
    /// Field path inside the object, e.g. `spec.ports[0].port`; empty for the whole document.
    public let field: String
    public let message: String

    public init(origin: String, field: String = "", message: String) {
        self.origin = origin
        self.field = field
        self.message = message
    }

    public var description: String {
        field.isEmpty ? "\(origin): \(message)" : "\(origin): \(field): \(message)"
    }
}

/// A decoded object and where it came from, for error messages.
public struct Located<Object: Sendable>: Sendable {
    public let object: Object
    /// `FILE: document N` plus `: items[i]` for an item of a `kind: List`.
    public let origin: String
}
