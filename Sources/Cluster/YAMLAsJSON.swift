import Yams

/// Writes parsed YAML as JSON text, reading scalars as Kubernetes reads YAML (through JSON): plain integers,
/// booleans and nulls are typed, every other scalar is a string. Decoding JSON with Foundation is many times
/// faster than decoding the YAML node tree, which matters for clusters of thousands of Services.
enum YAMLAsJSON {
    /// Appends `node` as JSON to `text`.
    static func append(_ node: Node, to text: inout [UInt8]) {
        switch node {
        case .scalar(let scalar):
            appendScalar(scalar, to: &text)
        case .mapping(let mapping):
            text.append(UInt8(ascii: "{"))
            for (index, pair) in mapping.enumerated() {
                if index > 0 { text.append(UInt8(ascii: ",")) }
                appendString(pair.key.string ?? "", to: &text)
                text.append(UInt8(ascii: ":"))
                append(pair.value, to: &text)
            }
            text.append(UInt8(ascii: "}"))
        case .sequence(let sequence):
            text.append(UInt8(ascii: "["))
            for (index, item) in sequence.enumerated() {
                if index > 0 { text.append(UInt8(ascii: ",")) }
                append(item, to: &text)
            }
            text.append(UInt8(ascii: "]"))
        case .alias:
            text.append(contentsOf: "null".utf8)  // the parser resolves aliases; none is left in its nodes
        }
    }

    private static func appendScalar(_ scalar: Node.Scalar, to text: inout [UInt8]) {
        let value = scalar.string
        guard scalar.style == .plain || scalar.style == .any else { return appendString(value, to: &text) }
        switch value {
        case "", "~", "null", "Null", "NULL":
            text.append(contentsOf: "null".utf8)
        case "true", "True", "TRUE":
            text.append(contentsOf: "true".utf8)
        case "false", "False", "FALSE":
            text.append(contentsOf: "false".utf8)
        case _ where isInteger(value):
            text.append(contentsOf: value.utf8)
        default:
            appendString(value, to: &text)
        }
    }

    /// A JSON integer: an optional minus and digits without a leading zero, at most 18 of them.
    private static func isInteger(_ value: String) -> Bool {
        let digits = value.utf8.first == UInt8(ascii: "-") ? value.utf8.dropFirst() : value.utf8[...]
        return !digits.isEmpty && digits.count <= 18 && digits.allSatisfy { (48...57).contains($0) }
            && (digits.count == 1 || digits.first != UInt8(ascii: "0"))
    }

    private static let hexDigits = Array("0123456789abcdef".utf8)

    private static func appendString(_ value: String, to text: inout [UInt8]) {
        text.append(UInt8(ascii: "\""))
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"):
                text.append(UInt8(ascii: "\\"))
                text.append(byte)
            case 0..<0x20:
                text.append(contentsOf: "\\u00".utf8)
                text.append(hexDigits[Int(byte >> 4)])
                text.append(hexDigits[Int(byte & 0xF)])
            default:
                text.append(byte)
            }
        }
        text.append(UInt8(ascii: "\""))
    }
}
