"""Which storage URLs a CR may name: pure checks, no I/O (the operator never fetches them)."""

import ipaddress
import posixpath
from urllib.parse import urlsplit

from worker.contract import redact

# Cloud metadata services hand out node credentials: never a target for a worker pod.
_METADATA_HOSTS = frozenset({
    "metadata", "metadata.google.internal", "metadata.goog", "instance-data",
    "instance-data.ec2.internal", "100.100.100.200", "fd00:ec2::254",
})


class URLPolicyError(ValueError):
    """A URL in a CR is not allowed; says which field and why."""

    def __init__(self, field: str, url: str, reason: str) -> None:
        super().__init__(f"spec.{field}: {redact(url)!r} is not allowed: {reason}")
        self.field = field


def _check_host(field: str, url: str, host: str | None, allowed_hosts: frozenset[str]) -> None:
    if not host:
        raise URLPolicyError(field, url, "no host")
    if host.lower().rstrip(".") in allowed_hosts:  # the operator's admin vouched for it
        return
    if host.lower().rstrip(".") in _METADATA_HOSTS:
        raise URLPolicyError(field, url, "cloud metadata endpoint")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return
    address = getattr(address, "ipv4_mapped", None) or address  # ::ffff:169.254.x.x is IPv4
    if str(address) in _METADATA_HOSTS:  # any spelling of the address: fd00:ec2:0::254
        raise URLPolicyError(field, url, "cloud metadata endpoint")
    if address.is_link_local or address.is_multicast or address.is_unspecified:
        raise URLPolicyError(field, url, "link-local, multicast or unspecified address")


def _under_mount(path: str, mount_paths: list[str]) -> bool:
    path = posixpath.normpath(path)
    return any(
        path == posixpath.normpath(m) or path.startswith(posixpath.normpath(m).rstrip("/") + "/")
        for m in mount_paths
    )


def check_url(
    field: str,
    url: str,
    allowed_schemes: frozenset[str],
    mount_paths: list[str],
    image_paths_ok: bool = False,
    allowed_hosts: frozenset[str] = frozenset(),
) -> str:
    """Return the URL if allowed, else raise URLPolicyError naming the field.

    Local paths are accepted only under a volume the CR mounts itself, or (for the model)
    anywhere absolute, since a model may be baked into the image. `allowed_hosts` (an
    operator setting) exempts named hosts from the link-local and metadata refusals.
    """
    if "\x00" in url or any(seg == ".." for seg in url.split("/")):
        raise URLPolicyError(field, url, "'..' segments and NUL bytes are refused")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "file":
        raise URLPolicyError(field, url, "file:// is refused; mount a volume and use its path")
    if not scheme:
        if not url.startswith("/"):
            raise URLPolicyError(field, url, "relative local paths are refused")
        if image_paths_ok or _under_mount(url, mount_paths):
            return url
        raise URLPolicyError(field, url, "a local path must lie under a volumeMount of spec.worker")
    if scheme not in allowed_schemes:
        raise URLPolicyError(field, url, f"scheme {scheme!r} is not one of {sorted(allowed_schemes)}")
    if scheme == "s3":
        if not parts.netloc:
            raise URLPolicyError(field, url, "s3:// URL without a bucket")
        return url
    _check_host(field, url, parts.hostname, allowed_hosts)
    return url
