"""`worker make-tiny-model DIR`: write the bundled tiny model (deterministic): ERNIE 4.5 by
default, or ERNIE 4.5 MoE / Qwen3 / Qwen3-MoE with --family."""

import argparse

HELP = ("write a small deterministic model directory (weights, config, tokenizer): ERNIE 4.5 (dense or MoE), "
        "Qwen3 or Qwen3-MoE")


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dir", help="output directory (created if missing)")
    parser.add_argument("--num-layers", type=int, default=2)
    parser.add_argument("--hidden-size", type=int, default=64)
    parser.add_argument("--num-attention-heads", type=int, default=4)
    parser.add_argument("--num-key-value-heads", type=int, default=2)
    parser.add_argument("--head-dim", type=int, default=None, help="default: hidden / heads")
    parser.add_argument("--intermediate-size", type=int, default=128)
    parser.add_argument("--vocab-size", type=int, default=1024,
                        help="embedding rows; the tokenizer uses at most 1024 of them")
    parser.add_argument("--max-position-embeddings", type=int, default=4096)
    parser.add_argument("--untied", action="store_true", help="separate lm_head (default: tied)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--layout", choices=["pt", "paddle"], default="pt",
                        help="pt: HF names, [out,in] (what paddleformers 1.2.0 writes and loads); "
                             "paddle: ernie.* names, [in,out] (ernie4_5 and ernie4_5_moe only)")
    parser.add_argument("--family", choices=["ernie4_5", "ernie4_5_moe", "qwen3", "qwen3_moe"], default="ernie4_5",
                        help="qwen3: per-head q/k norms; qwen3_moe: also a mixture of experts in every "
                             "layer but the first; ernie4_5_moe: ERNIE 4.5 with a mixture of experts (a shared "
                             "expert, a score correction bias) in every layer but the first")
    parser.add_argument("--num-experts", type=int, default=4, help="MoE families: routed experts per MoE layer")
    parser.add_argument("--num-experts-per-tok", type=int, default=2, help="MoE families: top-k")
    parser.add_argument("--moe-intermediate-size", type=int, default=32, help="MoE families: one expert's width")
    parser.add_argument("--num-shared-experts", type=int, default=1,
                        help="ernie4_5_moe: moe_num_shared_experts (0: none)")
    parser.add_argument("--fused-experts", action="store_true",
                        help="MoE families, pt layout: the routed experts as 3-D experts.gate_up_proj / "
                             "experts.down_proj tensors (transformers 5's form)")


def run(args: argparse.Namespace) -> int:
    from worker.tiny_model import TinyModelSpec, write_tiny_model

    spec = TinyModelSpec(
        num_layers=args.num_layers, hidden_size=args.hidden_size,
        num_attention_heads=args.num_attention_heads, num_key_value_heads=args.num_key_value_heads,
        head_dim=args.head_dim, intermediate_size=args.intermediate_size,
        vocab_size=args.vocab_size, max_position_embeddings=args.max_position_embeddings,
        tie_word_embeddings=not args.untied, seed=args.seed, layout=args.layout, family=args.family,
        num_experts=args.num_experts, num_experts_per_tok=args.num_experts_per_tok,
        moe_intermediate_size=args.moe_intermediate_size, moe_num_shared_experts=args.num_shared_experts,
        fused_experts=args.fused_experts,
    )
    out = write_tiny_model(args.dir, spec)
    print(f"wrote {out}")
    return 0
