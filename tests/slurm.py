"""A real single-node Slurm cluster on localhost for the Slurm tests: munged, slurmctld and
slurmd (Debian's slurm-wlm and munge), every file of theirs in one temporary directory, free
ports, and a 2-CPU node named localhost in a default partition "debug". Clients find it through
SLURM_CONF. It needs root (slurmd runs jobs as their user, and SlurmUser is root here); where the
daemons cannot start, ``start`` raises SlurmUnavailable with the reason, for the test to skip.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd")


class SlurmUnavailable(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def find(name: str) -> str | None:
    for path in (f"/usr/sbin/{name}", f"/usr/bin/{name}"):
        if os.access(path, os.X_OK):
            return path
    return shutil.which(name)


class LocalSlurm:
    def __init__(self, root: Path):
        self.root = root
        self.procs: dict[str, subprocess.Popen] = {}
        self.conf = root / "slurm.conf"
        self.munge_socket = root / "munge" / "munge.sock"
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}

    def write_conf(self) -> None:
        for sub in ("state", "spool", "munge", "log"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(self.root / "munge", 0o700)
        r = self.root
        self.conf.write_text(
            "\n".join(
                [
                    "ClusterName=fnotui-test",
                    "SlurmctldHost=localhost",
                    f"SlurmctldPort={free_port()}",
                    f"SlurmdPort={free_port()}",
                    "AuthType=auth/munge",
                    "CredType=cred/munge",
                    f"AuthInfo=socket={self.munge_socket}",
                    "SlurmUser=root",
                    "SlurmdUser=root",
                    f"StateSaveLocation={r / 'state'}",
                    f"SlurmdSpoolDir={r / 'spool'}",
                    f"SlurmctldPidFile={r / 'slurmctld.pid'}",
                    f"SlurmdPidFile={r / 'slurmd.pid'}",
                    f"SlurmctldLogFile={r / 'log' / 'slurmctld.log'}",
                    f"SlurmdLogFile={r / 'log' / 'slurmd.log'}",
                    # No cgroups: the test machine (a container) may not delegate them.
                    "ProctrackType=proctrack/linuxproc",
                    "TaskPlugin=task/none",
                    "JobAcctGatherType=jobacct_gather/none",
                    "AccountingStorageType=accounting_storage/none",
                    "JobCompType=jobcomp/none",
                    "SchedulerType=sched/builtin",
                    "SelectType=select/cons_tres",
                    "SelectTypeParameters=CR_CPU",
                    "MpiDefault=none",
                    "ReturnToService=2",
                    "KillWait=10",  # seconds between SIGTERM and SIGKILL at a cancel
                    "MinJobAge=3600",  # squeue keeps ended jobs (no accounting here)
                    "SlurmdTimeout=30",
                    "NodeName=localhost CPUs=2 RealMemory=2000 State=UNKNOWN",
                    "PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP",
                    "",
                ]
            )
        )
        (self.root / "cgroup.conf").write_text("CgroupAutomount=no\n")

    def _spawn(self, name: str, argv: list[str]) -> None:
        log = open(self.root / "log" / f"{name}.out", "ab")  # noqa: SIM115 (the child owns it)
        self.procs[name] = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, env=self.env, start_new_session=True
        )

    def start(self) -> None:
        if os.geteuid() != 0:
            raise SlurmUnavailable("the single-node Slurm needs root (SlurmUser=root)")
        paths = {name: find(name) for name in (*DAEMONS, "mungekey", "scontrol", "sinfo")}
        missing = [n for n, p in paths.items() if p is None and n != "mungekey"]
        if missing:
            raise SlurmUnavailable(
                f"not installed: {', '.join(missing)} (apt-get install slurm-wlm munge)"
            )
        self.write_conf()
        key = self.root / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        os.chmod(key, 0o400)
        self._spawn(
            "munged",
            [
                paths["munged"],
                "--foreground",
                "--force",
                f"--socket={self.munge_socket}",
                f"--key-file={key}",
                f"--pid-file={self.root / 'munge' / 'munged.pid'}",
                f"--seed-file={self.root / 'munge' / 'munged.seed'}",
                f"--log-file={self.root / 'log' / 'munged.log'}",
            ],
        )
        self._wait(lambda: self.munge_socket.exists(), "munged", 15)
        self._spawn("slurmctld", [paths["slurmctld"], "-D", "-i", "-f", str(self.conf)])
        self._wait(self.controller_up, "slurmctld", 30)
        self._spawn("slurmd", [paths["slurmd"], "-D", "-N", "localhost", "-f", str(self.conf)])
        self._wait(self.node_idle, "slurmd", 45)

    def _wait(self, ready, name: str, timeout: float) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            for daemon, proc in self.procs.items():
                if proc.poll() is not None:
                    raise SlurmUnavailable(f"{daemon} exited: {self.log_tail(daemon)}")
            if ready():
                return
            time.sleep(0.3)
        raise SlurmUnavailable(f"{name} did not come up in {timeout:g} s: {self.log_tail(name)}")

    def log_tail(self, name: str) -> str:
        text = ""
        for path in (self.root / "log" / f"{name}.log", self.root / "log" / f"{name}.out"):
            if path.exists():
                text += path.read_text(errors="replace")
        return " | ".join(text.strip().splitlines()[-6:])

    def run(self, *argv: str) -> subprocess.CompletedProcess:
        return subprocess.run(argv, capture_output=True, text=True, env=self.env, timeout=20)

    def controller_up(self) -> bool:
        return " is UP" in self.run("scontrol", "ping").stdout

    def node_idle(self) -> bool:
        state = self.run("sinfo", "-h", "-n", "localhost", "-o", "%T").stdout.strip()
        return state.startswith(("idle", "mixed", "allocated"))

    def stop(self) -> None:
        for name in reversed(DAEMONS):
            proc = self.procs.get(name)
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
