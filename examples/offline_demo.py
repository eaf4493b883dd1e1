"""Generate text with the offline API, as the FastDeploy offline-inference page does."""

import argparse

from worker import LLM, SamplingParams


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True, help="model directory")
    args = parser.parse_args()

    llm = LLM(model=args.model, max_model_len=512, max_num_seqs=8)
    prompts = ["Write me a poem about large language model.", "Tell me a fun fact."]
    for output in llm.generate(prompts, SamplingParams(temperature=0.8, top_p=0.95, max_tokens=24, seed=0)):
        print(f"prompt: {output.prompt!r}\ngenerated: {output.outputs[0].text!r}\n")

    conversation = [
        {"role": "system", "content": "I'm a helpful AI assistant."},
        {"role": "user", "content": "What's the weather like today?"},
    ]
    (reply,) = llm.chat([conversation], SamplingParams(temperature=0, max_tokens=24))
    print(f"chat reply: {reply.outputs[0].text!r} (finish_reason={reply.outputs[0].finish_reason})")


if __name__ == "__main__":
    main()
