"""Statistics stores on disk: one directory per key, one safetensors file per decoder layer.

A store holds the :class:`LayerStatistics` of one calibration set, layer by layer, so that a
one-shot prune can read layer ``i`` without reading the others::

    <store>/layer-00000.safetensors   LayerStatistics.save of decoder layer 0 (+ "store" digest)
    <store>/layer-00001.safetensors
    <store>/manifest.json             format, key, digest, kind, num_tokens, num_layers,
                                      {file: size in bytes}; written last

Invariants:

- A store is built in a temporary directory beside its final path and renamed into place once
  its manifest is written, so a reader either finds a complete store or none.
- :func:`ensure_store` builds under a node-wide lock (``raysweep.atomic.file_lock``): concurrent
  builders of one key build it once; the others wait and then read it.
- :func:`open_store` accepts a store only if its manifest names exactly the requested key and
  every layer file exists with its recorded size and carries the key's digest; anything else
  (truncated, missing, another model's) is rebuilt by :func:`ensure_store`, with a warning.

:class:`MixedStatistics` is the streaming form of :meth:`LayerStatistics.combine` over stores:
its ``layer(i)`` reads layer ``i`` of one store at a time into the combined result.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from raysweep.atomic import file_lock, fsync, replace_dir
from raysweep.pruning.statistics import (
    KINDS,
    LayerStatistics,
    StatisticsAccumulator,
    StatisticsKind,
)

# /2: every layer file also holds its inputs' first moments (DSnoT); the format is part of each
# store's key, so a store written before them is never read as if it had them.
STORE_FORMAT = "raysweep.pruning.StatisticsStore/2"
MANIFEST = "manifest.json"

LayerSink = Callable[[int, LayerStatistics], None]


@runtime_checkable
class StatisticsProvider(Protocol):
    """Per-layer statistics for a one-shot prune: ``layer(i)`` returns decoder layer ``i``'s
    :class:`LayerStatistics` (keys are full dotted module names), freshly built per call; the
    caller drops it once that layer is pruned."""

    def layer(self, index: int) -> LayerStatistics: ...


class InvalidStore(ValueError):
    """A store directory that does not hold complete statistics of the requested key."""


def key_digest(key: Mapping[str, Any]) -> str:
    """SHA-256 of the key's canonical JSON: what every file of its store is stamped with."""
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()


def _canonical(key: Mapping[str, Any]) -> Any:
    return json.loads(json.dumps(key, sort_keys=True, default=str))


def layer_file(index: int) -> str:
    return f"layer-{index:05d}.safetensors"


class StatisticsStore:
    """A complete store, validated by :func:`open_store`. Reads one layer per call."""

    def __init__(self, path: Path, manifest: Mapping[str, Any]) -> None:
        self.path = path
        self.manifest = dict(manifest)

    @property
    def kind(self) -> StatisticsKind:
        return self.manifest["kind"]  # type: ignore[no-any-return]

    @property
    def num_tokens(self) -> float:
        return float(self.manifest["num_tokens"])

    @property
    def num_layers(self) -> int:
        return int(self.manifest["num_layers"])

    @property
    def key(self) -> dict[str, Any]:
        return dict(self.manifest["key"])

    def layer_bytes(self, index: int) -> int:
        return int(self.manifest["files"][layer_file(index)])

    @property
    def nbytes(self) -> int:
        """Bytes on disk of all layer files."""
        return sum(int(v) for v in self.manifest["files"].values())

    def layer(self, index: int, kind: StatisticsKind | None = None) -> LayerStatistics:
        """Layer ``index``'s statistics; ``kind="sqnorm"`` of a Hessian store reads diagonals."""
        if not 0 <= index < self.num_layers:
            raise IndexError(f"layer {index} outside the store's {self.num_layers} layers")
        return LayerStatistics.load(self.path / layer_file(index), kind)

    def __repr__(self) -> str:
        return f"StatisticsStore({str(self.path)!r}, kind={self.kind!r}, layers={self.num_layers})"


def _read_manifest(path: Path) -> dict[str, Any]:
    try:
        manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidStore(f"{path} has no {MANIFEST} (an unfinished build)") from None
    except (OSError, ValueError) as err:
        raise InvalidStore(f"{path}/{MANIFEST} is unreadable: {err}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != STORE_FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else None
        raise InvalidStore(f"{path} is not a {STORE_FORMAT} store (format={found!r})")
    return manifest


def open_store(
    path: str | Path,
    key: Mapping[str, Any],
    kind: StatisticsKind | None = None,
    num_layers: int | None = None,
) -> StatisticsStore:
    """The complete store of ``key`` at ``path``.

    Raises FileNotFoundError when there is none, :class:`InvalidStore` when what is there is not
    ``key``'s complete store (another key, another kind or layer count than asked for, a layer
    file missing, truncated or stamped with another key). Reads file headers only.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(path)
    manifest = _read_manifest(path)
    digest = key_digest(key)
    if manifest.get("digest") != digest or manifest.get("key") != _canonical(key):
        raise InvalidStore(
            f"{path} holds statistics of another key ({manifest.get('key')!r}, not {dict(key)!r})"
        )
    if manifest.get("kind") not in KINDS or (kind is not None and manifest["kind"] != kind):
        raise InvalidStore(f"{path} holds {manifest.get('kind')!r} statistics, not {kind!r}")
    files = manifest.get("files")
    layers = manifest.get("num_layers")
    if not isinstance(files, dict) or not isinstance(layers, int) or len(files) != layers:
        raise InvalidStore(f"{path}/{MANIFEST} lists {files!r} for {layers!r} layers")
    if num_layers is not None and layers != num_layers:
        raise InvalidStore(f"{path} has {layers} layers, the model {num_layers}")
    for index in range(layers):
        name = layer_file(index)
        file = path / name
        if name not in files:
            raise InvalidStore(f"{path}/{MANIFEST} does not list {name}")
        try:
            size = file.stat().st_size
        except FileNotFoundError:
            raise InvalidStore(f"{file} is missing") from None
        if size != files[name]:
            raise InvalidStore(f"{file} has {size} bytes, its manifest says {files[name]}")
        try:
            header = LayerStatistics.read_metadata(file)
        except Exception as err:  # a corrupt header: safetensors raises its own error types
            raise InvalidStore(f"{file} is unreadable: {err}") from None
        if header.get("store") != digest or header.get("layer") != str(index):
            raise InvalidStore(f"{file} belongs to another store or layer")
        if header.get("kind") != manifest["kind"]:
            raise InvalidStore(f"{file} holds {header.get('kind')} statistics")
    return StatisticsStore(path, manifest)


def load_store(
    path: str | Path,
    key: Mapping[str, Any],
    kind: StatisticsKind | None = None,
    num_layers: int | None = None,
    *,
    warn: bool = True,
) -> StatisticsStore | None:
    """:func:`open_store`, or None when there is no valid store (with a warning if ``warn`` and
    an invalid one is in the way)."""
    try:
        return open_store(path, key, kind, num_layers)
    except FileNotFoundError:
        return None
    except InvalidStore as err:
        if warn:
            warnings.warn(f"ignoring statistics store: {err}; rebuilding it", stacklevel=2)
        return None


def lock_path(path: str | Path) -> Path:
    path = Path(path)
    return path.parent / f".{path.name}.lock"


class StoreWriter:
    """A layer sink that writes a store in a temporary directory; ``commit`` moves it into place.

    Call it with ``(index, stats)`` for layers 0, 1, … in order; each layer is on disk (and may
    be freed) when the call returns.
    """

    def __init__(self, path: str | Path, key: Mapping[str, Any], kind: StatisticsKind) -> None:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        self.path = Path(path)
        self.key = _canonical(key)
        self.digest = key_digest(key)
        self.kind: StatisticsKind = kind
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.tmp-", dir=self.path.parent))
        self.files: dict[str, int] = {}
        self.num_tokens: float | None = None

    def __call__(self, index: int, stats: LayerStatistics) -> None:
        if index != len(self.files):
            raise ValueError(
                f"layers must be written in order: got {index}, expected {len(self.files)}"
            )
        if stats.kind != self.kind:
            raise ValueError(f"this store holds {self.kind} statistics, got {stats.kind}")
        if self.num_tokens is None:
            self.num_tokens = float(stats.num_tokens)
        elif float(stats.num_tokens) != self.num_tokens:
            raise ValueError("every layer of a store counts the same calibration tokens")
        name = layer_file(index)
        stats.save(self.tmp / name, metadata={"store": self.digest, "layer": str(index)})
        fsync(self.tmp / name)
        self.files[name] = (self.tmp / name).stat().st_size

    def commit(self) -> StatisticsStore:
        """Write the manifest and rename the directory to ``path`` (replacing an invalid store)."""
        if not self.files or self.num_tokens is None:
            raise ValueError("a store needs at least one layer")
        manifest = {
            "format": STORE_FORMAT,
            "key": self.key,
            "digest": self.digest,
            "kind": self.kind,
            "num_tokens": self.num_tokens,
            "num_layers": len(self.files),
            "files": self.files,
        }
        (self.tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
        fsync(self.tmp / MANIFEST)
        os.chmod(self.tmp, 0o755)  # mkdtemp creates 0700; stores are shared by the node's trials
        replace_dir(self.tmp, self.path)
        return StatisticsStore(self.path, manifest)

    def abort(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


def _remove_leftovers(path: Path) -> None:
    """Temporary directories of builds of this key that died (only called under its lock)."""
    for pattern in (f".{path.name}.tmp-*", f".{path.name}.old-*"):
        for leftover in path.parent.glob(pattern):
            shutil.rmtree(leftover, ignore_errors=True)


def ensure_store(
    path: str | Path,
    key: Mapping[str, Any],
    kind: StatisticsKind,
    build: Callable[[LayerSink], None],
    num_layers: int | None = None,
) -> tuple[StatisticsStore, bool]:
    """The store of ``key`` at ``path``, built first if there is no valid one: ``(store, built)``.

    ``build(sink)`` must call ``sink(index, stats)`` once per decoder layer, in order. Builds
    run under the node-wide lock of ``path``; a builder that finds the store complete once it
    holds the lock returns it without building. An invalid store is rebuilt with a warning.
    """
    path = Path(path)
    found = load_store(path, key, kind, num_layers, warn=False)
    if found is not None:
        return found, False
    with file_lock(lock_path(path)):
        found = load_store(path, key, kind, num_layers, warn=True)
        if found is not None:
            return found, False
        _remove_leftovers(path)
        writer = StoreWriter(path, key, kind)
        try:
            build(writer)
            if num_layers is not None and len(writer.files) != num_layers:
                raise RuntimeError(f"the build wrote {len(writer.files)} of {num_layers} layers")
            store = writer.commit()
        except BaseException:
            writer.abort()
            raise
    return store, True


class MixedStatistics:
    """Per-layer statistics of a mixture of stores (a :class:`StatisticsProvider`).

    ``layer(i)`` equals ``LayerStatistics.combine({s.layer(i): w for s, w in parts.items()},
    num_tokens)`` but reads the parts one at a time: memory holds the combined layer plus at
    most one store's layer. ``kind`` defaults to ``hessian`` when every part holds Hessians,
    else ``sqnorm`` (Hessian parts then contribute their diagonals, read tensor by tensor).
    ``num_tokens`` (default: the parts' total) is the token count the result is scaled to.
    Parts of weight 0 are never read.
    """

    def __init__(
        self,
        parts: Mapping[StatisticsStore, float],
        kind: StatisticsKind | None = None,
        num_tokens: float | None = None,
    ) -> None:
        items = [(store, float(w)) for store, w in parts.items()]
        if not items:
            raise ValueError("a mixture needs at least one store")
        weights = [w for _, w in items]
        if any(w < 0 for w in weights) or sum(weights) <= 0:
            raise ValueError(f"weights must be >= 0 with a positive sum, got {weights}")
        all_hessian = all(store.kind == "hessian" for store, _ in items)
        if kind is None:
            kind = "hessian" if all_hessian else "sqnorm"
        if kind == "hessian" and not all_hessian:
            raise ValueError("a Hessian mixture needs Hessian stores")
        layers = {store.num_layers for store, _ in items}
        if len(layers) != 1:
            raise ValueError(f"the stores cover different layer counts: {sorted(layers)}")
        self.kind: StatisticsKind = kind
        self.num_layers = layers.pop()
        self.num_tokens = float(
            sum(store.num_tokens for store, _ in items) if num_tokens is None else num_tokens
        )
        self._weights = weights
        self.parts = [(store, w) for store, w in items if w > 0]

    def layer(self, index: int) -> LayerStatistics:
        acc = StatisticsAccumulator(self.kind, self._weights, self.num_tokens)
        for store, weight in self.parts:
            part = store.layer(index, self.kind)
            acc.add(part, weight)
            del part
        return acc.result()
