# COUNT UDP queries to VIP:PORT, the i-th from source port FIRST+i; each waits
# for its answer (or an ICMP error) before the next is sent.
import socket, sys

vip, port, count, first = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
for i in range(count):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", first + i))
    s.connect((vip, port))
    s.settimeout(3)
    s.send(b"query %d\n" % (i + 1))
    try:
        answer = s.recv(65535).decode().strip()
    except ConnectionRefusedError:
        answer = "(refused)"
    except socket.timeout:
        answer = "(timeout)"
    s.close()
    print("udp %s:%d from :%d -> %s" % (vip, port, first + i, answer), flush=True)
