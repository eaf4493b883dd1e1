import pytest

from worker.sampling_params import SamplingParams


def test_keyword_constructor_and_defaults():
    sp = SamplingParams(top_p=0.95, max_tokens=64)
    assert (sp.top_p, sp.max_tokens, sp.n, sp.temperature, sp.min_tokens) == (0.95, 64, 1, 1.0, 0)
    assert sp.stop == [] and sp.stop_token_ids == [] and sp.bad_words == []
    assert not sp.greedy and SamplingParams(temperature=0).greedy


def test_stop_string_normalised_to_list():
    assert SamplingParams(stop="###").stop == ["###"]
    assert SamplingParams(stop=["a", "b"]).stop == ["a", "b"]


def test_top_k_minus_one_means_disabled():
    assert SamplingParams(top_k=-1).effective_top_k == 0


@pytest.mark.parametrize(
    "field, value",
    [
        ("n", 0),
        ("n", 1.5),
        ("n", True),
        ("temperature", -1),
        ("temperature", "hot"),
        ("top_p", -0.1),
        ("top_p", 1.1),
        ("top_k", -2),
        ("top_k", 2.5),
        ("min_p", -0.1),
        ("min_p", 1.5),
        ("presence_penalty", 2.5),
        ("presence_penalty", -2.5),
        ("frequency_penalty", 2.1),
        ("frequency_penalty", -3),
        ("repetition_penalty", 0),
        ("repetition_penalty", -1.0),
        ("seed", -1),
        ("seed", 2**63),
        ("seed", "42"),
        ("stop", 5),
        ("stop", ["ok", ""]),
        ("stop_token_ids", [1, -2]),
        ("stop_token_ids", "2"),
        ("bad_words", [3]),
        ("bad_words_token_ids", [1.5]),
        ("max_tokens", 0),
        ("max_tokens", 2.0),
        ("min_tokens", -1),
        ("logprobs", -1),
        ("logprobs", 21),
        ("prompt_logprobs", -1),
        ("prompt_logprobs", 21),
        ("ignore_eos", "yes"),
        ("skip_special_tokens", 1),
    ],
)
def test_every_invalid_value_names_its_field(field, value):
    with pytest.raises(ValueError, match=rf"^{field} must"):
        SamplingParams(**{field: value})


def test_min_tokens_above_max_tokens():
    with pytest.raises(ValueError, match=r"^min_tokens must be <= max_tokens=4, got 5"):
        SamplingParams(min_tokens=5, max_tokens=4)


def test_message_shows_the_value():
    with pytest.raises(ValueError, match=r"temperature must be >= 0, got -1"):
        SamplingParams(temperature=-1)
