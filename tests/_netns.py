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

    def run(self, argv: Sequence[str], timeout: float = 30, env: Optional[Dict[str, str]] = None) -> str:
        return subprocess.run(
            self.command(argv), check=True, capture_output=True, text=True, timeout=timeout, env=env
        ).stdout

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


def node_actors(*namespaces: NetworkNamespace) -> List[int]:
    """The pids of the processes of launch's node actors (Ray titles them ray::NodeActor...) in `namespaces`."""
    found = []
    for namespace in namespaces:
        for process in namespace.processes():
            try:
                if "NodeActor" in " ".join(process.cmdline()):
                    found.append(process.pid)
            except psutil.Error:  # Ended meanwhile.
                pass
    return found


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
    """`ray start --block` (head, or a worker joining with `--address`) inside `namespace`, ended by its pid.

    `detached`: not a child of the test process (started through a shell that exits at once), so that Ray's
    worker processes, which come and go as Ray sees fit, are not taken for processes a test leaked; the
    namespace's close() still ends whatever is left inside.
    """

    def __init__(
        self,
        namespace: NetworkNamespace,
        temp_dir: str,
        env: Dict[str, str],
        *args: str,
        head: bool = True,
        detached: bool = False,
    ):
        self.namespace = namespace
        command = [RAY, "start", *(["--head"] if head else []), "--block", f"--temp-dir={temp_dir}", *args]
        self.log_path = os.path.join(temp_dir, f"ray_start_{time.monotonic_ns()}.log")
        self._process: Optional[subprocess.Popen] = None
        if detached:
            # A watchdog shell ends the node once this process is gone, even if it dies without cleaning up (e.g.
            # pytest-timeout ends the run with os._exit): nothing is left running after the tests.
            watchdog = (
                '"$@" & node=$!; echo $node > "$PIDFILE"; '
                'while kill -0 "$OWNER" && kill -0 $node; do sleep 1; done 2>/dev/null; kill $node 2>/dev/null'
            )
            pid_file = self.log_path + ".pid"
            shell = f'setsid sh -c \'{watchdog}\' sh "$@" > "$LOG" 2>&1 < /dev/null &'
            variables = [f"LOG={self.log_path}", f"PIDFILE={pid_file}", f"OWNER={os.getpid()}"]
            namespace.run(["env", *variables, "sh", "-c", shell, "sh", *command], env=env)
            deadline = time.monotonic() + 30
            while not (os.path.exists(pid_file) and open(pid_file).read().strip()):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"ray start did not start; see {self.log_path}")
                time.sleep(0.05)
            self.pid = int(open(pid_file).read())
        else:
            with open(self.log_path, "wb") as log:
                self._process = namespace.popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
            self.pid = self._process.pid

    def alive(self) -> bool:
        if self._process is not None:
            return self._process.poll() is None
        try:
            return psutil.Process(self.pid).status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    def wait_until_up(self, address: str, env: Dict[str, str], nodes: int = 1, timeout: float = 120) -> None:
        """Until `nodes` nodes are alive in the cluster at `address` (ray start takes 4-9 s, more when loaded)."""
        check = (
            "import sys, ray; ray.init(address=sys.argv[1], logging_level='ERROR', log_to_driver=False); "
            "print(sum(n['Alive'] for n in ray.nodes()))"
        )
        deadline = time.monotonic() + timeout
        while True:
            if not self.alive():
                with open(self.log_path) as f:
                    raise RuntimeError(f"ray start ended early:\n{f.read()[-3000:]}")
            try:
                out = self.namespace.run([sys.executable, "-c", check, address], env=env, timeout=60)
                if int(out.split()[-1]) >= nodes:
                    return
            except (subprocess.CalledProcessError, subprocess.TimeoutExpired, ValueError, IndexError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the Ray cluster at {address} did not come up in {timeout:g}s")
            time.sleep(0.5)

    def stop(self) -> None:
        """SIGTERM (ray start then ends the node's Ray processes), SIGKILL if it is still there after 30 s."""
        try:
            os.kill(self.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 30
        while self.alive() and time.monotonic() < deadline:
            time.sleep(0.1)
        if self.alive():
            os.kill(self.pid, signal.SIGKILL)
        if self._process is not None:
            self._process.wait()
