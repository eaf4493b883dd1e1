"""`make bench-peers`: our engine against vLLM's CPU build, llama.cpp and HF transformers."""
