"""What a `crossrank serve` run spawns, holds and must leave behind at its end: the chaos soak samples the
gateway's processes (Triton, its stubs, restarted ones included), their listening ports, their shared-memory
regions and their memory while it runs, then checks after SIGTERM that none of them remains."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from tests.e2e.server_process import ServerProcess, alive, children, rss_mib


def port_free(port: int) -> bool:
    """Whether a new server could listen on `port` (as servers do, with SO_REUSEADDR: connections in TIME_WAIT
    do not count, a listener does)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@dataclass
class Residue:
    """Everything seen of one server run: every descendant pid, every port they listened on, every
    shared-memory region of its Triton, and (gateway, Triton) RSS samples in MiB."""

    server: ServerProcess
    repository: Path
    pids: set[int] = field(default_factory=set)
    ports: set[int] = field(default_factory=set)
    shm_regions: set[str] = field(default_factory=set)

    @property
    def shm_prefix(self) -> str:
        # The launcher names the python backend's regions after the gateway's pid (crossrank_<pid>_<id>_...).
        return f"crossrank_{self.server.process.pid}_"

    def sample(self) -> tuple[float, float]:
        """Notes the run's processes, ports and regions; returns (gateway, Triton and its stubs) RSS in MiB."""
        gateway = self.server.process.pid
        descendants = children(gateway)
        self.pids.update(descendants)
        for pid in [gateway, *descendants]:
            try:
                connections = psutil.Process(pid).net_connections(kind="tcp")
            except psutil.Error:
                continue
            self.ports.update(c.laddr.port for c in connections if c.status == psutil.CONN_LISTEN)
        self.shm_regions.update(p.name for p in Path("/dev/shm").glob(f"{self.shm_prefix}*"))
        return rss_mib([gateway]), rss_mib(descendants)

    def left_behind(self) -> list[str]:
        """After the server stopped: what of it is still there (empty when nothing)."""
        left = [f"process {pid} ({_name(pid)})" for pid in sorted(self.pids) if alive(pid)]
        mine = str(self.repository)
        for process in psutil.process_iter(["pid", "cmdline"]):
            cmdline = process.info.get("cmdline") or []
            if process.info["pid"] not in self.pids and any(mine in arg for arg in cmdline) and alive(
                    process.info["pid"]):
                left.append(f"process {process.info['pid']} ({' '.join(cmdline)[:120]})")
        left += [f"/dev/shm/{p.name}" for p in Path("/dev/shm").glob(f"{self.shm_prefix}*")]
        left += [f"port {port} still taken" for port in sorted(self.ports) if not port_free(port)]
        return left


def _name(pid: int) -> str:
    try:
        return str(psutil.Process(pid).name())
    except psutil.Error:
        return "?"
