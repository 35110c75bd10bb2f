# A serve_hostname-like pod: HTTP on TCP (every request is answered with the
# pod name and a newline, then the server closes), and UDP (each datagram is
# answered with the pod name and a newline).
import socket, sys, threading

name, http_port, udp_port, ready = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
body = (name + "\n").encode()
response = (
    "HTTP/1.1 200 OK\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Content-Length: %d\r\n"
    "Connection: close\r\n"
    "\r\n" % len(body)
).encode() + body

tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
tcp.bind(("0.0.0.0", http_port))
tcp.listen(16)
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.bind(("0.0.0.0", udp_port))

def serve_udp():
    while True:
        _, peer = udp.recvfrom(65535)
        udp.sendto(body, peer)

threading.Thread(target=serve_udp, daemon=True).start()
open(ready, "w").close()
while True:
    conn, _ = tcp.accept()
    conn.settimeout(5)
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(4096)
            if not chunk:
                break
            data += chunk
        if data:
            conn.sendall(response)
    except OSError:
        pass
    conn.close()
