"""Fetch, start, probe and stop a local Apicurio Registry, the schema registry of ``--serialization confluent``.

Apicurio Registry 3.x (Apache 2.0) comes from Maven Central as a Quarkus fast-jar (``quarkus-run.jar`` beside its
``lib/``), run with plain ``java -jar``; its Confluent-compatible API is under ``/apis/ccompat/v7``. 3.x was chosen
over the 2.6 line (Java 17) because it is the maintained line and the fast-jar the project can start like its
broker; it needs Java 21 or newer, which :func:`java_21` finds beside the default JDK. Schemas live in the
registry's in-memory database: a restart starts empty, and producers register their schemas again on start.

Like the broker (``pipeline.local_kafka``), everything lives in the cache directory: the distribution per
version, and per *instance* its port, pid file and log.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import re
import shutil
import signal
import subprocess
import tarfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from pipeline.local_kafka.broker import InstanceFiles, _pid_alive, default_cache_dir
from pipeline.ports import free_port

DEFAULT_APICURIO_VERSION = "3.3.3"
MIN_JAVA = 21
CCOMPAT_PATH = "/apis/ccompat/v7"
# Where JDKs beside the default one are installed (Debian packages, Temurin's .deb, tarballs under /opt).
JDK_GLOBS = ("/usr/lib/jvm/*/bin/java", "/opt/java/*/bin/java", "/opt/*jdk*/bin/java", "/usr/local/*jdk*/bin/java")


class LocalRegistryError(RuntimeError):
    """The local registry could not be fetched, started or reached; the message says why."""


@dataclass(frozen=True)
class RegistryStatus:
    running: bool
    pid: int | None
    url: str | None  # the Confluent-compatible API's base URL (what ``--registry-url`` takes)
    detail: str


def java_major(java: str) -> int | None:
    """The major version of a ``java`` executable, None if it does not run."""
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, check=False, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if not match:
        return None
    major = int(match.group(1))
    return int(match.group(2)) if major == 1 and match.group(2) else major


def java_21() -> str:
    """A ``java`` of version 21 or newer: ``$REWARDSTREAM_REGISTRY_JAVA``, ``$JAVA_HOME``, ``java`` on the PATH,
    then the newest of the JDKs installed in the usual places (the default JDK may be an older one)."""
    explicit = os.environ.get("REWARDSTREAM_REGISTRY_JAVA")
    candidates = [explicit] if explicit else []
    if os.environ.get("JAVA_HOME"):
        candidates.append(str(Path(os.environ["JAVA_HOME"]) / "bin" / "java"))
    on_path = shutil.which("java")
    if on_path:
        candidates.append(on_path)
    candidates += sorted({p for pattern in JDK_GLOBS for p in glob.glob(pattern)})
    found: list[tuple[int, str]] = []
    for java in dict.fromkeys(candidates):
        major = java_major(java) if Path(java).exists() else None
        if major is not None:
            if java == explicit and major >= MIN_JAVA:
                return java
            found.append((major, java))
    usable = [f for f in found if f[0] >= MIN_JAVA]
    if not usable:
        seen = ", ".join(f"{j} (Java {m})" for m, j in found) or "none"
        raise LocalRegistryError(f"Apicurio Registry {DEFAULT_APICURIO_VERSION} needs Java {MIN_JAVA}+; found {seen}. "
                                 "Install one (e.g. a Temurin JDK) or point REWARDSTREAM_REGISTRY_JAVA at its java")
    return max(usable)[1]


def registry_answers(url: str, timeout: float = 2.0) -> bool:
    """True when the Confluent-compatible API at ``url`` lists its subjects."""
    try:
        with urllib.request.urlopen(f"{url}/subjects", timeout=timeout) as resp:
            return int(resp.status) == 200
    except (OSError, urllib.error.URLError, ValueError):
        return False


def _is_registry_process(pid: int) -> bool:
    try:
        return b"quarkus-run.jar" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return _pid_alive(pid)


class LocalRegistry(InstanceFiles):
    """One local registry instance. ``start`` is idempotent; ``status`` detects a killed one."""

    kind = "registry"

    def __init__(self, *, cache_dir: Path | None = None, instance: str = "default", port: int | None = None,
                 version: str = DEFAULT_APICURIO_VERSION, heap: str = "512m") -> None:
        self.cache_dir = cache_dir or default_cache_dir()
        self.instance = instance
        self.requested_port = port
        self.version = version
        self.heap = heap
        self.home = self.cache_dir / "registries" / instance
        self.dist = self.cache_dir / f"apicurio-registry-{version}"

    def ensure_distribution(self) -> Path:
        """Fetch the fast-jar archive with Maven once per version and unpack it; reuse it afterwards."""
        marker = self.dist / ".complete"
        if marker.exists():
            return self.dist
        mvn = shutil.which("mvn")
        if not mvn:
            raise LocalRegistryError("Maven (mvn) is needed once to fetch Apicurio Registry; install it "
                                     "(apt-get install maven)")
        download = self.cache_dir / f"apicurio-registry-{self.version}-download"
        download.mkdir(parents=True, exist_ok=True)
        pom = resources.files("pipeline.local_registry").joinpath("pom.xml")
        with resources.as_file(pom) as pom_path:
            proc = subprocess.run([mvn, "-q", "-B", "-f", str(pom_path), "dependency:copy-dependencies",
                                   f"-Dapicurio.version={self.version}", f"-DoutputDirectory={download}"],
                                  capture_output=True, text=True, check=False)
        archives = list(download.glob(f"apicurio-registry-app-{self.version}-all.tar.gz"))
        if proc.returncode != 0 or not archives:
            raise LocalRegistryError(f"Maven could not fetch Apicurio Registry {self.version}:\n"
                                     f"{proc.stdout[-3000:]}{proc.stderr[-2000:]}")
        staging = self.dist.with_name(self.dist.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        with tarfile.open(archives[0]) as tar:
            tar.extractall(staging, filter="data")
        if not (staging / "quarkus-run.jar").exists():
            raise LocalRegistryError(f"the archive {archives[0]} has no quarkus-run.jar")
        shutil.rmtree(self.dist, ignore_errors=True)
        staging.rename(self.dist)
        shutil.rmtree(download, ignore_errors=True)
        marker.write_text(self.version)
        return self.dist

    def status(self) -> RegistryStatus:
        pid = self._read_pid()
        url = self._read_meta().get("url")
        url = url if isinstance(url, str) else None
        if pid is None:
            return RegistryStatus(False, None, None, "not running")
        if not (_pid_alive(pid) and self._is_ours(pid)):
            return RegistryStatus(False, pid, None, f"dead: pid {pid} from {self.pid_file} is gone (killed?)")
        if url and registry_answers(url):
            return RegistryStatus(True, pid, url, f"running at {url} (pid {pid})")
        return RegistryStatus(False, pid, url, f"pid {pid} is alive but {url} does not answer")

    def start(self, timeout: float = 120.0) -> tuple[RegistryStatus, bool]:
        """Start the registry unless one already runs. Returns (status, started_now)."""
        current = self.status()
        if current.running:
            return current, False
        if current.pid is not None and _pid_alive(current.pid) and self._is_ours(current.pid) and current.url:
            if self._wait_ready(current.url, current.pid, timeout, None):  # a previous start still booting
                return self.status(), False
            raise LocalRegistryError(f"{current.detail}\n--- registry log tail ---\n{self.log_tail()}")
        java = java_21()
        dist = self.ensure_distribution()
        self.home.mkdir(parents=True, exist_ok=True)
        previous = self._read_meta().get("port")
        port = self.requested_port or (previous if isinstance(previous, int) else free_port())
        url = f"http://127.0.0.1:{port}{CCOMPAT_PATH}"
        cmd = [java, f"-Xmx{self.heap}", "-Djava.awt.headless=true", f"-Dquarkus.http.port={port}",
               # the management interface (health, metrics) listens on 0.0.0.0:9000 unless told otherwise
               "-Dquarkus.http.host=127.0.0.1", "-Dquarkus.management.host=127.0.0.1",
               f"-Dquarkus.management.port={free_port()}",
               "-jar", str(dist / "quarkus-run.jar")]
        with open(self.log_file, "ab") as log:
            proc = subprocess.Popen(cmd, cwd=self.home, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
        self.pid_file.write_text(str(proc.pid))
        self._meta_file.write_text(json.dumps({"url": url, "port": port, "version": self.version}))
        if not self._wait_ready(url, proc.pid, timeout, proc):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            raise LocalRegistryError(f"registry did not answer at {url} within {timeout:.0f}s\n"
                                     f"--- registry log tail ---\n{self.log_tail()}")
        return self.status(), True

    def _wait_ready(self, url: str, pid: int, timeout: float, proc: subprocess.Popen[bytes] | None) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                raise LocalRegistryError(f"registry exited with code {proc.returncode} during start-up\n"
                                         f"--- registry log tail ---\n{self.log_tail()}")
            if proc is None and not _pid_alive(pid):
                return False
            if registry_answers(url, timeout=1.0):
                return True
            time.sleep(0.3)
        return False

    def _is_ours(self, pid: int) -> bool:
        return _is_registry_process(pid)
