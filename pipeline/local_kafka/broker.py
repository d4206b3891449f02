"""Fetch, format, start, probe and stop a single-node KRaft broker, or the nodes of a local cluster.

Everything lives in a cache directory outside the repository (``$REWARDSTREAM_CACHE`` or
``~/.cache/rewardstream``): the Maven-resolved jars per Kafka version, and one folder per broker
*instance* holding its data, ``server.properties``, pid file and log. The broker runs detached
(its own session) so that ``rewardstream kafka start`` can return while it keeps running.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from pipeline.ports import free_port

DEFAULT_KAFKA_VERSION = "4.1.1"
DEFAULT_PORT = 9092
_MIN_JAVA = 17


def new_cluster_id() -> str:
    """A KRaft cluster id as Kafka makes them (``Uuid.randomUuid``): 16 random bytes in URL-safe base64, never
    starting with "-", which the storage tool's command line would read as an option (1 start in 64 failed so)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


@dataclass(frozen=True)
class ClusterNode:
    """One node of a local multi-node KRaft cluster (``LocalCluster``): its id and ports, the controller quorum
    and the replication every topic gets."""

    node_id: int
    port: int
    controller_port: int
    voters: str  # controller.quorum.voters: id@host:port of every node
    cluster_id: str
    replication: int
    min_insync: int


class LocalKafkaError(RuntimeError):
    """The local broker could not be fetched, started or reached; the message says why."""


@dataclass(frozen=True)
class BrokerStatus:
    """What ``status`` found: a live broker answers metadata; a dead one left a stale pid file."""

    running: bool
    pid: int | None
    bootstrap: str | None
    detail: str


def default_cache_dir() -> Path:
    env = os.environ.get("REWARDSTREAM_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "rewardstream"


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (our own un-reaped child) is dead for our purposes.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def _is_kafka_process(pid: int) -> bool:
    """Guards against pid reuse: the pid must still be a JVM running ``kafka.Kafka``."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return _pid_alive(pid)
    return b"kafka.Kafka" in cmdline


def broker_answers(bootstrap: str, timeout: float = 2.0) -> bool:
    """True when the broker at ``bootstrap`` answers a metadata request with at least one broker."""
    from confluent_kafka.admin import AdminClient

    quiet = logging.getLogger("rewardstream.local_kafka.librdkafka")
    quiet.setLevel(logging.CRITICAL)
    config: dict[str, Any] = {"bootstrap.servers": bootstrap, "logger": quiet, "socket.timeout.ms": 1000}
    client = AdminClient(config)
    try:
        md = client.list_topics(timeout=timeout)
    except Exception:
        return False
    return bool(md.brokers)


class InstanceFiles:
    """The folder of one instance of a detached local server (the broker, the schema registry): its pid file,
    what it was started with (a JSON file) and its log, named after ``kind``."""

    kind = "server"
    home: Path

    @property
    def pid_file(self) -> Path:
        return self.home / f"{self.kind}.pid"

    @property
    def log_file(self) -> Path:
        return self.home / f"{self.kind}.log"

    @property
    def _meta_file(self) -> Path:
        return self.home / f"{self.kind}.json"

    def _read_meta(self) -> dict[str, object]:
        try:
            data = json.loads(self._meta_file.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _read_pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_file.read_text(errors="replace").splitlines()
        except OSError:
            return f"(no {self.kind} log)"
        return "\n".join(text[-lines:])

    def _is_ours(self, pid: int) -> bool:
        """Guards against pid reuse: the pid still runs this kind of server."""
        raise NotImplementedError

    def _kill(self, pid: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)

    def stop(self, timeout: float = 30.0, purge: bool = False) -> str:
        """SIGTERM for a controlled shutdown, SIGKILL if it does not exit within ``timeout``.
        ``purge`` also deletes the instance's folder: data, log and settings (throwaway instances, e.g. CI)."""
        result = self._stop(timeout)
        if purge and self.home.exists():
            shutil.rmtree(self.home)
            result += f"; removed {self.home}"
        return result

    def _stop(self, timeout: float) -> str:
        pid = self._read_pid()
        if pid is None:
            return "not running"
        if not (_pid_alive(pid) and self._is_ours(pid)):
            self.pid_file.unlink(missing_ok=True)
            return f"not running (removed stale pid file for {pid})"
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _pid_alive(pid):
            _reap(pid)
            time.sleep(0.2)
        how = "stopped"
        if _pid_alive(pid):
            self._kill(pid)
            how = "killed after it ignored SIGTERM"
            while _pid_alive(pid):
                _reap(pid)
                time.sleep(0.1)
        self.pid_file.unlink(missing_ok=True)
        return f"{how} (pid {pid})"


class LocalKafka(InstanceFiles):
    """One local broker instance. ``start`` is idempotent; ``status`` detects a killed broker."""

    kind = "broker"

    def __init__(
        self,
        *,
        cache_dir: Path | None = None,
        instance: str = "default",
        port: int | None = None,
        kafka_version: str = DEFAULT_KAFKA_VERSION,
        heap: str = "1g",
        node: ClusterNode | None = None,
    ) -> None:
        self.cache_dir = cache_dir or default_cache_dir()
        self.instance = instance
        self.node = node
        self.requested_port = node.port if node else port
        self.kafka_version = kafka_version
        self.heap = heap
        self.home = self.cache_dir / "brokers" / instance
        self.libs = self.cache_dir / f"kafka-{kafka_version}" / "libs"
        self._proc: subprocess.Popen[bytes] | None = None
        self._bootstrap = ""

    # ----------------------------------------------------------------- tools
    @staticmethod
    def java_executable() -> str:
        java_home = os.environ.get("JAVA_HOME")
        candidate = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
        if not candidate or not Path(candidate).exists():
            raise LocalKafkaError(f"Java {_MIN_JAVA}+ is needed to run the local Kafka broker; none found")
        out = subprocess.run([candidate, "-version"], capture_output=True, text=True, check=False)
        match = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
        if not match:
            raise LocalKafkaError(f"could not read the Java version from: {out.stderr.strip()}")
        major = int(match.group(1))
        if major == 1 and match.group(2):
            major = int(match.group(2))
        if major < _MIN_JAVA:
            raise LocalKafkaError(f"Kafka 4.x needs Java {_MIN_JAVA}+; {candidate} is Java {major}")
        return candidate

    def ensure_jars(self) -> Path:
        """Resolve the broker classpath with Maven once per Kafka version; reuse it afterwards."""
        marker = self.libs / ".complete"
        if marker.exists():
            return self.libs
        mvn = shutil.which("mvn")
        if not mvn:
            raise LocalKafkaError("Maven (mvn) is needed once to fetch the Kafka jars; "
                                  "install it (apt-get install maven)")
        self.libs.mkdir(parents=True, exist_ok=True)
        pom = resources.files("pipeline.local_kafka").joinpath("pom.xml")
        with resources.as_file(pom) as pom_path:
            cmd = [
                mvn, "-q", "-B", "-f", str(pom_path), "dependency:copy-dependencies",
                f"-Dkafka.version={self.kafka_version}", "-DincludeScope=runtime",
                f"-DoutputDirectory={self.libs}",
            ]
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise LocalKafkaError(f"Maven could not fetch Kafka {self.kafka_version}:\n"
                                  f"{proc.stdout[-3000:]}{proc.stderr[-2000:]}")
        if not list(self.libs.glob(f"kafka_2.13-{self.kafka_version}.jar")):
            raise LocalKafkaError(f"Maven finished but kafka_2.13-{self.kafka_version}.jar is missing in {self.libs}")
        marker.write_text(self.kafka_version)
        return self.libs

    # ----------------------------------------------------------------- state
    def status(self) -> BrokerStatus:
        pid = self._read_pid()
        meta = self._read_meta()
        bootstrap = meta.get("bootstrap") if isinstance(meta.get("bootstrap"), str) else None
        if pid is None:
            return BrokerStatus(False, None, None, "not running")
        if not (_pid_alive(pid) and self._is_ours(pid)):
            return BrokerStatus(False, pid, None, f"dead: pid {pid} from {self.pid_file} is gone (killed?)")
        assert bootstrap is None or isinstance(bootstrap, str)
        if bootstrap and broker_answers(bootstrap):
            return BrokerStatus(True, pid, bootstrap, f"running on {bootstrap} (pid {pid})")
        return BrokerStatus(False, pid, bootstrap, f"pid {pid} is alive but {bootstrap} does not answer metadata")

    def _choose_ports(self) -> tuple[int, int]:
        """An instance keeps its port across restarts (its clients know it); a new instance takes 9092 if free."""
        meta = self._read_meta()
        previous = meta.get("port")
        if self.requested_port is not None:
            port = self.requested_port
        elif isinstance(previous, int):
            port = previous
        else:
            port = DEFAULT_PORT if _port_free(DEFAULT_PORT) else free_port()
        if not _port_free(port):
            why = "requested" if self.requested_port is not None else f"instance {self.instance!r}'s own port"
            raise LocalKafkaError(f"port {port} on 127.0.0.1 ({why}) is taken by another process; free it, or "
                                  "choose another with --port (clients of this instance then need the new address)")
        if self.node is not None:
            return port, self.node.controller_port
        old_controller = meta.get("controller_port")
        if isinstance(old_controller, int) and old_controller != port and _port_free(old_controller):
            return port, old_controller
        controller = free_port()
        while controller == port:
            controller = free_port()
        return port, controller

    def _server_properties(self, port: int, controller_port: int) -> str:
        node = self.node
        rf = str(node.replication) if node else "1"
        min_isr = str(node.min_insync) if node else "1"
        settings = {
            "process.roles": "broker,controller",
            "node.id": str(node.node_id) if node else "1",
            "controller.quorum.voters": node.voters if node else f"1@127.0.0.1:{controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.home / "data"),
            # Topics are created explicitly with the project's partition count; auto-create would
            # silently make 1-partition topics that break co-partitioning.
            "auto.create.topics.enable": "false",
            "num.partitions": "1",
            # one node: everything RF 1 / min ISR 1 (exactly-once included); a cluster: its nodes' replication
            # for every topic, the offsets and transaction logs too, so losing a node loses no commit
            "default.replication.factor": rf,
            "min.insync.replicas": min_isr,
            "offsets.topic.replication.factor": rf,
            "offsets.topic.num.partitions": "4",
            "transaction.state.log.replication.factor": rf,
            "transaction.state.log.min.isr": min_isr,
            "transaction.state.log.num.partitions": "4",
            "share.coordinator.state.topic.replication.factor": rf,
            "share.coordinator.state.topic.min.isr": min_isr,
            "group.initial.rebalance.delay.ms": "0",
            "num.network.threads": "2",
            "num.io.threads": "4",
            "log.retention.hours": "168",
            "log.segment.bytes": str(256 * 1024 * 1024),
        }
        return "".join(f"{k}={v}\n" for k, v in settings.items())

    def start(self, timeout: float = 90.0, wait: bool = True) -> tuple[BrokerStatus, bool]:
        """Start the broker unless one already runs. Returns (status, started_now). Without ``wait`` it returns
        once the process runs (a cluster's node answers only once a quorum of its controllers runs)."""
        current = self.status()
        if current.running:
            return current, False
        if current.pid is not None and _pid_alive(current.pid) and self._is_ours(current.pid):
            # Alive but not answering: a previous start may still be booting. Give it the timeout.
            bootstrap = current.bootstrap
            if bootstrap and self._wait_ready(bootstrap, current.pid, timeout, None):
                return self.status(), False
            raise LocalKafkaError(f"{current.detail}\n--- broker log tail ---\n{self.log_tail()}")
        java = self.java_executable()
        libs = self.ensure_jars()
        self.home.mkdir(parents=True, exist_ok=True)
        port, controller_port = self._choose_ports()
        props = self.home / "server.properties"
        props.write_text(self._server_properties(port, controller_port))
        cluster_file = self.home / "cluster.id"
        if self.node is not None:
            cluster_file.write_text(self.node.cluster_id)
        elif not cluster_file.exists() or cluster_file.read_text().startswith("-"):  # one an older version wrote
            cluster_file.write_text(new_cluster_id())
        classpath = f"{libs}/*"
        fmt = subprocess.run(
            [java, "-cp", classpath, "kafka.tools.StorageTool", "format", "-t", cluster_file.read_text().strip(),
             "-c", str(props), "--ignore-formatted"],
            capture_output=True, text=True, check=False,
        )
        if fmt.returncode != 0:
            raise LocalKafkaError(f"formatting KRaft storage failed:\n{fmt.stdout}{fmt.stderr}")
        log4j = resources.files("pipeline.local_kafka").joinpath("log4j2.properties")
        with resources.as_file(log4j) as log4j_path:
            log_cfg = str(self.home / "log4j2.properties")
            shutil.copyfile(log4j_path, log_cfg)
        cmd = [
            java, f"-Xmx{self.heap}", "-Xms256m", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true", f"-Dlog4j2.configurationFile=file:{log_cfg}",
            f"-Dkafka.logs.dir={self.home / 'logs'}", "-cp", classpath, "kafka.Kafka", str(props),
        ]
        bootstrap = f"127.0.0.1:{port}"
        with open(self.log_file, "ab") as log:
            proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )
        self.pid_file.write_text(str(proc.pid))
        self._meta_file.write_text(json.dumps({"bootstrap": bootstrap, "port": port,
                                               "controller_port": controller_port,
                                               "kafka_version": self.kafka_version}))
        self._proc, self._bootstrap = proc, bootstrap
        if not wait:
            return BrokerStatus(False, proc.pid, bootstrap, "starting"), True
        return self.ready(timeout), True

    def ready(self, timeout: float = 90.0) -> BrokerStatus:
        """Wait for the broker this object started to answer metadata."""
        proc, bootstrap = self._proc, self._bootstrap
        assert proc is not None
        if not self._wait_ready(bootstrap, proc.pid, timeout, proc):
            self._kill(proc.pid)
            raise LocalKafkaError(
                f"broker did not answer on {bootstrap} within {timeout:.0f}s\n"
                f"--- broker log tail ---\n{self.log_tail()}"
            )
        return self.status()

    def kill(self) -> None:
        """kill -9 the broker: no controlled shutdown, no leadership handed over."""
        pid = self._read_pid()
        if pid is not None and _pid_alive(pid) and _is_kafka_process(pid):
            self._kill(pid)
            while _pid_alive(pid):
                _reap(pid)
                time.sleep(0.1)

    def _wait_ready(self, bootstrap: str, pid: int, timeout: float, proc: subprocess.Popen[bytes] | None) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                raise LocalKafkaError(
                    f"broker exited with code {proc.returncode} during start-up\n"
                    f"--- broker log tail ---\n{self.log_tail()}"
                )
            if proc is None and not _pid_alive(pid):
                return False
            if broker_answers(bootstrap, timeout=1.0):
                return True
            time.sleep(0.3)
        return False

    def _is_ours(self, pid: int) -> bool:
        return _is_kafka_process(pid)


def _reap(pid: int) -> None:
    """Collect our own child if the broker was started by this process, so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


class LocalCluster:
    """``nodes`` KRaft nodes from the same jars, each broker and controller (a quorum of all of them), each with
    its own ports and directory; every topic (offsets and transaction logs included) replicated ``nodes`` times
    with ``min.insync.replicas`` ``nodes - 1``: one node can die without losing an acknowledged write."""

    def __init__(self, instance: str, nodes: int = 3, cache_dir: Path | None = None, heap: str = "512m") -> None:
        ports = _distinct_ports(2 * nodes)
        voters = ",".join(f"{i + 1}@127.0.0.1:{ports[nodes + i]}" for i in range(nodes))
        cluster_id = new_cluster_id()
        self.nodes = [
            LocalKafka(cache_dir=cache_dir, instance=f"{instance}-node{i + 1}", heap=heap,
                       node=ClusterNode(i + 1, ports[i], ports[nodes + i], voters, cluster_id, nodes,
                                        max(1, nodes - 1)))
            for i in range(nodes)]

    @property
    def bootstrap(self) -> str:
        return ",".join(f"127.0.0.1:{node.requested_port}" for node in self.nodes)

    def start(self, timeout: float = 120.0) -> str:
        for node in self.nodes:
            node.start(wait=False)
        for node in self.nodes:
            node.ready(timeout)
        return self.bootstrap

    def node(self, node_id: int) -> LocalKafka:
        return next(n for n in self.nodes if n.node is not None and n.node.node_id == node_id)

    def stop(self, purge: bool = True) -> None:
        for node in self.nodes:
            node.stop(timeout=10.0, purge=purge)


def _distinct_ports(n: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < n:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports
