"""Where the stream keeps its checkpoint and fill state: a directory on the local disk, or on HDFS in the
cluster profile, read and written alike from Python.

Spark and the stream's JVM operators reach either through Hadoop's FileSystem API (the URI says which). The
Python side (snapshots, restores, the state's size, the backfill's scratch state) uses pyarrow's file system
interface: the local one, or HDFS's REST API, WebHDFS, through fsspec (pyarrow's own HDFS client needs
``libhdfs.so`` from a Hadoop distribution, which Maven Central does not serve). WebHDFS is HDFS's documented
HTTP interface to the same files: https://hadoop.apache.org/docs/stable/hadoop-project-dist/hadoop-hdfs/WebHDFS.html
"""

from __future__ import annotations

import getpass
import os
import posixpath
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from urllib.parse import urlparse

import pyarrow.fs as pafs

from tickflow.settings import Settings


@cache
def _webhdfs(host: str, http_port: int) -> pafs.FileSystem:
    import fsspec

    # Simple authentication, as the user Spark's Hadoop client acts as too: the one running the process.
    handler = pafs.FSSpecHandler(fsspec.filesystem("webhdfs", host=host, port=http_port, user=getpass.getuser()))
    return pafs.PyFileSystem(handler)


class Location:
    """A file or directory on the local disk or on HDFS (``hdfs://<namenode>:<port>/path``)."""

    def __init__(self, fs: pafs.FileSystem, path: str, root: str) -> None:
        self.fs = fs
        self.path = path  # inside ``fs``
        self._root = root  # the URI's scheme and authority ("file://" or "hdfs://host:port")

    @classmethod
    def of(cls, where: str | Path, settings: Settings | None = None) -> Location:
        """A local path (or ``file:`` URI) or an ``hdfs://`` URI; the NameNode's HTTP port from ``settings``."""
        text = str(where)
        if text.startswith("hdfs://"):
            uri = urlparse(text)
            if not uri.hostname:
                raise ValueError(f"{text} names no NameNode: write hdfs://<host>:<port>/<path>.")
            root = f"hdfs://{uri.netloc}"
            http_port = (settings or Settings()).ports.hdfs_namenode_http
            return cls(_webhdfs(uri.hostname, http_port), posixpath.normpath(uri.path), root)
        path = Path(urlparse(text).path if text.startswith("file:") else text).expanduser().resolve()
        return cls(pafs.LocalFileSystem(), str(path), "file://")

    @property
    def is_local(self) -> bool:
        return self._root == "file://"

    def as_uri(self) -> str:
        """What Spark and Hadoop take: ``file:///...`` or ``hdfs://host:port/...``."""
        return f"{self._root}{self.path}"

    def __str__(self) -> str:
        return self.path if self.is_local else self.as_uri()

    def __repr__(self) -> str:
        return f"Location({self.as_uri()!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Location) and other.as_uri() == self.as_uri()

    def __hash__(self) -> int:
        return hash(self.as_uri())

    def __truediv__(self, name: str) -> Location:
        return Location(self.fs, posixpath.join(self.path, name), self._root)

    @property
    def name(self) -> str:
        return posixpath.basename(self.path)

    @property
    def parent(self) -> Location:
        return Location(self.fs, posixpath.dirname(self.path), self._root)

    def with_name(self, name: str) -> Location:
        return self.parent / name

    def exists(self) -> bool:
        return bool(self.fs.get_file_info(self.path).type != pafs.FileType.NotFound)

    def iterdir(self) -> list[Location]:
        """What the directory holds (nothing when it does not exist)."""
        if not self.exists():
            return []
        return [
            Location(self.fs, info.path, self._root) for info in self.fs.get_file_info(pafs.FileSelector(self.path))
        ]

    def names(self) -> list[str]:
        return [child.name for child in self.iterdir()]

    def mkdir(self) -> None:
        """Create the directory and its parents (nothing if it exists)."""
        self.fs.create_dir(self.path, recursive=True)

    def read_bytes(self) -> bytes:
        with self.fs.open_input_stream(self.path) as stream:
            return bytes(stream.read())

    def read_text(self) -> str:
        return self.read_bytes().decode()

    def write_bytes(self, data: bytes) -> None:
        """Write the whole file at once: to a partial file beside it, then renamed over it (atomic on both)."""
        self.parent.mkdir()
        partial = self.with_name(f".{self.name}.{os.getpid()}.partial")
        with self.fs.open_output_stream(partial.path) as stream:
            stream.write(data)
        partial.replace(self)

    def write_text(self, text: str) -> None:
        self.write_bytes(text.encode())

    def replace(self, target: Location) -> None:
        """Rename onto ``target``, replacing a file there."""
        if not self.is_local and target.exists():
            self.fs.delete_file(target.path)  # WebHDFS's RENAME does not overwrite
        self.fs.move(self.path, target.path)

    def rename(self, target: Location) -> None:
        """Rename a directory (or file) to ``target``, which must not exist."""
        self.fs.move(self.path, target.path)

    def rmtree(self) -> None:
        if self.exists():
            self.fs.delete_dir(self.path)

    def unlink(self) -> None:
        self.fs.delete_file(self.path)


@contextmanager
def scratch(settings: Settings, prefix: str) -> Iterator[Location]:
    """A directory of its own for one job's intermediate files, deleted afterwards: on the cluster profile's
    HDFS (executors on every host write there), else a local temporary directory."""
    if settings.hdfs_uri is None:
        with tempfile.TemporaryDirectory(prefix=prefix) as directory:
            yield Location.of(directory, settings)
        return
    location = Location.of(f"{settings.hdfs_uri}/tickflow/scratch/{prefix}{uuid.uuid4().hex}", settings)
    location.mkdir()
    try:
        yield location
    finally:
        location.rmtree()
