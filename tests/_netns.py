"""Network namespaces for tests that start Ray: nothing a Ray process does can reach a real network.

Ray binds all interfaces and looks up its own IP by trying to reach a public DNS address. Inside a namespace of
ours that has only `lo` (plus, for "two machines", one end of a veth pair to another namespace of ours), every
listener binds an address no other host can reach and the lookup fails at once. A namespace lives as long as a
holder process (killed with the test process: PR_SET_PDEATHSIG) or any process still inside it.
"""

import os
import signal
import subprocess
import sys
import time
from typing import Dict, List, Optional, Sequence

import psutil

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYTHON_BIN = os.path.dirname(sys.executable)
RAY = os.path.join(PYTHON_BIN, "ray")


class NetworkNamespace:
    """A new network namespace with `lo` up; `popen`/`run` start commands inside it."""

    def __init__(self):
        # unshare execs setpriv, which execs sleep: one process, a child of this one, dying with it.
        self._holder = subprocess.Popen(
            ["unshare", "--net", "setpriv", "--pdeathsig", "KILL", "sleep", "infinity"], stdin=subprocess.DEVNULL
        )
        self.path = f"/proc/{self._holder.pid}/ns/net"
        deadline = time.monotonic() + 10
        while self._inode() == _inode_of("/proc/self/ns/net"):  # unshare has not run yet.
            if self._holder.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"unshare --net failed (exit {self._holder.poll()}); these tests need root.")
            time.sleep(0.01)
        self.inode = self._inode()
        self.run(["ip", "link", "set", "lo", "up"])

    def _inode(self) -> int:
        return _inode_of(self.path)

    @property
    def holder_pid(self) -> int:
        return self._holder.pid

    def command(self, argv: Sequence[str]) -> List[str]:
        return ["nsenter", f"--net={self.path}", "--", *argv]

    def popen(self, argv: Sequence[str], env: Optional[Dict[str, str]] = None, **kwargs) -> subprocess.Popen:
        return subprocess.Popen(self.command(argv), env=env, **kwargs)

    def run(self, argv: Sequence[str], timeout: float = 30) -> str:
        return subprocess.run(self.command(argv), check=True, capture_output=True, text=True, timeout=timeout).stdout

    def processes(self) -> List[psutil.Process]:
        """The processes inside this namespace, other than its holder."""
        found = []
        for process in psutil.process_iter():
            if process.pid == self._holder.pid:
                continue
            try:
                if _inode_of(f"/proc/{process.pid}/ns/net") == self.inode:
                    found.append(process)
            except OSError:  # Ended meanwhile.
                pass
        return found

    def close(self) -> List[str]:
        """Kills what is still inside (returning its command lines, for the test to report), then the holder."""
        leftovers = []
        for process in self.processes():
            try:
                leftovers.append(" ".join(process.cmdline())[:120])
                process.send_signal(signal.SIGKILL)
            except psutil.Error:
                pass
        self._holder.kill()
        self._holder.wait()
        return leftovers


def _inode_of(path: str) -> int:
    return os.stat(path).st_ino


def connect(left: NetworkNamespace, right: NetworkNamespace, left_ip: str, right_ip: str) -> None:
    """Joins two namespaces with a veth pair: `left_ip` and `right_ip` on one /24, as two machines on a LAN."""
    name = f"enc{left.holder_pid}"
    subprocess.run(
        ["ip", "link", "add", name, "netns", str(left.holder_pid), "type", "veth", "peer", "name", f"{name}p"]
        + ["netns", str(right.holder_pid)],
        check=True,
        capture_output=True,
        timeout=30,
    )
    for namespace, device, ip in ((left, name, left_ip), (right, f"{name}p", right_ip)):
        namespace.run(["ip", "addr", "add", f"{ip}/24", "dev", device])
        namespace.run(["ip", "link", "set", device, "up"])


def ray_env(**extra: str) -> Dict[str, str]:
    """The environment of Ray processes and drivers in tests: our code importable, auth mode explicit."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(
        PYTHONPATH=os.pathsep.join([REPO, os.path.join(REPO, "tests")]),
        PATH=PYTHON_BIN + os.pathsep + env.get("PATH", ""),
        RAY_AUTH_MODE="disabled",
        RAY_DEDUP_LOGS="0",
        RAY_USAGE_STATS_ENABLED="0",
        TF_CPP_MIN_LOG_LEVEL="2",
    )
    env.update(extra)
    return env


class RayNode:
    """`ray start --block` (head, or a worker joining `address`) inside `namespace`; ended by its pid."""

    def __init__(self, namespace: NetworkNamespace, temp_dir: str, env: Dict[str, str], *args: str, head: bool = True):
        self.namespace = namespace
        command = [RAY, "start", "--block", f"--temp-dir={temp_dir}", "--disable-usage-stats", *args]
        if head:
            command.insert(3, "--head")
        self._log = open(os.path.join(temp_dir, f"ray_start_{time.monotonic_ns()}.log"), "wb")
        self.process = namespace.popen(command, env=env, stdout=self._log, stderr=subprocess.STDOUT)

    def wait_until_up(self, address: str, env: Dict[str, str], nodes: int = 1, timeout: float = 90) -> None:
        """Until `nodes` nodes are alive in the cluster at `address` (ray start takes 4-9 s)."""
        check = (
            "import sys, ray; ray.init(address=sys.argv[1], logging_level='ERROR', log_to_driver=False); "
            "print(sum(n['Alive'] for n in ray.nodes()))"
        )
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"ray start exited with {self.process.returncode}; see {self._log.name}")
            try:
                out = self.namespace.run([sys.executable, "-c", check, address], timeout=60)
                if int(out.split()[-1]) >= nodes:
                    return
            except (subprocess.CalledProcessError, subprocess.TimeoutExpired, ValueError, IndexError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the Ray cluster at {address} did not come up in {timeout:g}s")
            time.sleep(0.5)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
