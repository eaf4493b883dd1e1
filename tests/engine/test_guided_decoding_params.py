"""GuidedDecodingParams: exactly one constraint, compiled at construction; every bad one is a
GuidedDecodingError (a ValueError) that names the field."""

import pytest

from worker.guided_decoding import GuidedDecodingError, GuidedDecodingParams
from worker.sampling_params import SamplingParams


@pytest.mark.parametrize("kwargs", [
    dict(json={"type": "object", "properties": {"a": {"type": "integer"}}}),
    dict(json='{"type": "array", "items": {"enum": ["x", "y"]}}'),
    dict(json_object=True),
    dict(regex=r"[a-z]+-\d{2}"),
    dict(choice=["yes", "no", 'say "maybe"\n']),
    dict(grammar='start: "a" | "b" NUMBER\nNUMBER: /[0-9]+/'),  # Lark
    dict(grammar='root ::= "a" | "b" [0-9]+'),  # GBNF, as FastDeploy's guided_grammar
])
def test_valid_constraints_compile(kwargs):
    params = GuidedDecodingParams(**kwargs)
    assert params.kind == next(iter(kwargs))
    assert params.compiled


@pytest.mark.parametrize("kwargs, where, what", [
    (dict(json='{"type":'), "guided_decoding.json", "not valid JSON"),
    (dict(json=["not", "a", "schema"]), "guided_decoding.json", "JSON schema object"),
    (dict(json={"type": "integer-ish"}), "guided_decoding.json", "integer-ish"),
    (dict(json={"$ref": "#/$defs/missing"}), "guided_decoding.json", "missing"),
    (dict(json={"type": "string", "pattern": "a(b"}), "guided_decoding.json", "unclosed group"),
    (dict(regex="a(b"), "guided_decoding.regex", "unclosed group"),
    (dict(regex=""), "guided_decoding.regex", "non-empty string"),
    (dict(choice=[]), "guided_decoding.choice", "non-empty list"),
    (dict(choice=["ok", 3]), "guided_decoding.choice", "non-empty strings"),
    (dict(grammar='start: "a" | undefined_rule'), "guided_decoding.grammar", "undefined_rule"),
    (dict(grammar="root ::= (("), "guided_decoding.grammar", "invalid grammar"),
    (dict(json_object=1), "guided_decoding.json_object", "must be a bool"),
    (dict(), "guided_decoding must set exactly one", "none"),
    (dict(regex="a", choice=["a"]), "guided_decoding must set exactly one", "'regex', 'choice'"),
])
def test_invalid_constraint_names_the_field(kwargs, where, what):
    with pytest.raises(GuidedDecodingError) as err:
        GuidedDecodingParams(**kwargs)
    assert where in str(err.value) and what in str(err.value)
    assert isinstance(err.value, ValueError)


def test_sampling_params_takes_only_guided_decoding_params():
    with pytest.raises(ValueError, match="guided_decoding must be a GuidedDecodingParams"):
        SamplingParams(guided_decoding={"regex": "a+"})


def test_ignore_eos_cannot_override_the_grammar():
    with pytest.raises(ValueError, match="ignore_eos cannot be combined with guided_decoding"):
        SamplingParams(ignore_eos=True, guided_decoding=GuidedDecodingParams(regex="a+"))


def test_sampling_params_copy_keeps_the_compiled_grammar():
    import dataclasses

    params = SamplingParams(guided_decoding=GuidedDecodingParams(choice=["x", "y"]))
    copy = dataclasses.replace(params, bad_words_token_ids=[5])
    assert copy.guided_decoding is params.guided_decoding
