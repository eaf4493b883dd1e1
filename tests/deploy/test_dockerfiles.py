"""The two images: what they copy exists, what they install, whom they run as."""

from __future__ import annotations

import pytest
import yaml

from tests.deploy.dockerfile import copy_sources, final_stage, instructions, pip_extras
from tests.deploy.render import CHART
from tests.deploy.tools import ROOT

OPERATOR = ROOT / "Dockerfile.operator"
WORKER = ROOT / "Dockerfile.worker"
DOCKERFILES = [OPERATOR, WORKER]


def runs(path) -> list[str]:
    return [i.args for i in instructions(path) if i.op == "RUN"]


def ignored_roots() -> set[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return {line.strip().rstrip("/") for line in lines if line.strip() and not line.startswith("#")}


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_every_copied_path_exists_and_is_not_ignored(path):
    sources = [s for i in instructions(path) if i.op in {"COPY", "ADD"} for s in copy_sources(i)]
    assert sources, "no COPY from the build context"
    for source in sources:
        assert (ROOT / source).exists(), f"{path.name} copies missing {source}"
        assert source.removeprefix("./").split("/")[0] not in ignored_roots(), f"{source} is in .dockerignore"


def test_operator_image_installs_only_the_operator_extra():
    extras = [e for command in runs(OPERATOR) for e in pip_extras(command)]
    assert extras == [{"operator"}]
    assert not any("paddle" in command for command in runs(OPERATOR))


def test_worker_image_installs_the_worker_extra_and_gpu_paddle_from_paddles_index():
    extras = [e for command in runs(WORKER) for e in pip_extras(command)]
    assert extras == [{"worker"}]
    text = WORKER.read_text()
    assert "https://www.paddlepaddle.org.cn/packages/stable/cu126/" in text
    assert 'pip install "paddlepaddle-gpu==${PADDLE_VERSION}" -i "${PADDLE_GPU_INDEX}"' in text
    froms = [i.args for i in instructions(WORKER) if i.op == "FROM"]
    assert {"base-gpu", "base-cpu"} <= {f.split()[-1] for f in froms}
    assert "base-${VARIANT} AS runtime" in froms


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_image_ends_as_a_numeric_non_root_user(path):
    users = [i.args for i in final_stage(instructions(path)) if i.op == "USER"]
    assert users, f"{path.name}: final stage sets no USER"
    uid = users[-1].split(":")[0]
    # Numeric, or the kubelet cannot check runAsNonRoot against the image.
    assert uid.isdigit() and int(uid) != 0


@pytest.mark.parametrize(("path", "entry"), [(OPERATOR, ["kopf"]), (WORKER, ["worker"])],
                         ids=["operator", "worker"])
def test_entry_points(path, entry):
    [entrypoint] = [i.args for i in final_stage(instructions(path)) if i.op == "ENTRYPOINT"]
    assert yaml.safe_load(entrypoint) == entry


def test_chart_runs_the_operator_image_as_its_user():
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    [user] = [i.args for i in final_stage(instructions(OPERATOR)) if i.op == "USER"]
    assert user == f"{values['runAsUser']}:{values['runAsGroup']}"
    [cmd] = [i.args for i in final_stage(instructions(OPERATOR)) if i.op == "CMD"]
    assert yaml.safe_load(cmd)[-2:] == ["-m", "batchinfer_operator"]


def test_reader_sees_extras_continuations_and_the_last_stage(tmp_path):
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(
        "FROM python:3.11-slim AS build\n"
        "USER 1000\n"
        "RUN pip install --upgrade pip \\\n"
        "    # a comment inside a continuation\n"
        " && pip install -e '.[worker,operator]'\n"
        "FROM python:3.11-slim\n"
        "COPY --from=build /opt /opt\n"
        "USER root\n"
    )
    items = instructions(dockerfile)
    assert [i.op for i in items] == ["FROM", "USER", "RUN", "FROM", "COPY", "USER"]
    assert pip_extras(items[2].args) == [{"worker", "operator"}]
    assert [i.args for i in final_stage(items) if i.op == "USER"] == ["root"]
    assert copy_sources(items[4]) == []


def test_cpu_worker_image_prebuilds_the_attention_op_where_the_runtime_looks():
    built = [c for c in runs(WORKER) if "worker build-kernels" in c]
    assert len(built) == 1 and '"$VARIANT" = "cpu"' in built[0]
    target = built[0].split("worker build-kernels", 1)[1].split()[0].rstrip(";")
    final = final_stage(instructions(WORKER))
    envs = " ".join(i.args for i in final if i.op == "ENV")
    assert f"BATCHINFER_PREBUILT_KERNELS_DIR={target}" in envs
    copies = [i.args for i in final if i.op == "COPY"]
    assert f"--from=build {target} {target}" in copies
