"""A real OpenSSH server on 127.0.0.1 for the tests and benchmarks/devices.py: a free port,
a throw-away host key and client key in a temporary folder (tests/setup_sshd.sh installs sshd)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


@dataclass
class SSHServer:
    port: int
    key_file: Path
    known_hosts: Path
    proc: subprocess.Popen

    def device(self, name: str = "loopback", workdir: str | Path | None = None, **fields):
        """A DeviceConfig reaching this server, whose Python is this one with the same modules."""
        from edge_opt.measure.devices import DeviceConfig

        pythonpath = os.pathsep.join(p for p in sys.path if p)
        python = f"env PYTHONPATH={pythonpath} TF_CPP_MIN_LOG_LEVEL=2 {sys.executable}"
        return DeviceConfig(
            name=name,
            transport="ssh",
            address="127.0.0.1",
            port=self.port,
            user=_user(),
            key_file=self.key_file,
            known_hosts=str(self.known_hosts),
            workdir=str(workdir) if workdir else None,
            **{"python": python, **fields},
        )

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


def _user() -> str:
    import getpass

    return getpass.getuser()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def available() -> str | None:
    """Why no sshd can be started here, or None."""
    if not Path(SSHD).is_file():
        return "OpenSSH's sshd is not installed (tests/setup_sshd.sh installs it)"
    if not shutil.which("ssh-keygen"):
        return "ssh-keygen is not installed"
    return None


def start_sshd(folder: Path, sftp: bool = True) -> SSHServer:
    """An sshd on a free port of 127.0.0.1 (``sftp=False``: one without the sftp subsystem)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("host_key", "client_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(folder / name)], check=True)
    (folder / "authorized_keys").write_text((folder / "client_key.pub").read_text())
    port = free_port()
    host_pub = (folder / "host_key.pub").read_text().split()
    (folder / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_pub[0]} {host_pub[1]}\n")
    (folder / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {folder / 'host_key'}\n"
        f"AuthorizedKeysFile {folder / 'authorized_keys'}\nPidFile {folder / 'sshd.pid'}\n"
        "UsePAM no\nStrictModes no\nPermitRootLogin yes\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nPubkeyAuthentication yes\nMaxSessions 50\nMaxStartups 50\n"
        + ("Subsystem sftp internal-sftp\n" if sftp else "")
    )
    Path("/run/sshd").mkdir(parents=True, exist_ok=True) if os.geteuid() == 0 else None
    log = open(folder / "sshd.log", "w")  # noqa: SIM115 - lives as long as the server
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(folder / "sshd_config")], stdout=log, stderr=log)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"sshd exited: {(folder / 'sshd.log').read_text()[-500:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return SSHServer(port, folder / "client_key", folder / "known_hosts", proc)
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("sshd did not listen within 10 s")
