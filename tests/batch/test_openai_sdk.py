"""A run covering chat and completions, every request written with the openai SDK's request
types (every optional field an explicit null unless set), every body validated (strict) as
the SDK's ChatCompletion / Completion."""

import json

from openai.types import Completion, CompletionChoice
from openai.types.chat import ChatCompletion
from openai.types.completion_choice import Logprobs
from openai.types.chat.completion_create_params import CompletionCreateParamsNonStreaming as ChatCreateParams
from openai.types.completion_create_params import CompletionCreateParamsNonStreaming as CompletionCreateParams

from tests.batch.conftest import ENGINE_FLAGS, FIXED, read_jsonl, worker_cli


class EchoLogprobs(Logprobs):
    """The SDK's type, but for the first echoed token, whose logprob OpenAI's API returns as
    null (vLLM's types allow it): the SDK's generated List[float] does not."""

    token_logprobs: list[float | None] | None = None
    top_logprobs: list[dict[str, float] | None] | None = None


class EchoChoice(CompletionChoice):
    logprobs: EchoLogprobs | None = None


class EchoCompletion(Completion):
    choices: list[EchoChoice]


def _all_null(params_type) -> dict:
    return dict.fromkeys(params_type.__required_keys__ | params_type.__optional_keys__)


def _line(cid: str, chat: bool, **body) -> str:
    base = _all_null(ChatCreateParams if chat else CompletionCreateParams) | {"model": "tiny"}
    url = "/v1/chat/completions" if chat else "/v1/completions"
    return json.dumps({"custom_id": cid, "method": "POST", "url": url, "body": base | body})


def _messages(text: str) -> list[dict]:
    return [{"role": "developer", "content": [{"type": "text", "text": "Be brief."}]},
            {"role": "user", "content": text}]


LINES = [
    _line("chat-n2", True, messages=_messages("Hello"), n=2, seed=1, max_completion_tokens=5,
          logprobs=True, top_logprobs=3),
    _line("chat-stop", True, messages=_messages("Count"), temperature=0, stop=["\n", "."], max_tokens=8),
    _line("chat-length", True, messages=_messages("Talk"), temperature=0, max_tokens=2, ignore_eos=True),
    _line("cmpl-list", False, prompt=["Once upon"], n=2, seed=2, max_tokens=3),
    _line("cmpl-echo", False, prompt="Once upon", temperature=0, max_tokens=3, echo=True),
    _line("cmpl-logprobs", False, prompt="Once upon", temperature=0, max_tokens=3, logprobs=2),
    _line("cmpl-ids", False, prompt=[[5, 6, 7]], temperature=0, max_tokens=3, echo=True),
    _line("cmpl-prompts", False, prompt=["Once upon", "The end"], n=2, seed=3, max_tokens=3),
    _line("cmpl-id-prompts", False, prompt=[[5, 6, 7], [8, 9]], temperature=0, max_tokens=2, logprobs=1),
    _line("cmpl-echo-logprobs", False, prompt=["Once upon", "Hi"], temperature=0, max_tokens=3, echo=True,
          logprobs=2),
    _line("cmpl-echo-ids-logprobs", False, prompt=[5, 6, 7], temperature=0, max_tokens=2, echo=True, logprobs=0),
]
ECHO_LOGPROBS = ("cmpl-echo-logprobs", "cmpl-echo-ids-logprobs")


def _run(tmp_path, tiny_model, lines: list[str]) -> dict:
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "in.jsonl").write_text("\n".join(lines) + "\n")
    out = tmp_path / "out.jsonl"
    assert worker_cli("run-batch", "-i", tmp_path / "in.jsonl", "-o", out, "--model", tiny_model,
                      "--served-model-name", "tiny", *ENGINE_FLAGS, *FIXED) == 0
    return {x["custom_id"]: EchoCompletion.model_validate(x["response"]["body"], strict=True) for x in read_jsonl(out)}


def test_every_body_is_the_sdks_type(tmp_path, tiny_model):
    (tmp_path / "in.jsonl").write_text("\n".join(LINES) + "\n")
    out = tmp_path / "out.jsonl"
    assert worker_cli("run-batch", "-i", tmp_path / "in.jsonl", "-o", out, "--model", tiny_model,
                      "--served-model-name", "tiny", "--summary-file", tmp_path / "summary.json",
                      *ENGINE_FLAGS, *FIXED) == 0
    got = {x["custom_id"]: x for x in read_jsonl(out)}
    assert list(got) == [json.loads(x)["custom_id"] for x in LINES]
    assert all(x["error"] is None and x["response"]["status_code"] == 200 for x in got.values())
    chats = {k: ChatCompletion.model_validate(v["response"]["body"], strict=True)
             for k, v in got.items() if k.startswith("chat")}
    cmpls = {k: (EchoCompletion if k in ECHO_LOGPROBS else Completion).model_validate(v["response"]["body"], strict=True)
             for k, v in got.items() if k.startswith("cmpl")}
    n2 = chats["chat-n2"]
    assert [c.index for c in n2.choices] == [0, 1]
    assert all(len(t.top_logprobs) == 3 for c in n2.choices for t in c.logprobs.content)
    assert chats["chat-length"].choices[0].finish_reason == "length"
    assert not any(s in chats["chat-stop"].choices[0].message.content for s in ("\n", "."))
    assert [c.index for c in cmpls["cmpl-list"].choices] == [0, 1]
    assert cmpls["cmpl-echo"].choices[0].text.startswith("Once upon")
    lp = cmpls["cmpl-logprobs"].choices[0].logprobs
    assert len(lp.tokens) == 3 and all(len(top) == 2 for top in lp.top_logprobs)
    # the tokens spell the text (then the end-of-sequence token, which the text leaves out)
    assert "".join(lp.tokens).startswith(cmpls["cmpl-logprobs"].choices[0].text)
    assert lp.text_offset == [len("".join(lp.tokens[:i])) for i in range(3)]
    ids = cmpls["cmpl-ids"]
    assert ids.usage.prompt_tokens == 3 and len(ids.choices[0].text) > 0  # echo of token ids: their text
    assert {b.model for b in [*chats.values(), *cmpls.values()]} == {"tiny"}
    bodies = [*chats.values(), *cmpls.values()]
    summary = json.loads((tmp_path / "summary.json").read_text())
    for name in ("prompt_tokens", "completion_tokens"):
        assert summary[name] == sum(getattr(b.usage, name) for b in bodies)


def test_many_prompts_in_one_line_are_choices_numbered_prompt_major(tmp_path, tiny_model):
    cmpls = _run(tmp_path, tiny_model, LINES[7:9])
    many, ids = cmpls["cmpl-prompts"], cmpls["cmpl-id-prompts"]
    assert [c.index for c in many.choices] == [0, 1, 2, 3]  # prompt 0: choices 0, 1; prompt 1: 2, 3
    single = {p: _run(tmp_path / p, tiny_model, [_line("one", False, prompt=p, n=2, seed=3, max_tokens=3)])["one"]
              for p in ("Once upon", "The end")}
    assert [c.text for c in many.choices] == [c.text for p in ("Once upon", "The end") for c in single[p].choices]
    assert many.usage.prompt_tokens == sum(s.usage.prompt_tokens for s in single.values())
    assert many.usage.completion_tokens == sum(s.usage.completion_tokens for s in single.values())
    assert ids.usage.prompt_tokens == 5 and [c.index for c in ids.choices] == [0, 1]
    assert all(len(c.logprobs.tokens) == 2 for c in ids.choices)


def test_echo_logprobs_cover_the_prompt(tmp_path, tiny_model):
    cmpls = _run(tmp_path, tiny_model, LINES[9:])
    for choice, prompt in zip(cmpls["cmpl-echo-logprobs"].choices, ("Once upon", "Hi")):
        lp, text = choice.logprobs, choice.text
        n_prompt = len(lp.tokens) - 3
        assert text.startswith(prompt) and "".join(lp.tokens[:n_prompt]) == prompt
        assert lp.token_logprobs[0] is None and lp.top_logprobs[0] is None
        assert all(x is not None and x <= 0 for x in lp.token_logprobs[1:])
        assert all(len(top) == 2 for top in lp.top_logprobs[1:])
        # offsets from the start of the echoed text: the completion starts right after the prompt
        assert lp.text_offset[:n_prompt + 1] == [len("".join(lp.tokens[:i])) for i in range(n_prompt + 1)]
        assert lp.text_offset[n_prompt] == len(prompt) and lp.text_offset == sorted(lp.text_offset)
    ids = cmpls["cmpl-echo-ids-logprobs"].choices[0].logprobs
    assert len(ids.tokens) == 3 + 2 and ids.token_logprobs[0] is None
    assert ids.top_logprobs[1:] == [{}] * 4  # logprobs 0: none beside the token's own


def test_a_prompt_too_long_fails_its_whole_line_by_index(tmp_path, tiny_model):
    lines = [_line("too-long", False, prompt=["Once upon", "Hi", "word " * 300], max_tokens=2),
             _line("after", False, prompt=["Once upon", "Hi"], temperature=0, max_tokens=2)]
    (tmp_path / "in.jsonl").write_text("\n".join(lines) + "\n")
    out, errors = tmp_path / "out.jsonl", tmp_path / "errors.jsonl"
    assert worker_cli("run-batch", "-i", tmp_path / "in.jsonl", "-o", out, "--error-file", errors,
                      "--model", tiny_model, "--served-model-name", "tiny", *ENGINE_FLAGS, *FIXED) == 0
    (rejected,) = read_jsonl(errors)
    error = rejected["response"]["body"]["error"]
    assert (error["code"], error["param"]) == ("prompt_too_long", "body.prompt.2")
    assert error["message"].startswith("line 1: body.prompt.2: prompt has ")
    (served,) = read_jsonl(out)  # the line's first two prompts were dropped from the engine
    assert len(Completion.model_validate(served["response"]["body"], strict=True).choices) == 2
