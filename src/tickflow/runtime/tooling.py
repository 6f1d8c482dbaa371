"""Finding a JDK and fetching pinned artifacts from Maven Central through ``mvn``.

Downloads go through Maven so that ``~/.m2`` caches them across runs and machines
that share it; nothing is downloaded from anywhere but the package registries.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tarfile
from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from pathlib import Path
from xml.sax.saxutils import escape

from tickflow.errors import StackError

# The module openings Spark's launcher passes on Java 17 (JavaModuleOptions); Hive and HBase need them too.
ADD_OPENS = [
    f"--add-opens=java.base/{pkg}=ALL-UNNAMED"
    for pkg in (
        "java.lang",
        "java.lang.invoke",
        "java.lang.reflect",
        "java.io",
        "java.net",
        "java.nio",
        "java.util",
        "java.util.concurrent",
        "java.util.concurrent.atomic",
        "sun.nio.ch",
        "sun.nio.cs",
        "sun.security.action",
        "sun.util.calendar",
    )
]

JVM_DIRS = (Path("/usr/lib/jvm"), Path("/opt/java"), Path("/usr/local/lib/jvm"))


def _java_major(java: Path) -> int | None:
    try:
        out = subprocess.run([str(java), "-version"], capture_output=True, text=True, timeout=30, check=False).stderr
    except OSError:
        return None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if not match:
        return None
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def _java_candidates(preferred: Path | None) -> Iterable[Path]:
    if preferred:
        yield preferred / "bin" / "java"
    if home := os.environ.get("JAVA_HOME"):
        yield Path(home) / "bin" / "java"
    if on_path := shutil.which("java"):
        yield Path(on_path).resolve()
    for parent in JVM_DIRS:
        if parent.is_dir():
            yield from sorted(parent.glob("*/bin/java"))


@cache
def find_java(min_major: int, preferred: Path | None = None, purpose: str = "the stack") -> Path:
    """The first JDK at least ``min_major``: the configured one, JAVA_HOME, PATH, then /usr/lib/jvm."""
    seen: list[str] = []
    for java in _java_candidates(preferred):
        if not java.exists():
            continue
        major = _java_major(java)
        if major is not None and major >= min_major:
            return java
        seen.append(f"{java} ({major})")
    found = f"; found only {', '.join(seen)}" if seen else ""
    raise StackError(
        f"{purpose} needs Java {min_major} or newer and none was found{found}: "
        f"install a JDK {min_major}+ and point TICKFLOW_JAVA_HOME (or TICKFLOW_JAVA21_HOME) at it."
    )


def java_home(java: Path) -> Path:
    return java.parent.parent


def _mvn() -> str:
    mvn = shutil.which("mvn")
    if not mvn:
        raise StackError(
            "Maven (mvn) is needed to fetch the service jars from Maven Central: "
            "install it (apt-get install maven) and run the command again."
        )
    return mvn


def run_mvn(args: Sequence[str], log: Path) -> int:
    """Run Maven in batch mode, quietly, its output appended to ``log``; returns its exit code."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as out:
        proc = subprocess.run(
            [_mvn(), "-B", "-q", "-Dstyle.color=never", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
        )
    return proc.returncode


def _run_mvn(args: Sequence[str], what: str, log: Path) -> None:
    if (code := run_mvn(args, log)) != 0:
        raise StackError(
            f"Downloading {what} from Maven Central failed (mvn exit {code}): "
            f"read {log} for the cause, check the network, and run the command again."
        )


def _exclusions(excludes: Sequence[str]) -> str:
    return "".join(
        f"<exclusion><groupId>{escape(g)}</groupId><artifactId>{escape(a)}</artifactId></exclusion>"
        for g, a in (e.split(":") for e in excludes)
    )


def _pom(
    coordinates: Sequence[str], excludes: Sequence[str], own_excludes: Mapping[str, Sequence[str]] | None = None
) -> str:
    deps = []
    for coordinate in coordinates:
        group, artifact, version = coordinate.split(":")
        exclusions = _exclusions([*excludes, *(own_excludes or {}).get(coordinate, ())])
        deps.append(
            f"<dependency><groupId>{escape(group)}</groupId><artifactId>{escape(artifact)}</artifactId>"
            f"<version>{escape(version)}</version><exclusions>{exclusions}</exclusions></dependency>"
        )
    return (
        '<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>'
        "<groupId>tickflow.stack</groupId><artifactId>jars</artifactId><version>1</version>"
        f"<packaging>pom</packaging><dependencies>{''.join(deps)}</dependencies></project>"
    )


def fetch_jars(
    coordinates: Sequence[str],
    dest: Path,
    log: Path,
    excludes: Sequence[str] = (),
    transitive: bool = True,
    own_excludes: Mapping[str, Sequence[str]] | None = None,
) -> Path:
    """Copy ``coordinates`` (and their runtime closure when ``transitive``) into ``dest``.

    ``excludes`` ("group:artifact", ``*`` allowed) apply to every coordinate, ``own_excludes`` only to
    the coordinate they are listed under. Skipped when ``dest`` already holds exactly this set, so a
    second call costs nothing.
    """
    pom = _pom(coordinates, excludes, own_excludes) + ("" if transitive else "<!-- direct only -->")
    stamp = dest / ".complete"
    digest = hashlib.sha256(pom.encode()).hexdigest()
    if stamp.exists() and stamp.read_text() == digest:
        return dest
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    pom_path = dest / "pom.xml"
    pom_path.write_text(pom)
    _run_mvn(
        [
            "-f",
            str(pom_path),
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={dest}",
            f"-DexcludeTransitive={str(not transitive).lower()}",
        ],
        ", ".join(coordinates),
        log,
    )
    stamp.write_text(digest)
    return dest


def local_repository() -> Path:
    return Path(os.environ.get("MAVEN_REPO_LOCAL", Path.home() / ".m2" / "repository"))


def fetch_artifact(coordinate: str, log: Path) -> Path:
    """Fetch one artifact (``group:artifact:version:type[:classifier]``, no dependencies) into the local Maven
    repository; returns its file there."""
    group, artifact, version, kind, *classifier = coordinate.split(":")
    _run_mvn(["dependency:get", f"-Dartifact={coordinate}", "-Dtransitive=false"], coordinate, log)
    name = "-".join([artifact, version, *classifier])
    return local_repository() / group.replace(".", "/") / artifact / version / f"{name}.{kind}"


def fetch_archive(group: str, artifact: str, version: str, classifier: str, dest: Path, log: Path) -> Path:
    """Fetch a ``tar.gz`` artifact (no dependencies) and unpack it into ``dest``."""
    stamp = dest / ".complete"
    coordinate = f"{group}:{artifact}:{version}:tar.gz:{classifier}"
    if stamp.exists() and stamp.read_text() == coordinate:
        return dest
    archive = fetch_artifact(coordinate, log)
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    with tarfile.open(archive) as tar:
        tar.extractall(dest, filter="data")
    stamp.write_text(coordinate)
    return dest


def pyspark_home() -> Path:
    """The installed pyspark package, which is a complete Spark distribution (jars, bin/)."""
    import importlib.util

    spec = importlib.util.find_spec("pyspark")
    if spec is None or spec.origin is None:
        raise StackError("pyspark is not installed in this Python: run `make setup` (pip install -r requirements.txt).")
    return Path(spec.origin).parent
