import Foundation
import Testing

@testable import Cluster

/// The JSON text a YAML stream stands for.
private func json(_ yaml: String) throws(YAMLAsJSON.Failure) -> String {
    String(decoding: try YAMLAsJSON.documents(of: yaml).json, as: UTF8.self)
}

@Suite("Reading YAML")
struct YAMLReadingTests {
    @Test("documents become one JSON array: block and flow styles, quoting, block scalars, empty documents")
    func documents() throws {
        #expect(try json("") == "[]")
        #expect(try json("a: 1\n---\n---\n[x, 'y', \"z\\n\"]\n...\n") == #"[{"a":1},null,["x","y","z\u000a"]]"#)
        #expect(try json("""
            kind: Service
            metadata:
              name: web  # a comment
              labels: {app: web, "quoted key": x}
            spec:
              ports:
              - port: 80
                targetPort: 08080
              - {port: -1, name: ~}
            data: |
              line "one"
              \tline two
            """) == #"[{"kind":"Service","metadata":{"name":"web","labels":{"app":"web","quoted key":"x"}},"#
            + #""spec":{"ports":[{"port":80,"targetPort":"08080"},{"port":-1,"name":null}]},"#
            + #""data":"line \"one\"\u000a\u0009line two"}]"#)
    }

    @Test("plain scalars are typed as Kubernetes reads YAML; quoted ones and keys stay strings")
    func scalars() throws {
        #expect(try json("[true, True, FALSE, null, Null, ~, '', 0, -7, 123456789012345678, 1234567890123456789]")
            == #"[[true,true,false,null,null,null,"",0,-7,123456789012345678,"1234567890123456789"]]"#)
        #expect(try json("['1', \"true\", 'null', +1, 007, 0x1F]") == #"[["1","true","null","+1","007","0x1F"]]"#)
        #expect(try json("{80: http, true: x, null: y}") == #"[{"80":"http","true":"x","null":"y"}]"#)
        #expect(try json("[!!str 80, !!str true, !custom 80]") == #"[["80","true",80]]"#, "!!str is the tag read")
    }

    @Test("anchors and aliases are resolved, as keys too")
    func aliases() throws {
        #expect(try json("""
            base: &ports [{port: 80}, {port: 443}]
            name: &n web
            copy: *ports
            *n : again
            labels: {app: *n}
            &k port: 80
            again: {*k : 81}
            """) == #"[{"base":[{"port":80},{"port":443}],"name":"web","copy":[{"port":80},{"port":443}],"#
            + #""web":"again","labels":{"app":"web"},"port":80,"again":{"port":81}}]"#)
    }

    @Test("what JSON cannot hold fails: repeated keys, keys that are lists or mappings, syntax errors")
    func failures() {
        #expect(throws: YAMLAsJSON.Failure.duplicateKey("a")) { try json("{a: 1, b: {a: 2}, 'a': 3}") }
        #expect(throws: YAMLAsJSON.Failure.duplicateKey("x")) { try json("m: &k x\nn: {x: 1, *k : 2}") }
        #expect(throws: YAMLAsJSON.Failure.keyNotScalar) { try json("? [a, b]\n: c") }
        #expect(throws: YAMLAsJSON.Failure.keyNotScalar) { try json("a: &l [1]\nb: {*l : 2}") }
        #expect(throws: YAMLAsJSON.Failure.syntax) { try json("a: [1, 2") }
        #expect(throws: YAMLAsJSON.Failure.undefinedAlias("nowhere")) { try json("a: *nowhere") }
        #expect(throws: YAMLAsJSON.Failure.undefinedAlias("x")) { try json("a: &x 1\n---\nb: *x") }  // per document
    }

    @Test("loading words each failure on one line naming the file")
    func loadErrors() {
        #expect(loadError("kind: Service\nmetadata: {name: a, name: b}")?
            .hasPrefix("test.yaml: not valid YAML: ") == true)
        #expect(loadError("kind: Service\nmetadata: {name: a, name: b}")?.contains("name") == true)
        #expect(loadError("kind: Service\nmetadata: {? [a]: b}") == "test.yaml: not valid YAML: "
            + "a mapping key is a list or a mapping (JSON and Kubernetes take only strings)")
        #expect(loadError("kind: ConfigMap\ndata: &d {a: 1}\n---\nkind: ConfigMap\ndata: *d")
            == "test.yaml: not valid YAML: alias *d refers to no anchor of its document")
    }

    @Test("aliases may expand a document as go-yaml lets them; a billion laughs fails at once")
    func aliasing() throws {
        var bomb = #"a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]"#
        for level in 1...9 {
            let aliases = Array(repeating: "*a\(level - 1)", count: 9).joined(separator: ",")
            bomb += "\na\(level): &a\(level) [\(aliases)]"
        }
        #expect(throws: YAMLAsJSON.Failure.excessiveAliasing) { try json(bomb) }
        #expect(throws: YAMLAsJSON.Failure.excessiveAliasing) { try json("small: 1\n---\n" + bomb) }
        // Three levels (729 copies of a word) are a 10 kB document that is 99.7% aliases: still too many.
        let lines = bomb.split(separator: "\n")
        #expect(throws: YAMLAsJSON.Failure.excessiveAliasing) { try json(lines[0...3].joined(separator: "\n")) }
        #expect(try json(lines[0...2].joined(separator: "\n")).count > 700, "two levels: under 1,000 nodes")
        // A large document may repeat a part of itself often: a pod template used by 2,000 items.
        let template = "&pod {kind: Pod, metadata: {labels: {app: web, tier: front}}, spec: {nodeName: n1}}"
        let items = ["- \(template)"] + Array(repeating: "- *pod", count: 2_000)
        #expect(try json("items:\n" + items.joined(separator: "\n")).count > 100_000)
        #expect(abs(YAMLAsJSON.allowedAliasShare(ofBytes: 22_000_000) - 0.545) < 1e-9, "halfway: halfway down")
    }

    @Test("a mapping of tens of thousands of keys reads in linear time; a repeated key among them is named briefly")
    func largeMappings() throws {
        let keys = (0..<60_000).map { "  key\($0): v\($0)" }
        let started = ContinuousClock.now
        let written = try json("data:\n" + keys.joined(separator: "\n"))
        // A generous bound (debug build, sanitizers): comparing each key with every other one takes many minutes.
        #expect(ContinuousClock.now - started < .seconds(30))
        #expect(written.hasPrefix(#"[{"data":{"key0":"v0","key1":"v1","#))
        #expect(written.hasSuffix(#""key59999":"v59999"}}]"#))
        for repeated in [40, 59_999] {
            #expect(throws: YAMLAsJSON.Failure.duplicateKey("key\(repeated)")) {
                try json("data:\n" + keys.joined(separator: "\n") + "\n  key\(repeated): again")
            }
        }
        let message = try #require(loadError("kind: ConfigMap\ndata:\n" + keys.joined(separator: "\n") + "\n  key7: x"))
        #expect(message.count < 400 && message.contains("'key7'") && message.hasSuffix("in line 10, column 3"),
                "\(message)")
    }

    /// A stream of `count` Services, each its own document, in the block style kubectl writes.
    private func services(_ count: Int, separator: String = "---\n") -> String {
        (0..<count).map { index in
            "kind: Service\nmetadata:\n  name: s\(index)\nspec:\n  clusterIP: 10.96.\(index / 250).\(index % 250 + 1)\n"
                + "  ports:\n  - port: 80\n"
        }.joined(separator: separator)
    }

    @Test("a stream is cut into runs only where a document starts, and the runs hold every document in order")
    func runs() {
        let stream = services(100)
        for count in [1, 2, 3, 8, 200] {
            let runs = YAMLStreamRuns.runs(of: stream, count: count)
            #expect(runs.count == min(count, 100))
            #expect(runs.joined() == stream)
            #expect(runs.dropFirst().allSatisfy { $0.hasPrefix("---\n") })
        }
        // Lines that only look like document starts, and streams with directives, are not cut there.
        let lookalikes = "a: |\n  ---\n  x\nb: \"---\"\nc: ---x\n---\nd: 1\n---   \ne: 2\n"
        #expect(YAMLStreamRuns.runs(of: lookalikes, count: 3).map { String($0) }
            == ["a: |\n  ---\n  x\nb: \"---\"\nc: ---x\n", "---\nd: 1\n", "---   \ne: 2\n"])
        #expect(YAMLStreamRuns.runs(of: "%YAML 1.1\n---\na: 1\n---\nb: 2\n", count: 2).count == 1)
        #expect(YAMLStreamRuns.runs(of: "a: 1\n", count: 2).count == 1)
    }

    @Test("a stream of many documents loads as one document after another would, and errors name their document")
    func manyDocuments() throws {
        var manifests = ClusterManifests()
        try ManifestLoader.load(yaml: services(500), name: "many.yaml", into: &manifests)
        #expect(manifests.services.map(\.origin) == (1...500).map { "many.yaml: document \($0)" })
        #expect(manifests.services.map(\.object.metadata.name) == (0..<500).map { "s\($0)" })

        let badPort = services(500).replacingOccurrences(of: "name: s400\n", with: "name: s400\n  namespace: [x]\n")
        #expect(loadError(badPort) == "test.yaml: document 401: metadata.namespace: expected a string")
        let badSyntax = services(500).replacingOccurrences(of: "name: s300\n", with: "name: [s300\n")
        let message = try #require(loadError(badSyntax))
        #expect(message.hasPrefix("test.yaml: not valid YAML: "))
        #expect(message.contains("line \(300 * 8 + 3)"), "the line in the whole file: \(message)")
    }
}

@Suite("Decoding large lists")
struct ListDecodingTests {
    /// `kubectl get -o json` of `count` Services, each with an EndpointSlice.
    private func jsonList(_ count: Int) -> String {
        let items = (0..<count).map { index in
            #"{"kind": "Service", "metadata": {"name": "s\#(index)", "labels": {"note": "a \"quoted\" [x], {y}"}}, "#
                + #""spec": {"clusterIP": "10.96.\#(index / 250).\#(index % 250 + 1)", "ports": [{"port": 80}]}}, "#
                + #"{"kind": "EndpointSlice", "metadata": {"name": "s\#(index)-1", "labels": "#
                + #"{"kubernetes.io/service-name": "s\#(index)"}}, "ports": [{"port": 8080}], "#
                + #""endpoints": [{"addresses": ["10.244.\#(index / 250).\#(index % 250 + 1)"]}]}"#
        }
        return #"{"apiVersion": "v1", "items": [\#n  \#(items.joined(separator: ",\n  "))\#n], "kind": "List", "#
            + #""metadata": {"resourceVersion": ""}}"#
    }

    @Test("the items of a List are found from the text's structure alone")
    func items() throws {
        let text = #" {"kind": "List", "note": "items: [\"a\"]", "x": [1, {"items": 2}], "#
            + #""items": [ {"a": "]"} , [1,2],"s\\"  ]} "#
        let list = try #require(Array(text.utf8).withUnsafeBytes { JSONListItems($0) })
        let bytes = Array(text.utf8)
        #expect(list.elements.map { String(decoding: bytes[$0], as: UTF8.self).trimmingCharacters(in: .whitespaces) }
            == [#"{"a": "]"}"#, "[1,2]", #""s\\""#])
        #expect(String(decoding: bytes[..<list.inside.lowerBound] + bytes[list.inside.upperBound...], as: UTF8.self)
            == #" {"kind": "List", "note": "items: [\"a\"]", "x": [1, {"items": 2}], "items": []} "#)
        #expect(Array(#"{"items": []}"#.utf8).withUnsafeBytes { JSONListItems($0) }?.elements.isEmpty == true)
        for notAList in [#"{"kind": "List"}"#, "[1, 2]", #"{"items": 3}"#, #"{"items": [1, 2"#, #"{"a" 1}"#, ""] {
            #expect(Array(notAList.utf8).withUnsafeBytes { JSONListItems($0) } == nil, "\(notAList)")
        }
    }

    @Test("a large List, as JSON or as one YAML document, loads as item after item would; errors name their item")
    func largeList() throws {
        let json = jsonList(600)
        let yaml = json  // JSON text that is read as YAML goes through the YAML reader
            .replacingOccurrences(of: #"{"apiVersion": "v1", "items""#, with: #"{"apiVersion": v1, "items""#)
        for (name, text) in [("JSON", json), ("YAML", yaml)] {
            var manifests = ClusterManifests()
            try ManifestLoader.load(yaml: text, name: "list", into: &manifests)
            #expect(manifests.services.map(\.origin) == (0..<600).map { "list: document 1: items[\($0 * 2)]" },
                    "\(name)")
            #expect(manifests.endpointSlices.map(\.object.metadata.name) == (0..<600).map { "s\($0)-1" }, "\(name)")
            #expect(manifests.services[123].object.metadata.labels?["note"] == #"a "quoted" [x], {y}"#)
            let table = try ServiceTableBuilder.build(manifests)
            #expect(table.entries.count == 600)
        }
        let broken = json.replacingOccurrences(of: #""name": "s555-1""#, with: #""name": 5551"#)
        #expect(loadError(broken) == "test.yaml: document 1: items[1111]: metadata.name: expected a string")
        let notList = json.replacingOccurrences(of: #""kind": "List""#, with: #""kind": "Lsit""#)
        #expect(loadError(notList)?.hasPrefix("test.yaml: document 1: kind: unknown kind \"Lsit\"") == true)
    }
}
