import Cluster
import PacketWire
import Testing

/// Loads YAML text and compiles it, as the CLI does with files.
func table(_ yaml: String) throws -> ServiceTable {
    var manifests = ClusterManifests()
    try ManifestLoader.load(yaml: yaml, name: "test.yaml", into: &manifests)
    return try ServiceTableBuilder.build(manifests)
}

func loadError(_ yaml: String) -> String? {
    do {
        _ = try table(yaml)
        return nil
    } catch {
        return "\(error)"
    }
}

let serviceDemo = """
    apiVersion: v1
    kind: List
    items:
    - apiVersion: v1
      kind: Service
      metadata: {name: service-demo, namespace: default, uid: 1b2c}
      spec:
        type: ClusterIP
        clusterIP: 10.96.148.206
        clusterIPs: [10.96.148.206]
        selector: {app: service-demo}
        ports:
        - {port: 80, protocol: TCP, targetPort: http}
    - apiVersion: apps/v1
      kind: Deployment
      metadata: {name: service-demo, namespace: default}
      spec: {replicas: 3}
    - apiVersion: v1
      kind: Pod
      metadata: {name: pod-b, namespace: default, labels: {app: service-demo}}
      spec:
        nodeName: node-1
        containers: [{name: app, ports: [{name: http, containerPort: 9376, protocol: TCP}]}]
      status:
        phase: Running
        podIP: 10.244.2.11
        conditions: [{type: Ready, status: "True"}]
    - apiVersion: v1
      kind: Pod
      metadata: {name: pod-a, namespace: default, labels: {app: service-demo}}
      spec:
        containers: [{name: app, ports: [{name: http, containerPort: 9376}]}]
      status:
        phase: Running
        podIP: 10.244.1.11
        conditions: [{type: Ready, status: "True"}]
    - apiVersion: v1
      kind: Pod
      metadata: {name: pod-c, namespace: default, labels: {app: service-demo}}
      spec:
        containers: [{name: app, ports: [{name: http, containerPort: 9376}]}]
      status:
        phase: Running
        podIP: 10.244.3.11
        conditions: [{type: Ready, status: "False"}]
    - apiVersion: v1
      kind: Pod
      metadata: {name: other, namespace: other-ns, labels: {app: service-demo}}
      spec: {containers: [{name: app}]}
      status: {phase: Running, podIP: 10.244.9.9, conditions: [{type: Ready, status: "True"}]}
    """

@Suite("Manifests")
struct ManifestTests {
    @Test("pods behind a selector become endpoints; named targetPort resolved; not-ready pods kept but unused")
    func podsFromSelector() throws {
        let compiled = try table(serviceDemo)
        let entry = try #require(compiled.entry(for: Frontend(address: IPv4Address("10.96.148.206")!, port: 80,
                                                               serviceProtocol: .tcp)))
        #expect(entry.name.description == "default/service-demo")
        #expect(entry.backends.map(\.description) == ["10.244.1.11:9376", "10.244.2.11:9376", "10.244.3.11:9376"])
        #expect(entry.backends.map(\.podName) == ["pod-a", "pod-b", "pod-c"])
        #expect(entry.usableBackends == [0, 1])
    }

    @Test("multi-document files, EndpointSlices with conditions, terminating fallback, named UDP ports")
    func endpointSlices() throws {
        let compiled = try table("""
            apiVersion: v1
            kind: Service
            metadata: {name: dns, namespace: kube-system}
            spec:
              clusterIP: 10.96.0.10
              ports:
              - {name: dns, port: 53, protocol: UDP, targetPort: 53}
              - {name: dns-tcp, port: 53, protocol: TCP, targetPort: 53}
            ---
            apiVersion: discovery.k8s.io/v1
            kind: EndpointSlice
            metadata:
              name: dns-abcde
              namespace: kube-system
              labels: {kubernetes.io/service-name: dns}
            addressType: IPv4
            endpoints:
            - addresses: [10.244.1.5]
              conditions: {ready: false, serving: true, terminating: true}
              targetRef: {kind: Pod, name: coredns-1}
            - addresses: [10.244.2.5]
              conditions: {ready: false, serving: false, terminating: true}
            ports:
            - {name: dns, port: 5353, protocol: UDP}
            - {name: dns-tcp, port: 53, protocol: TCP}
            """)
        let udp = try #require(compiled.entry(for: Frontend(address: IPv4Address("10.96.0.10")!, port: 53,
                                                             serviceProtocol: .udp)))
        #expect(udp.name.description == "kube-system/dns:dns")
        #expect(udp.backends.map(\.description) == ["10.244.1.5:5353", "10.244.2.5:5353"])
        #expect(udp.usableBackends == [0], "only serving terminating endpoints take new connections")
        #expect(compiled.entries.count == 2)
    }

    @Test("selector-less Service with a hand-made Endpoints object")
    func classicEndpoints() throws {
        let compiled = try table("""
            kind: Service
            apiVersion: v1
            metadata: {name: my-service}
            spec:
              ports: [{protocol: TCP, port: 80, targetPort: 9376}]
              clusterIP: 10.96.77.77
            ---
            kind: Endpoints
            apiVersion: v1
            metadata: {name: my-service}
            subsets:
            - addresses: [{ip: 192.0.2.42}]
              notReadyAddresses: [{ip: 192.0.2.43}]
              ports: [{port: 9376}]
            """)
        let entry = compiled.entries[0]
        #expect(entry.name.description == "default/my-service")
        #expect(entry.backends.map(\.description) == ["192.0.2.42:9376", "192.0.2.43:9376"])
        #expect(entry.usableBackends == [0])
    }

    @Test("headless and ExternalName Services are not load balanced")
    func notServed() throws {
        let compiled = try table("""
            kind: Service
            metadata: {name: headless}
            spec: {clusterIP: None, ports: [{port: 80}]}
            ---
            kind: Service
            metadata: {name: external}
            spec: {type: ExternalName, externalName: example.com}
            """)
        #expect(compiled.entries.isEmpty)
        #expect(compiled.unservedPorts == ["default/headless port 80 (headless: not load balanced)",
                                           "default/external (ExternalName: not load balanced)"])
    }

    @Test("bad manifests name the document and the field", arguments: [
        ("kind: Service\nmetadata: {name: a}\nspec: {clusterIP: 10.96.0.1, ports: [{port: eighty}]}",
         "test.yaml: document 1: spec.ports[0].port: expected an integer"),
        ("kind: Service\nmetadata: {name: a}\nspec: {clusterIP: 10.96.0.1, ports: [{port: 70000}]}",
         "test.yaml: document 1: spec.ports[0].port: 70000 is not in 1-65535"),
        ("kind: Service\nspec: {clusterIP: 10.96.0.1}",
         "test.yaml: document 1: metadata: missing"),
        ("kind: List\nitems:\n- kind: Service\n  metadata: {name: a}\n  spec: {clusterIP: 10.96.0.300}",
         "test.yaml: document 1: items[0]: spec.clusterIP: \"10.96.0.300\" is not an IP address"),
        ("metadata: {name: a}", "test.yaml: document 1: kind: missing"),
        ("- just\n- a list", "test.yaml: document 1: expected a Kubernetes object (a mapping)"),
        ("kind: Service\nmetadata: {name: a}\nspec: {clusterIP: 10.96.0.1, ports: [{port: 80}]}\n---\n"
            + "kind: Service\nmetadata: {name: b}\nspec: {clusterIP: 10.96.0.1, ports: [{port: 80}]}",
         "test.yaml: document 2: spec.clusterIP: 10.96.0.1 is already the ClusterIP of default/a"),
        ("kind: Service\nmetadata: {name: a}\nspec: {clusterIP: 10.96.0.1, ports: [{name: x, port: 80}, {name: y, port: 80}]}",
         "test.yaml: document 1: spec.ports: 10.96.0.1:80/tcp is listed twice"),
        ("kind: Service\nmetadata: {name: a}\nspec: {clusterIP: 10.96.0.1, ports: [{port: 80}, {port: 81}]}",
         "test.yaml: document 1: spec.ports[0].name: required when a Service has more than one port"),
        ("kind: Service\nmetadata: {name: a}\nspec: {ports: [{name: x, port: 80}, {name: x, port: 81}]}",
         "test.yaml: document 1: spec.ports[1].name: \"x\" is used twice"),
        ("kind: Service\nmetadata: {name: a}\nspec: {clusterIP: 10.96.0.1}\n---\n"
            + "kind: Service\nmetadata: {name: a}\nspec: {clusterIP: 10.96.0.2}",
         "test.yaml: document 2: metadata.name: Service default/a is defined twice"),
        ("kind: Servce\nmetadata: {name: a}",
         "test.yaml: document 1: kind: unknown kind \"Servce\" (svcplane reads Service, Endpoints, EndpointSlice, "
            + "Pod and List)"),
        ("kind: Endpoints\nmetadata: {name: ghost}\nsubsets: []",
         "test.yaml: document 1: metadata.name: Endpoints for default/ghost, which is not a loaded Service"),
        ("kind: EndpointSlice\nmetadata: {name: g-1, labels: {kubernetes.io/service-name: ghost}}",
         "test.yaml: document 1: metadata.labels: EndpointSlice for default/ghost, which is not a loaded Service"),
        ("kind: Service\nmetadata: {name: a}\nspec: {ports: [{port: 80, targetPort: 0}]}",
         "test.yaml: document 1: spec.ports[0].targetPort: 0 is not in 1-65535"),
        ("kind: Service\nmetadata: {name: a}\nspec: {sessionAffinity: ClientIP, sessionAffinityConfig: "
            + "{clientIP: {timeoutSeconds: 86401}}}",
         "test.yaml: document 1: spec.sessionAffinityConfig.clientIP.timeoutSeconds: 86401 is not in 1-86400"),
        ("kind: Service\nmetadata: {name: a}\nspec: {ports: [{port: 80, protocol: ICMP}]}",
         "test.yaml: document 1: spec.ports[0].protocol: \"ICMP\" is not TCP, UDP or SCTP"),
        ("kind: Service\nmetadata: {name: a}\nspec: {type: Nodeport, clusterIP: 10.96.0.1}",
         "test.yaml: document 1: spec.type: \"Nodeport\" is not ClusterIP, NodePort, LoadBalancer or ExternalName"),
        ("kind: Service\nmetadata: {name: a}\nspec: {clusterIP: 10.96.0.1, externalTrafficPolicy: local}",
         "test.yaml: document 1: spec.externalTrafficPolicy: \"local\" is not Cluster or Local"),
        ("kind: Service\nmetadata: {name: a}\nspec: {clusterIP: 10.96.0.1, externalIPs: [1.2.3]}",
         "test.yaml: document 1: spec.externalIPs[0]: \"1.2.3\" is not an IP address"),
        ("kind: Service\nmetadata: {name: a}\nspec: {type: NodePort, clusterIP: 10.96.0.1, ports: [{port: 80, "
            + "nodePort: 30080}]}\n---\nkind: Service\nmetadata: {name: b}\nspec: {type: NodePort, "
            + "clusterIP: 10.96.0.2, ports: [{port: 80, nodePort: 30080}]}",
         "test.yaml: document 2: spec.ports: nodePort 30080/tcp is already used by default/a"),
        ("kind: Service\nmetadata: {name: a}\nspec: {clusterIP: 10.96.0.1, externalIPs: [10.96.0.2], ports: "
            + "[{port: 80}]}\n---\nkind: Service\nmetadata: {name: b}\nspec: {clusterIP: 10.96.0.2, "
            + "ports: [{port: 80}]}",
         "test.yaml: document 2: spec.ports: 10.96.0.2:80/tcp is listed twice"),
    ])
    func badManifests(yaml: String, message: String) {
        #expect(loadError(yaml) == message)
    }

    @Test("text that is not YAML gives one line naming the file")
    func notYAML() throws {
        let message = try #require(loadError("kind: [Service\nmetadata: {name: a"))
        #expect(message.hasPrefix("test.yaml: not valid YAML: "))
        #expect(!message.contains("\n"))
    }

    /// `kubectl get svc,endpointslices -o json` for one Service with two ready endpoints and one terminating.
    static let jsonList = """
        {
            "apiVersion": "v1",
            "kind": "List",
            "items": [
                {"apiVersion": "v1", "kind": "Service",
                 "metadata": {"name": "web", "namespace": "shop", "labels": {"tier": "front \\\"a\\\""}},
                 "spec": {"clusterIP": "10.96.7.7", "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}},
                {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                 "metadata": {"name": "web-1", "namespace": "shop", "labels": {"kubernetes.io/service-name": "web"}},
                 "addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
                 "endpoints": [
                    {"addresses": ["10.244.1.7"], "conditions": {"ready": true}},
                    {"addresses": ["10.244.2.7"], "conditions": {"ready": true, "serving": true}},
                    {"addresses": ["10.244.3.7"], "conditions": {"ready": false, "terminating": true}}]}
            ]
        }
        """

    @Test("JSON as kubectl get -o json prints it loads as its YAML does; flow YAML that starts like JSON is YAML")
    func json() throws {
        let fromJSON = try table(Self.jsonList)
        #expect(fromJSON.entries.map(\.name.description) == ["shop/web:http"])
        #expect(fromJSON.entries.first?.backends.map { "\($0) \($0.ready)" }
            == ["10.244.1.7:8080 true", "10.244.2.7:8080 true", "10.244.3.7:8080 false"])
        let flowYAML = """
            {kind: Service, metadata: {name: web, namespace: shop}, spec: {clusterIP: 10.96.7.7,
             ports: [{name: http, port: 80, targetPort: 8080}]}}
            """
        #expect(try table(flowYAML).entries.map(\.frontend.description) == ["10.96.7.7:80/tcp"])
        let broken = Self.jsonList.replacingOccurrences(of: "\"port\": 8080", with: "\"port\": \"eighty\"")
        #expect(loadError(broken) == "test.yaml: document 1: items[1]: ports[0].port: expected an integer")
    }

    @Test("YAML scalars are typed as Kubernetes reads them: quoted text stays text, plain integers and booleans do not")
    func scalarTyping() throws {
        let compiled = try table("""
            kind: Service
            metadata: {name: "80", labels: {version: "1", enabled: "true"}}
            spec: {clusterIP: 10.96.0.9, ports: [{port: 80, targetPort: '8080'}]}
            ---
            kind: EndpointSlice
            metadata: {name: s, labels: {kubernetes.io/service-name: "80"}}
            ports: [{port: 8080}]
            endpoints: [{addresses: [10.244.1.9], conditions: {ready: True}},
                        {addresses: [10.244.1.10], conditions: {ready: false}}]
            ---
            """)
        #expect(compiled.entries.first?.name.description == "default/80")
        #expect(compiled.entries.first?.backends.map { "\($0) \($0.ready)" }
            == ["10.244.1.10:8080 false", "10.244.1.9:8080 true"])
        #expect(loadError("kind: Service\nmetadata: {name: 80}")
            == "test.yaml: document 1: metadata.name: expected a string")
    }
}
