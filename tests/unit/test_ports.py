import os
import socket

from stackctl import ports


def listening_socket():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    return server


def test_free_and_busy_ports():
    with listening_socket() as server:
        port = server.getsockname()[1]
        assert not ports.is_free(port)
    assert ports.is_free(port)


def test_the_process_holding_a_port_is_named():
    with listening_socket() as server:
        holders = ports.processes_holding(server.getsockname()[1])
    assert (os.getpid(), open(f"/proc/{os.getpid()}/comm").read().strip()) in holders


def test_listening_inodes_reads_only_listening_rows(tmp_path):
    header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
    rows = (
        "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 111 1\n"
        "   1: 0100007F:1F90 0100007F:D3C2 01 00000000:00000000 00:00000000 00000000     0        0 222 1\n"
        "   2: 0100007F:0BB8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 333 1\n"
    )
    (tmp_path / "tcp").write_text(header + rows)
    assert ports.listening_inodes(8080, proc_net=tmp_path) == {"111"}
