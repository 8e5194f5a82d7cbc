"""The soak's Docker engine: the machine's, or a private one in its own network namespace, restarted mid-eval."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from lancer.core.sandbox import pid_alive

ROOT = Path(__file__).resolve().parent.parent
BASE_IMAGE = os.environ.get("LANCER_BASE_IMAGE", "lancer-base:bookworm")


class Engine:
    """The Docker engine the docker pass uses, and its restart in the middle."""

    def __init__(self, mode: str, home: Path) -> None:
        self.mode = mode
        self.home = home
        self.restarts = 0
        self.env: dict[str, str] = {}
        self._proc: subprocess.Popen[bytes] | None = None
        if mode == "private":
            self.env = {"DOCKER_HOST": f"unix://{home}/docker.sock"}

    def docker(self, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(["docker", *args], env={**os.environ, **self.env}, capture_output=True, **kwargs)

    def pids(self) -> set[int]:
        return {self._proc.pid} if self._proc is not None else set()

    def up(self) -> bool:
        with contextlib.suppress(subprocess.TimeoutExpired):
            return self.docker("info", timeout=10).returncode == 0
        return False

    def start(self) -> None:
        if self.mode == "system":
            subprocess.run(["bash", str(ROOT / "scripts" / "docker-up.sh")], check=True)
            return
        if self.mode != "private":
            return
        h = self.home
        (h / "data").mkdir(parents=True, exist_ok=True)
        # docker-up.sh's flags for a machine like this one, plus what keeps two engines apart.
        flags = [
            f"--host=unix://{h}/docker.sock",
            f"--data-root={h}/data",
            f"--exec-root={h}/x",
            f"--pidfile={h}/docker.pid",
            "--bridge=none",
            "--iptables=false",
            "--ip6tables=false",
            "--storage-driver=overlay2",
            "--cgroup-parent=/lancer-soak",
        ]
        with (h / "dockerd.log").open("ab") as log:
            # In a network namespace of its own: a dockerd with --bridge=none deletes the bridge
            # named docker0 where it runs, which would cut the machine's own engine's networks.
            self._proc = subprocess.Popen(
                ["unshare", "--net", "dockerd", *flags],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        deadline = time.monotonic() + 60
        while not self.up():
            if self._proc.poll() is not None or time.monotonic() > deadline:
                tail = (h / "dockerd.log").read_text(errors="replace")[-1500:]
                raise RuntimeError(f"the soak's dockerd did not start:\n{tail}")
            time.sleep(0.3)
        if self.docker("image", "inspect", BASE_IMAGE).returncode != 0:
            save = subprocess.Popen(["docker", "save", BASE_IMAGE], stdout=subprocess.PIPE)
            loaded = self.docker("load", stdin=save.stdout)
            save.wait()
            if loaded.returncode != 0:
                raise RuntimeError(f"could not load {BASE_IMAGE}: {loaded.stderr.decode()[-500:]}")

    def stop(self) -> None:
        if self.mode == "private":
            proc = self._proc
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(60)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            self._proc = None
        elif self.mode == "system":
            pid = int(Path("/var/run/docker.pid").read_text().strip())
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 60
            while pid_alive(str(pid)) and time.monotonic() < deadline:
                time.sleep(0.2)

    def restart(self) -> None:
        if self.mode == "none":
            return
        self.stop()
        self.start()
        self.restarts += 1

    def containers(self, pids: set[int]) -> list[str]:
        """Containers lancer left: any at all on a private engine; on the machine's, those
        whose lancer.pid was one of the soak's processes."""
        out = self.docker("ps", "-a", "--format", '{{.ID}} {{.Label "lancer.pid"}}', timeout=30).stdout.decode()
        left = []
        for line in out.splitlines():
            cid, _, pid = line.partition(" ")
            if self.mode == "private" or (pid.isdigit() and int(pid) in pids):
                left.append(cid)
        return left

    def ensure_up(self) -> None:
        """Whatever happened: the machine's engine is answering (a private one was stopped)."""
        if self.mode == "system" and not self.up():
            subprocess.run(["bash", str(ROOT / "scripts" / "docker-up.sh")], check=False)
