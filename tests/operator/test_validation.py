"""Spec validation, the URL policy and the operator settings."""

import subprocess
import sys

import pytest

from batchinfer_operator.settings import OperatorSettings, SettingsError, settings_from_env
from batchinfer_operator.url_policy import URLPolicyError, check_url
from batchinfer_operator.validation import InvalidSpecError, staging_base, staging_url, validate_spec
from tests.operator.builders import make_cr

SCHEMES = frozenset({"s3", "http", "https"})


@pytest.mark.parametrize("url, reason", [
    ("file:///etc/passwd", "file:// is refused"),
    ("/etc/passwd", "under a volumeMount"),
    ("data/in.jsonl", "relative local paths"),
    ("/data/../etc/passwd", "'..'"),
    ("http://169.254.169.254/latest/meta-data/", "link-local"),
    ("http://[fe80::1]/x", "link-local"),
    ("http://metadata.google.internal/computeMetadata/v1/", "metadata"),
    ("ftp://host/x", "scheme 'ftp'"),
    ("s3:///key-without-bucket", "without a bucket"),
    ("http:///nohost", "no host"),
])
def test_refused_urls_say_which_field_and_why(url: str, reason: str) -> None:
    with pytest.raises(URLPolicyError, match="spec.input.url") as info:
        check_url("input.url", url, SCHEMES, ["/data"])
    assert reason in str(info.value)


@pytest.mark.parametrize("url", ["s3://b/k.jsonl", "https://example.com/x.jsonl", "http://127.0.0.1:8080/x",
                                 "/data/in.jsonl", "/data"])
def test_allowed_urls(url: str) -> None:
    assert check_url("input.url", url, SCHEMES, ["/data/"]) == url


def test_model_may_live_in_the_image_but_input_may_not() -> None:
    assert check_url("model", "/opt/models/m", SCHEMES, [], image_paths_ok=True) == "/opt/models/m"
    with pytest.raises(URLPolicyError):
        check_url("input.url", "/opt/models/m", SCHEMES, [])


def test_spec_errors_name_the_field() -> None:
    with pytest.raises(InvalidSpecError, match=r"spec\.shards: Input should be greater than or equal to 1"):
        validate_spec(make_cr(shards=0)["spec"], OperatorSettings())
    with pytest.raises(InvalidSpecError, match=r"spec\.bogus: Extra inputs are not permitted"):
        validate_spec(make_cr(bogus=1)["spec"], OperatorSettings())
    with pytest.raises(InvalidSpecError, match="parallelism \\(4\\) must be <= shards \\(3\\)"):
        validate_spec(make_cr(parallelism=4)["spec"], OperatorSettings())
    with pytest.raises(InvalidSpecError, match="spec: must be an object"):
        validate_spec(None, OperatorSettings())


@pytest.mark.parametrize("volume", [
    {"name": "host", "hostPath": {"path": "/"}},
    {"name": "two", "emptyDir": {}, "hostPath": {"path": "/var"}},
    {"emptyDir": {}},
])
def test_worker_volumes_refuse_host_paths_and_nameless_or_mixed_sources(volume: dict) -> None:
    spec = make_cr(worker={"volumes": [volume]})["spec"]
    with pytest.raises(InvalidSpecError, match=r"spec\.worker\.volumes: .*volumes\[0\] must have a name and one source"):
        validate_spec(spec, OperatorSettings())


def test_worker_volumes_accept_claims_and_scratch() -> None:
    volumes = [{"name": "models", "persistentVolumeClaim": {"claimName": "m"}}, {"name": "cache", "emptyDir": {}}]
    assert validate_spec(make_cr(worker={"volumes": volumes})["spec"], OperatorSettings()).worker.volumes == volumes


def test_an_operator_setting_can_allow_a_link_local_host() -> None:
    spec = make_cr(input={"url": "http://169.254.10.1/in.jsonl"})["spec"]
    with pytest.raises(InvalidSpecError, match="link-local"):
        validate_spec(spec, OperatorSettings())
    settings = settings_from_env({"BATCHINFER_ALLOWED_HOSTS": "169.254.10.1, proxy.local"})
    assert validate_spec(spec, settings).input.url == "http://169.254.10.1/in.jsonl"
    with pytest.raises(InvalidSpecError, match="link-local"):  # only the hosts named
        validate_spec(make_cr(input={"url": "http://169.254.169.254/x"})["spec"], settings)


def test_allowed_schemes_come_from_the_settings() -> None:
    only_s3 = OperatorSettings(allowed_url_schemes=frozenset({"s3"}))
    with pytest.raises(InvalidSpecError, match="spec.input.url.*scheme 'https'"):
        validate_spec(make_cr(input={"url": "https://x/in.jsonl"})["spec"], only_s3)


def test_staging_defaults() -> None:
    spec = validate_spec(make_cr()["spec"], OperatorSettings())
    assert staging_base(spec, OperatorSettings()) == "s3://out/results/.batchinfer-staging"
    http_out = make_cr(output={"url": "https://x/out.jsonl"})["spec"]
    with pytest.raises(InvalidSpecError, match="spec.staging.url: required"):
        validate_spec(http_out, OperatorSettings())
    settings = OperatorSettings(default_staging_url="s3://staging/base/")
    assert staging_base(validate_spec(http_out, settings), settings) == "s3://staging/base/"
    assert staging_url("s3://s/b/", "ns", "run", "u-1") == "s3://s/b/ns/run-u-1/"


def test_settings_from_env() -> None:
    settings = settings_from_env({
        "BATCHINFER_WORKER_IMAGE": "w:1", "BATCHINFER_NAMESPACES": "a, b",
        "BATCHINFER_ALLOWED_URL_SCHEMES": "s3,HTTPS", "BATCHINFER_METRICS_PORT": "0",
        "BATCHINFER_RESYNC_SECONDS": "2.5", "BATCHINFER_RUN_AS_USER": "1000",
    })
    assert settings.namespaces == ("a", "b") and settings.allowed_url_schemes == {"s3", "https"}
    assert (settings.worker_image, settings.metrics_port, settings.resync_seconds) == ("w:1", 0, 2.5)
    with pytest.raises(SettingsError, match="file:// can never be allowed"):
        settings_from_env({"BATCHINFER_ALLOWED_URL_SCHEMES": "s3,file"})
    with pytest.raises(SettingsError, match="run_as_user"):
        settings_from_env({"BATCHINFER_RUN_AS_USER": "0"})


def test_the_operator_never_imports_paddle_or_numpy() -> None:
    """Of the worker package it imports only the contract the two share."""
    code = ("import sys, batchinfer_operator, batchinfer_operator.__main__, batchinfer_operator.reconcile;"
            "heavy = [m for m in sys.modules if m in ('paddle', 'numpy') or m.startswith('worker.')"
            " and m != 'worker.contract'];"
            "print(heavy); sys.exit(1 if heavy else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_entry_point_refuses_bad_settings_before_starting() -> None:
    import os

    env = dict(os.environ, BATCHINFER_RUN_AS_USER="0")
    result = subprocess.run([sys.executable, "-m", "batchinfer_operator"], env=env, capture_output=True, text=True)
    assert result.returncode == 2 and "run_as_user" in result.stderr
