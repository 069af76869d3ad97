"""A real one-node Slurm cluster on loopback, for the sweep tests (Debian's slurm-wlm 22.05).

munged, MariaDB, slurmdbd (accounting, which submitit's ``sacct`` polling needs), slurmctld and
slurmd run from a temporary folder with free loopback ports, without systemd or cgroups, and are
stopped by pid. Clients find the cluster through ``SLURM_CONF``; ``client_env(accounting=False)``
points them at a copy of the configuration with accounting switched off, where the real ``sacct``
answers "Slurm accounting storage is disabled", as on a cluster without slurmdbd.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from reaper import start_reaper

DAEMONS = ("munged", "mariadbd", "slurmdbd", "slurmctld", "slurmd")
CPUS = 2
MEMORY_MB = 4000


def missing_binaries() -> list[str]:
    return [name for name in (*DAEMONS, "mariadb-install-db", "sbatch", "sacct") if not _which(name)]


def _which(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin:/sbin")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SlurmCluster:
    """``with SlurmCluster() as cluster:`` starts everything, ``cluster.env`` is the client environment."""

    def __init__(self):
        # Short path under /tmp: unix socket paths are limited to 108 bytes.
        self.root = Path(tempfile.mkdtemp(prefix="be-slurm-"))
        self.host = socket.gethostname().split(".")[0]
        self.procs: dict[str, subprocess.Popen] = {}
        self.ports = {name: _free_port() for name in ("mysql", "dbd", "ctld", "slurmd")}
        self.munge_socket = self.root / "munge.sock"

    # -- lifecycle ---------------------------------------------------------------------------------
    def __enter__(self) -> "SlurmCluster":
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self, timeout: float = 120) -> None:
        started = time.time()
        for sub in ("state", "spool", "log", "db"):
            (self.root / sub).mkdir()
        self._start_munge()
        self._start_mariadb()
        self._write_configs()
        # slurmdbd reads slurmdbd.conf beside $SLURM_CONF
        self._spawn("slurmdbd", [_which("slurmdbd"), "-D"])
        self._wait_port(self.ports["dbd"], "slurmdbd", timeout)
        self._spawn("slurmctld", [_which("slurmctld"), "-D", "-i", "-f", str(self.conf)])
        self._wait_port(self.ports["ctld"], "slurmctld", timeout)
        self._spawn("slurmd", [_which("slurmd"), "-D", "-f", str(self.conf), "-N", self.host])
        # However the test run ends (killed by `timeout`, a worker killed), the daemons go with it.
        self.reaper = start_reaper(groups=[p.pid for p in self.procs.values()], remove=[self.root])
        self._wait_node_idle(started + timeout)

    def stop(self) -> None:
        for name in reversed(DAEMONS):
            proc = self.procs.pop(name, None)
            if proc is None:
                continue
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=15)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait()
        shutil.rmtree(self.root, ignore_errors=True)

    # -- clients -----------------------------------------------------------------------------------
    @property
    def conf(self) -> Path:
        return self.root / "slurm.conf"

    def client_env(self, accounting: bool = True) -> dict[str, str]:
        env = dict(os.environ)
        env["SLURM_CONF"] = str(self.conf if accounting else self.root / "slurm-noacct.conf")
        env["PATH"] = f"{env.get('PATH', '')}:/usr/sbin:/usr/bin"
        return env

    @property
    def env(self) -> dict[str, str]:
        return self.client_env()

    def run(self, *command: str, check: bool = True) -> str:
        proc = subprocess.run(command, env=self.env, capture_output=True, text=True, timeout=60)
        if check and proc.returncode != 0:
            raise RuntimeError(f"{' '.join(command)}: {proc.stderr.strip()}")
        return proc.stdout

    def jobs(self) -> list[str]:
        """Ids of the jobs and array tasks the controller still has queued or running."""
        out = self.run("squeue", "-h", "-r", "-o", "%i %T")
        return [line.split()[0] for line in out.splitlines() if line.strip()]

    def log(self, name: str) -> str:
        path = self.root / "log" / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    # -- daemons -----------------------------------------------------------------------------------
    def _spawn(self, name: str, command: list[str]) -> None:
        log = open(self.root / "log" / f"{name}.out", "wb")
        self.procs[name] = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=self.env
        )

    def _start_munge(self) -> None:
        key = self.root / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        self._spawn(
            "munged",
            [
                _which("munged"),
                "--foreground",
                "--force",
                f"--key-file={key}",
                f"--socket={self.munge_socket}",
                f"--pid-file={self.root / 'munged.pid'}",
                f"--log-file={self.root / 'log' / 'munged.log'}",
                f"--seed-file={self.root / 'munge.seed'}",
            ],
        )
        self._wait(lambda: self.munge_socket.exists(), "munged", 30)

    def _start_mariadb(self) -> None:
        data, sock = self.root / "db", self.root / "mysql.sock"
        subprocess.run(
            [
                _which("mariadb-install-db"),
                "--no-defaults",
                f"--datadir={data}",
                "--user=root",
                "--auth-root-authentication-method=socket",
                "--skip-test-db",
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
        self._spawn(
            "mariadbd",
            [
                _which("mariadbd"),
                "--no-defaults",
                f"--datadir={data}",
                f"--socket={sock}",
                f"--port={self.ports['mysql']}",
                "--bind-address=127.0.0.1",
                "--user=root",
                f"--pid-file={self.root / 'mysql.pid'}",
                "--innodb-buffer-pool-size=32M",
                "--skip-log-bin",
            ],
        )
        self._wait_port(self.ports["mysql"], "mariadbd", 60)
        sql = (
            "CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY 'bridgeeval';"
            "GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1'; FLUSH PRIVILEGES;"
        )
        subprocess.run(
            [_which("mariadb") or "mysql", "--no-defaults", "-S", str(sock), "-u", "root", "-e", sql],
            check=True,
            capture_output=True,
            timeout=60,
        )

    def _write_configs(self) -> None:
        r, p = self.root, self.ports
        dbd = f"""
AuthType=auth/munge
AuthInfo=socket={self.munge_socket}
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort={p["dbd"]}
SlurmUser=root
PidFile={r}/slurmdbd.pid
LogFile={r}/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort={p["mysql"]}
StorageUser=slurm
StoragePass=bridgeeval
StorageLoc=slurm_acct_db
"""
        (r / "slurmdbd.conf").write_text(dbd)
        (r / "slurmdbd.conf").chmod(0o600)
        conf = f"""
ClusterName=bridgeeval
SlurmctldHost={self.host}(127.0.0.1)
SlurmUser=root
SlurmctldPort={p["ctld"]}
SlurmdPort={p["slurmd"]}
AuthType=auth/munge
AuthInfo=socket={self.munge_socket}
CredType=cred/munge
StateSaveLocation={r}/state
SlurmdSpoolDir={r}/spool
SlurmctldPidFile={r}/slurmctld.pid
SlurmdPidFile={r}/slurmd.pid
SlurmctldLogFile={r}/log/slurmctld.log
SlurmdLogFile={r}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
MpiDefault=none
ReturnToService=2
KillWait=5
DefMemPerCPU=500
MessageTimeout=3
MinJobAge=600
InactiveLimit=0
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort={p["dbd"]}
AccountingStoragePass={self.munge_socket}
NodeName={self.host} NodeAddr=127.0.0.1 CPUs={CPUS} RealMemory={MEMORY_MB} State=UNKNOWN
PartitionName=debug Nodes={self.host} Default=YES MaxTime=INFINITE State=UP
"""
        self.conf.write_text(conf)
        noacct = conf.replace("accounting_storage/slurmdbd", "accounting_storage/none")
        (r / "slurm-noacct.conf").write_text(noacct)

    # -- waiting -----------------------------------------------------------------------------------
    def _wait(self, ready, name: str, timeout: float) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if ready():
                return
            proc = self.procs.get(name)
            if proc is not None and proc.poll() is not None:
                break
            time.sleep(0.2)
        out = self.root / "log" / f"{name}.out"
        tail = out.read_text(errors="replace")[-2000:] if out.exists() else ""
        raise RuntimeError(f"{name} did not start: {tail}{self.log(name)[-2000:]}")

    def _wait_port(self, port: int, name: str, timeout: float) -> None:
        def listening() -> bool:
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", port)) == 0

        self._wait(listening, name, timeout)

    def _wait_node_idle(self, deadline: float) -> None:
        def idle() -> bool:
            out = subprocess.run(["sinfo", "-h", "-N", "-o", "%t"], env=self.env, capture_output=True, text=True)
            return out.returncode == 0 and out.stdout.strip() == "idle"

        self._wait(idle, "slurmd", max(1.0, deadline - time.time()))


if __name__ == "__main__":  # a cluster to try things by hand: python tests/slurm_cluster.py
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # stop the daemons on SIGTERM too
    with SlurmCluster() as cluster:
        print(f"export SLURM_CONF={cluster.conf}")
        print(cluster.run("sinfo"))
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass
