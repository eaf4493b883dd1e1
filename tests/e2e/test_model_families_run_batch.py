"""`worker make-tiny-model --family` writes a Qwen3 / Qwen3-MoE / ERNIE 4.5 MoE model that `worker run-batch`
serves end to end; the greedy completions equal paddleformers' generate on the same prompt ids."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import reference_greedy
from worker.cli import main
from worker.models.config import ModelConfig

FAMILIES = {
    "ernie4_5_moe": ["--num-layers", "3", "--num-experts", "4", "--num-experts-per-tok", "2",
                     "--moe-intermediate-size", "48", "--seed", "7", "--untied"],
    "qwen3": ["--untied", "--head-dim", "32"],
    "qwen3_moe": ["--num-layers", "3", "--num-experts", "4", "--num-experts-per-tok", "2",
                  "--moe-intermediate-size", "48", "--seed", "5"],
}
MAX_TOKENS = 12


def make_tiny_model(out: Path, family: str) -> Path:
    worker = Path(sys.executable).parent / "worker"  # the installed console script
    subprocess.run([str(worker), "make-tiny-model", str(out), "--family", family, *FAMILIES[family]],
                   check=True, capture_output=True)
    return out


def line(cid: str, chat: bool, text: str) -> str:
    body = {"temperature": 0, "max_tokens": MAX_TOKENS, "ignore_eos": True, "return_token_ids": True}
    if chat:
        body["messages"], url = [{"role": "user", "content": text}], "/v1/chat/completions"
    else:
        body["prompt"], url = text, "/v1/completions"
    return json.dumps({"custom_id": cid, "method": "POST", "url": url, "body": body})


def token_ids(record: dict) -> tuple[list[int], list[int]]:
    choice = record["response"]["body"]["choices"][0]
    ids = choice.get("message", choice)
    return ids["prompt_token_ids"], ids["completion_token_ids"]


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_run_batch_serves_the_family(tmp_path, family):
    model = make_tiny_model(tmp_path / family, family)
    config = ModelConfig.from_pretrained(model)
    assert config.qk_norm == family.startswith("qwen3") and (config.moe is not None) == family.endswith("_moe")
    if family == "ernie4_5_moe":
        assert config.moe.sparse_layers == (1, 2) and config.moe.shared_intermediate_size == 48
    lines = [line("a", True, "Tell me a fun fact."), line("b", False, "Once upon a time"),
             line("c", True, "你好, 世界! What is batch inference?"), "not json"]
    (tmp_path / "in.jsonl").write_text("\n".join(lines) + "\n")
    out = tmp_path / "out.jsonl"
    assert main(["run-batch", "-i", str(tmp_path / "in.jsonl"), "-o", str(out), "--model", str(model),
                 "--num-gpu-blocks-override", "64", "--block-size", "16", "--max-model-len", "256",
                 "--no-progress"]) == 0
    records = [json.loads(x) for x in out.read_bytes().splitlines()]
    assert [r["custom_id"] for r in records[:3]] == ["a", "b", "c"] and len(records) == 4
    assert records[3]["response"]["status_code"] == 400  # the malformed line still has its line
    served = [token_ids(r) for r in records[:3]]
    expected = reference_greedy(model, [prompt for prompt, _ in served], MAX_TOKENS)
    assert [completion for _, completion in served] == expected
